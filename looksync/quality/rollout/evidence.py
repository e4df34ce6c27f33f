"""The evidence a rollout decides on, gathered from real index versions:

- ``offline_comparison``: the evaluation set's look queries (market, gender and planted layers given) and
  text queries (captions and titles), asked of the live version with the live model and of the candidate
  version with the candidate model through ``SearchEngine`` (the tasks and scoring of ``looksync eval``),
  then compared per query with ``looksync.quality.evaluation.compare`` (paired bootstrap intervals);
- ``replay_through_mirror``: the same looks and texts asked of the live engine with a ``ShadowMirror`` on
  it, so each is mirrored to the shadow version by the service's own code path and lands in the shadow
  log (for a rollout with no live traffic yet, and for the DAG test). Its queue holds every replayed
  query, so nothing is dropped by construction; live traffic keeps the configured bound.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from looksync.index import CatalogIndex
from looksync.quality.evaluation.harness import EvalConfig, SampleTruth, look_task, text_products, text_task
from looksync.quality.evaluation.scoring import compare, summarise
from looksync.settings import Settings

log = logging.getLogger(__name__)


def offline_comparison(settings: Settings, index: CatalogIndex, truth: SampleTruth, live: tuple[str, Any],
                       candidate: tuple[str, Any], *, k: int = 10, max_text_products: int = 100,
                       n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """``live`` and ``candidate``: (index version, encoder of the model that made its vectors)."""
    from looksync.search.shadow import version_engine

    text_ids = text_products(truth, max_text_products, seed)
    scored: dict[str, list] = {}
    for name, (version, encoder) in (("live", live), ("candidate", candidate)):
        engine = version_engine(settings, encoder, index, version)
        config = EvalConfig(name, encoder.name, "-")
        queries, _ = look_task(engine, truth, config, k)
        queries += text_task(engine, truth, text_ids, k)
        scored[name] = queries
        log.info("offline evaluation of %s (%s): %d queries", version, encoder.model_id, len(queries))
    return {
        "live": {"version": live[0], "model_id": live[1].model_id, "metrics": summarise(scored["live"], n_resamples)},
        "candidate": {
            "version": candidate[0],
            "model_id": candidate[1].model_id,
            "metrics": summarise(scored["candidate"], n_resamples),
        },  # fmt: skip
        "comparison": compare(scored["live"], scored["candidate"], n_resamples),
        "queries": {
            name: [{k: v for k, v in asdict(q).items() if k != "results"} for q in qs] for name, qs in scored.items()
        },
    }


def replay_through_mirror(settings: Settings, index: CatalogIndex, truth: SampleTruth, live_encoder: Any,
                          shadow_encoder: Any, *, max_text_products: int = 100, seed: int = 0,
                          timeout_s: float = 600.0) -> int:  # fmt: skip
    """Ask the evaluation looks and texts of the live engine with a mirror to the index's shadow version
    (share 1); returns how many comparisons the mirror recorded."""
    from PIL import Image

    from looksync.quality.evaluation.harness import in_frame_layers
    from looksync.quality.finetune import canonical_caption
    from looksync.search.engine import LookSearchRequest, SearchRequest
    from looksync.search.shadow import ShadowMirror, version_engine

    shadow = index.shadow_version()
    if shadow is None:
        raise ValueError("replay: the index has no shadow version")
    live = version_engine(settings, live_encoder, index, index.live_version() or "")
    text_ids = text_products(truth, max_text_products, seed)
    looks = sorted(truth.looks.items())
    mirror = ShadowMirror(version_engine(settings, shadow_encoder, index, shadow), index, shadow,
                          settings.resolved_shadow_log_dir, share=1.0, queue_size=len(looks) + len(text_ids) + 1)  # fmt: skip
    live.mirror = mirror
    try:
        for look_id, expected in looks:
            planted = in_frame_layers(expected)
            if not planted:
                continue
            request = LookSearchRequest(
                market=expected["market"], gender=expected["gender"], layers=sorted(planted), k=10
            )
            with Image.open(Path(truth.manifest.looks_dir) / f"{look_id}.png") as image:
                live.search_look(image.convert("RGB"), request)
        for pid in text_ids:
            product = truth.products[pid]
            live.search(SearchRequest(text=canonical_caption(product), market=product.market, k=10))
        if not mirror.drain(timeout_s):
            raise TimeoutError(f"replay: the shadow did not answer every mirrored query within {timeout_s} s")
    finally:
        mirror.close()
    return mirror.compared
