"""Rolling out another model, one step per ``catalog_model_rollout`` task:

candidate (embed what the embeddings store lacks for the model, build and validate a version, mark it
shadow) -> offline evidence (live vs candidate on the evaluation set) -> shadow evidence (mirrored
queries: from the service, or a replay of the evaluation set through the mirror) -> decide (the gates,
the HTML report) -> promote (``promote_shadow``: one atomic swap) or stop (the shadow mark cleared and the
candidate dropped; live is never touched). Every step before ``promote`` leaves live as it was.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.index import CatalogIndex
from looksync.pipelines.reindex import build_version, validate_build
from looksync.settings import Settings

log = logging.getLogger(__name__)


def rollout_dir(settings: Settings, run_id: str) -> Path:
    """Where one rollout's evidence and report are written."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)
    return settings.data_dir / "rollouts" / safe


def sample_root(settings: Settings, given: str | None) -> Path:
    """The evaluation sample: the one given, else ``<data_dir>/sample`` (where ``looksync demo`` writes it)."""
    return Path(given) if given else settings.data_dir / "sample"


def embed_missing(settings: Settings, encoder: Any) -> dict[str, Any]:
    """Embed, with ``encoder``, the product images the embeddings store has no vector of this model for
    (each image once, fetched again under the ingest fetch guards and checked against its stored hash);
    every image the store already holds for the model is reused."""
    from looksync.catalog.images import FetchError, FetchPolicy, fetch_images

    store = EmbeddingStore.from_settings(settings)
    products = [p for p in ProductStore(settings.data_dir).all() if p.image_hash and p.image_urls]
    known = store.lookup(encoder.model_id, {p.image_hash for p in products})
    todo: dict[str, str] = {}  # image hash -> an image URL of it
    for p in products:
        if p.image_hash not in known:
            todo.setdefault(p.image_hash, p.image_urls[0])
    failed: dict[str, str] = {}
    items = []
    policy = replace(FetchPolicy.from_settings(settings), refuse_blank=True)
    for (image_hash, url), result in zip(
        todo.items(), fetch_images(list(todo.values()), policy, settings.fetch_concurrency), strict=True
    ):
        if isinstance(result, FetchError):
            failed[image_hash] = f"{result.reason}: {result.message}"
        elif result.sha256 != image_hash:  # the vendor changed the image since ingest: the next ingest embeds it
            failed[image_hash] = f"image changed since ingest ({url})"
        else:
            items.append((image_hash, result.data))
    ids, vectors, failures = encoder.encode_images_safe(items)
    if ids:
        store.add(encoder.model_id, ids, vectors)
    failed.update(dict(failures))
    log.info(
        "rollout: embedded %d images for %s, reused %d, %d failed", len(ids), encoder.model_id, len(known), len(failed)
    )
    return {
        "embedded": len(ids),
        "reused": len(known),
        "failed": len(failed),
        "failures": dict(list(failed.items())[:20]),
    }


def build_candidate(settings: Settings, index: CatalogIndex, encoder: Any) -> dict[str, Any]:
    """Embed what is missing, build a version for ``encoder``'s model from the stores, validate it (a
    failed one is dropped) and mark it shadow. Live is unchanged."""
    live = index.live_version()
    if live is None:
        raise ValueError("rollout: no live index version to compare a candidate with; build one first")
    if index.live_model_id() == encoder.model_id:
        raise ValueError(f"rollout: the live version {live} already holds {encoder.model_id}")
    embedded = embed_missing(settings, encoder)
    report = build_version(settings, index, encoder.model_id)
    validation = validate_build(settings, index, report.version, encoder.model_id, report.failures)
    index.set_shadow(report.version)
    return {"version": report.version, "model_id": encoder.model_id, "indexed": report.indexed, "live": live,
            "missing_vectors": len(report.missing_vectors), "recall": validation["recall"], **embedded}  # fmt: skip


def offline_evidence(settings: Settings, index: CatalogIndex, sample_root: Path, candidate: dict[str, Any],
                     live_encoder: Any, candidate_encoder: Any, out_dir: Path,
                     text_products: int = 100) -> dict[str, Any]:  # fmt: skip
    """Live vs candidate on the evaluation set (``offline.json`` in ``out_dir``); returns the key figures."""
    from looksync.quality.evaluation.harness import load_truth
    from looksync.quality.rollout.evidence import offline_comparison

    _check_model(index, candidate["live"], live_encoder)
    offline = offline_comparison(settings, index, load_truth(sample_root), (candidate["live"], live_encoder),
                                 (candidate["version"], candidate_encoder), max_text_products=text_products)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "offline.json"
    path.write_text(json.dumps(offline, indent=1), encoding="utf-8")
    recall = {
        task: entry["all"]["recall@10"] for task, entry in offline["comparison"].items() if isinstance(entry, dict)
    }
    return {"path": str(path), "recall@10_difference": recall}


def _check_model(index: CatalogIndex, version: str, encoder: Any) -> None:
    model_id = index.version_info(version).model_id
    if model_id != encoder.model_id:
        raise ValueError(f"rollout: version {version} holds vectors of {model_id}, but the live model given loads as "
                         f"{encoder.model_id}; set LOOKSYNC_CLIP_MODEL/LOOKSYNC_CLIP_WEIGHTS to the live model")  # fmt: skip


def shadow_evidence(settings: Settings, index: CatalogIndex, candidate: dict[str, Any], source: str, *,
                    min_mirrored: int, wait_s: float, sample_root: Path | None = None, live_encoder: Any = None,
                    candidate_encoder: Any = None, text_products: int = 100) -> dict[str, Any]:  # fmt: skip
    """Comparisons of mirrored queries for the candidate: ``source`` ``replay`` asks the evaluation set
    through the mirror now; ``service`` waits (at most ``wait_s``) until the service's mirror has logged
    ``min_mirrored`` of them."""
    from looksync.search.shadow import ShadowLog

    log_ = ShadowLog(settings.resolved_shadow_log_dir, candidate["version"])
    if source == "replay":
        from looksync.quality.evaluation.harness import load_truth
        from looksync.quality.rollout.evidence import replay_through_mirror

        replay_through_mirror(settings, index, load_truth(sample_root), live_encoder, candidate_encoder,  # type: ignore[arg-type]
                              max_text_products=text_products)  # fmt: skip
    elif source == "service":
        deadline = time.monotonic() + wait_s
        while len(log_.read()) < min_mirrored and time.monotonic() < deadline:
            time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
    else:
        raise ValueError(f"shadow source {source!r}: known: replay, service")
    return {"log": str(log_.path), "mirrored": len(log_.read())}


def decide(settings: Settings, candidate: dict[str, Any], offline: dict[str, Any], shadow: dict[str, Any],
           gates: dict[str, Any], out_dir: Path, context: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The gates over the evidence and the HTML report; returns {"promote", "report", "failed": [gate names]}."""
    from looksync.quality.rollout.gates import GateParams, evaluate_gates
    from looksync.quality.rollout.report import write_rollout_report
    from looksync.search.shadow import ShadowLog

    offline_full = json.loads(Path(offline["path"]).read_text(encoding="utf-8"))
    records = ShadowLog(Path(shadow["log"]).parent, candidate["version"]).read()
    decision = evaluate_gates(offline_full["comparison"], records, GateParams.from_mapping(gates))
    report = write_rollout_report(out_dir / "report.html", decision, offline_full,
                                  {**context, "candidate": candidate["version"], "candidate model": candidate["model_id"],
                                   "live": candidate["live"]})  # fmt: skip
    failed = [g["name"] for g in decision["gates"] if not g["passed"]]
    for g in decision["gates"]:
        log.info("gate %s: %s: %s", g["name"], "pass" if g["passed"] else "FAIL", g["reason"])
    return {"promote": decision["promote"], "report": str(report), "failed": failed}


def promote(index: CatalogIndex, candidate: dict[str, Any]) -> dict[str, Any]:
    """Make the candidate live: the shadow version swapped in atomically, if it is still the candidate."""
    if index.shadow_version() != candidate["version"]:
        raise ValueError(
            f"rollout: the shadow version is {index.shadow_version()!r}, not {candidate['version']}; not promoted"
        )
    was, now = index.promote_shadow()
    log.info("rollout: %s live (was %s)", now, was)
    return {"live": now, "previous": was}


def stop(index: CatalogIndex, candidate: dict[str, Any]) -> dict[str, Any]:
    """Leave live as it is: the candidate is unmarked and dropped (never live, never a rollback target)."""
    if index.shadow_version() == candidate["version"]:
        index.set_shadow(None)
    if any(info.name == candidate["version"] for info in index.list_versions()):
        index.drop_version(candidate["version"])
    log.info("rollout stopped: %s dropped, %s stays live", candidate["version"], index.live_version())
    return {"live": index.live_version(), "dropped": candidate["version"]}
