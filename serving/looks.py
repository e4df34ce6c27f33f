"""POST /v1/looks/search: a look image (multipart, JSON base64 or image URL) -> per-layer products."""

from __future__ import annotations

from flask import Blueprint, Request, jsonify, request

from looksync.search.engine import CachedLookAnswer, LookSearchRequest, SearchEngine
from serving.cached_looks import cached_answer_response
from serving.context import engine, rendered_answers
from serving.inputs import load_image, request_body
from serving.models import LookSearchParams
from serving.thumbnails import with_thumbnail_urls

bp = Blueprint("looks", __name__, url_prefix="/v1/looks")


def read_look_search(eng: SearchEngine, req: Request) -> tuple[LookSearchParams, LookSearchRequest, bytes | None, str | None]:
    """(params, the look request, the image bytes or None, the image URL or None) of a look search body,
    validated; nothing fetched, checked or decoded yet. Flask's path and ``serving.look_hits`` read it so."""
    params, data, url = request_body(LookSearchParams, image_field_required=True, req=req)
    look_request = params.to_request(eng.settings.default_k, eng.settings.rerank_mode)
    look_request.validate(eng.taxonomy)  # before fetching or decoding anything
    return params, look_request, data, url


def look_search_input():
    """(params, the look request, the loaded look) of a look search body, validated before any fetch or decode."""
    eng = engine()
    params, look_request, data, url = read_look_search(eng, request._get_current_object())
    return params, look_request, load_image(data, url, eng.settings)


@bp.post("/search")
def search_look():
    eng = engine()
    params, look_request, look = look_search_input()
    # the pixels are decoded only when the response cache misses
    answer = eng.look_answer(lambda: look.image, look_request, look_sha256=look.sha256)
    if isinstance(answer, CachedLookAnswer):
        if params.shopper_id is None:
            return cached_answer_response(answer, rendered_answers())
        answer = answer.response()  # parsed per request: personalised for this shopper only
    return jsonify(with_thumbnail_urls(eng.apply_preferences(answer, params.shopper_id)))
