"""Ingest standardising: each kept product's image hash settled, its attributes standardised, and
its final outcome (new / image changed / metadata only / unchanged) classified.

Owns ``standardise_stage``; the standardising itself is ``looksync.pipelines.enrich``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import Product
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.pipelines.gc_pause import gc_paused
from looksync.pipelines.ingest_detect import metadata_differs
from looksync.pipelines.ingest_workspace import OUTCOMES, Workspace, _merge_counts, _quarantine_product, _timed
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ZeroShot


@gc_paused()
def standardise_stage(settings: Settings, ws: Workspace, model_id: str, zeroshot: ZeroShot | None = None) -> Workspace:
    """Settle each product's image hash, standardise attributes, and classify the final outcome."""
    from looksync.pipelines.enrich import standardise

    t0 = time.perf_counter()
    classes = ws.read_json("classes")
    fetched: dict[str, str] = ws.read_json("fetched", {})
    failed = ws.read_json("embed_failures", {})
    quarantine = ws.quarantine(settings)
    row_refs = ws.read_json("row_refs", {})
    stored = ProductStore(settings.data_dir).get_many(classes["image_check"] + classes["same_image"])
    vectors_store = EmbeddingStore.from_settings(settings)
    ready: list[Product] = []
    fetch_needed = set(classes["new"]) | set(classes["image_check"])
    for p in ws.read_products("incoming"):
        if p.product_id in fetch_needed:
            if p.product_id not in fetched:
                continue  # quarantined at fetch; a stored version (if any) stays as it is
            p.image_hash = fetched[p.product_id]
            if p.image_hash in failed:
                _quarantine_product(row_refs, quarantine, p, Reason.IMAGE_NOT_IMAGE, failed[p.image_hash])
                continue
        p.model_id = model_id
        ready.append(p)
    vectors = vectors_store.lookup(model_id, {p.image_hash for p in ready})
    ready = [p for p in ready if p.image_hash in vectors]
    result = standardise(ready, vectors, zeroshot, settings.zeroshot_min_confidence)
    final: dict[str, list[str]] = {k: [] for k in ("new", "image_changed", "metadata_only", "unchanged")}
    write: list[Product] = []
    for p in ready:
        old = stored.get(p.product_id)
        if old is None:
            outcome = "new"
        elif old.image_hash != p.image_hash:
            outcome = "image_changed"
        elif metadata_differs(old, p):
            outcome = "metadata_only"
        else:
            outcome = "unchanged"
        final[outcome].append(p.product_id)
        if outcome != "unchanged":
            write.append(p)
    final["unchanged"] += classes.get("unchanged", [])  # confirmed from their rows' keys, never parsed
    # read for their offer only (row_keys.confirm_offers): the stored product with a new offer, written at apply
    final["offer"] = classes.get("offer", [])
    final["metadata_only"] += final["offer"]
    final["model_id"] = model_id
    final["vanished"] = classes["vanished"]
    final["held"] = classes.get("held", [])
    ws.write_products("write", write)
    ws.write_json("final", final)
    ws.write_json("sources", result.sources)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    # every distinct image of a product kept in this run whose vector was not computed now was reused
    kept_images = {p.image_hash for p in ready} | set(ws.read_json("unchanged_images", []))
    report.embeddings_reused = len(kept_images - set(ws.read_json("embedded_hashes", [])))
    report.outcomes = {k: len(final[k]) for k in OUTCOMES if k in final}
    report.outcomes["quarantined"] = sum(report.quarantined.values())
    report.standardised = {"rules": result.count("rules"), "zeroshot": result.count("zeroshot"),
                           "contradictions": len(result.contradictions), "still_missing": len(result.still_missing)}  # fmt: skip
    ws.save_report(report)
    _timed(ws, "standardise", t0)
    return ws
