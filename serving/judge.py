"""The judging tool: the /judge page (rate returned products 1-5 per criterion; with a shadow version, live
and shadow side by side, blind: POST /v1/judge/compare), POST /v1/judgments,
the MOS report (GET /v1/judgments/report as JSON, /judge/report as a page), and the sample looks a
judge or a demo visitor can pick (GET /v1/sample-looks, GET /v1/sample-looks/<look_id>).

The HTML pages are shells with no data (open); every data call needs the API key like the rest of
the API. The ratings store is opened on first use, not in the factory: a judging database that is
down must not stop the look search service from starting; it answers 503 on the judging calls.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template, send_file

from looksync.quality.judging import InvalidRating, JudgingStoreError, RatingStore, build_report, parse_submission
from looksync.quality.judging.blind import aligned_request, blind_pair, resolve_side
from serving.context import engine
from serving.errors import ApiError, error_response
from serving.inputs import query
from serving.looks import look_search_input
from serving.models import ReportQuery
from serving.thumbnails import with_thumbnail_urls
from serving.validation import json_body, require_media_type

log = logging.getLogger(__name__)

bp = Blueprint("judge", __name__)

LOOK_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_LOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_store_lock = threading.Lock()


def rating_store() -> RatingStore:
    """The app's ratings store, opened (and its table created) on first use."""
    app = current_app
    store = app.extensions.get("looksync.judging_store")
    if store is None:
        with _store_lock:
            store = app.extensions.get("looksync.judging_store")
            if store is None:
                store = RatingStore.from_settings(app.extensions["looksync.settings"])
                app.extensions["looksync.judging_store"] = store
    return store


def judging_secret() -> str:
    """What signs the blind sides: LOOKSYNC_JUDGING_SECRET, else a random one made once per process."""
    settings = current_app.extensions["looksync.settings"]
    if settings.judging_secret is not None:
        return settings.judging_secret.get_secret_value()
    with _store_lock:
        return current_app.extensions.setdefault("looksync.judging_secret", secrets.token_hex(32))


def looks_dir() -> Path | None:
    settings = current_app.extensions["looksync.settings"]
    folder = settings.judging_looks_dir or settings.data_dir / "sample" / "looks"
    return folder if folder.is_dir() else None


@bp.errorhandler(InvalidRating)
def _invalid_rating(err: InvalidRating):
    return error_response(400, "invalid_rating", str(err))


@bp.errorhandler(JudgingStoreError)
def _store_down(err: JudgingStoreError):
    log.error("judging store unavailable: %s", err)
    return error_response(503, "judging_db_unavailable", str(err))


@bp.get("/judge")
def judge_page():
    return render_template("judge.html")


@bp.get("/judge/report")
def report_page():
    return render_template("judge_report.html")


@bp.post("/v1/judgments")
def submit_judgments():
    require_media_type("application/json")
    body = json_body()  # bounded depth, clean strings, finite numbers; parse_submission checks every field
    ratings = parse_submission(resolve_side(judging_secret(), body), layers=engine().taxonomy.layers)
    ids = rating_store().add(ratings)
    log.info("judgments stored", extra={"judge_id": ratings[0].judge_id, "count": len(ids), "model_id": ratings[0].model_id})
    return jsonify({"ids": ids, "count": len(ids)}), 201


@bp.post("/v1/judge/compare")
def compare_live_and_shadow():
    """A look asked of live and of the shadow version (for the layers live found), as blind
    sides A and B in a random order."""
    eng = engine()
    if eng.mirror is None:
        raise ApiError(409, "no_shadow", "no shadow version is mirrored: set LOOKSYNC_SHADOW_SHARE and "
                       "LOOKSYNC_SHADOW_CLIP_WEIGHTS while the index has a shadow version")  # fmt: skip
    _, look_request, look = look_search_input()
    live = eng.search_look(look.image, look_request, look_sha256=look.sha256)
    shadow = eng.mirror.shadow.search_look(look.image, aligned_request(look_request, live))
    sides = [with_thumbnail_urls(side) for side in blind_pair(judging_secret(), live, shadow)]
    return jsonify({"look_sha256": look.sha256, "sides": sides})


@bp.get("/v1/judgments/report")
def judgments_report():
    model_id = query(ReportQuery).model_id or None
    return jsonify(build_report(rating_store().ratings(model_id=model_id)))


@bp.get("/v1/sample-looks")
def sample_looks():
    folder = looks_dir()
    if folder is None:
        return jsonify({"looks": [], "note": "no looks directory: set LOOKSYNC_JUDGING_LOOKS_DIR"})
    looks = sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in LOOK_SUFFIXES and _LOOK_ID.match(p.stem))
    return jsonify({"looks": [{"look_id": look_id, "url": f"/v1/sample-looks/{look_id}"} for look_id in looks]})


@bp.get("/v1/sample-looks/<look_id>")
def sample_look(look_id: str):
    folder = looks_dir()
    if folder is None or not _LOOK_ID.match(look_id):
        raise ApiError(404, "not_found", f"no sample look {look_id!r}")
    for suffix in LOOK_SUFFIXES:
        path = folder / f"{look_id}{suffix}"
        if path.is_file():
            return send_file(path.resolve(), max_age=0)
    raise ApiError(404, "not_found", f"no sample look {look_id!r} in the looks directory")
