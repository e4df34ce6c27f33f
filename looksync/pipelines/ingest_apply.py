"""Ingest apply: a run's outcome written to the product store, the live index and the Redis mirror.

Owns ``apply_stage`` (upserts, metadata updates, deletions; the first ingest bootstraps the live index
version) and the notes it leaves in the report.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from looksync.catalog.schema import Product
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.pipelines.gc_pause import gc_paused
from looksync.pipelines.ingest_workspace import IngestReport, Workspace, _timed, log
from looksync.settings import Settings

if TYPE_CHECKING:
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.index import CatalogIndex


@gc_paused()
def apply_stage(
    settings: Settings,
    ws: Workspace,
    index: CatalogIndex | None = None,
    mirror: AttributeMirror | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """Write the outcome: product store, live index (upsert / metadata update / delete), Redis mirror.

    Without a live index version one is created for this model (the first ingest bootstraps the
    index); a live version of another model is left alone (a model switch goes through a backfill
    into a new version, then a swap)."""
    import numpy as np

    t0 = time.perf_counter()
    final = ws.read_json("final")
    write = ws.read_products("write")
    report = ws.report()
    if dry_run:
        report.notes.append("dry run: nothing written")
        ws.save_report(report)
        return report
    if final.get("offer"):  # the stored products with a new offer: their vectors are of the run's model
        offered = set(final["offer"])
        for p in ws.read_products("offers"):
            if p.product_id in offered:
                p.model_id = final["model_id"]
                write.append(p)
    outcome_of = {pid: k for k in ("new", "image_changed", "metadata_only") for pid in final[k]}
    by_outcome: dict[str, list[Product]] = {k: [] for k in ("new", "image_changed", "metadata_only")}
    for p in write:
        if p.product_id in outcome_of:
            by_outcome[outcome_of[p.product_id]].append(p)
    products = ProductStore(settings.data_dir)
    # the keys of the products kept, written or confirmed: recorded with them
    row_keys, offer_keys = ws.read_json("row_keys", {}), ws.read_json("offer_keys", {})
    kept = [pid for k in ("new", "image_changed", "metadata_only", "unchanged") for pid in final[k]]
    report.products_stored = products.upsert(write, {pid: row_keys[pid] for pid in kept if pid in row_keys},
                                             {pid: offer_keys[pid] for pid in kept if pid in offer_keys})  # fmt: skip
    products.delete(final["vanished"])
    if index is not None:
        model_id = write[0].model_id if write else None
        live = index.live_version()
        if live is None and write:
            dim = len(next(iter(EmbeddingStore.from_settings(settings).lookup(model_id, [write[0].image_hash]).values())))
            live = index.create_version(model_id, dim)
            index.set_live(live)
            report.notes.append(f"no live index version: created {live} for {model_id}")
        live_model = index.live_model_id() if live else None
        if live and model_id and live_model != model_id:
            report.notes.append(f"live index {live} holds {live_model}, not {model_id}: index not updated (backfill + swap)")
        elif live:
            embed_now = by_outcome["new"] + by_outcome["image_changed"]
            if embed_now:
                vectors = EmbeddingStore.from_settings(settings).lookup(model_id, {p.image_hash for p in embed_now})
                matrix = np.stack([vectors[p.image_hash] for p in embed_now]).astype(np.float32)
                result = index.upsert(live, embed_now, matrix)
                _index_failures(report, result.failures, "upsert")
            if by_outcome["metadata_only"]:
                result = index.update_metadata(live, by_outcome["metadata_only"])
                _index_failures(report, result.failures, "metadata update")
            if final["vanished"]:
                index.delete(live, final["vanished"])
            report.index_version = live
    else:
        report.notes.append("no index given: stores written, index not updated (run `looksync index build`)")
    if mirror is not None:
        groups = products.groups() if write else {}
        mirror.upsert(write, {p.product_id: groups.get(p.product_id) for p in write}, ws.read_json("sources", {}))
        mirror.delete(final["vanished"])
    else:
        report.notes.append("no Redis configured: attribute mirror not updated")
    ws.save_report(report)
    _timed(ws, "apply", t0)
    report = ws.report()
    log.info(
        "ingest done: %s; %d embedded, %d reused, %d quarantined",
        report.outcomes, report.embedded, report.embeddings_reused, report.quarantined_total,
        extra={"run_id": report.run_id, "vendor": report.vendor},
    )  # fmt: skip
    return report


def _index_failures(report: IngestReport, failures: list[tuple[str, str]], what: str) -> None:
    if failures:
        report.notes.append(f"index {what}: {len(failures)} failures, first: {failures[0]}")
