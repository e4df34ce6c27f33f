"""Ingest change detection: how each incoming product compares with the stored one.

Owns ``detect_stage`` (new / image to check / same image / unchanged / offer only / vanished / held),
``metadata_differs`` (what counts as a change of a product: every field but the pipeline's bookkeeping;
parse and standardise compare with it too) and ``deletion_hold`` (when a run's deletions must wait for
a confirmation).
"""

from __future__ import annotations

import time
from typing import Any

from looksync.catalog.schema import Product
from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.catalog.vendors import load_vendor_config
from looksync.pipelines.gc_pause import gc_paused
from looksync.pipelines.ingest_workspace import Workspace, _timed, log
from looksync.pipelines.row_keys import confirm_offers, confirm_unchanged
from looksync.settings import Settings

# fields whose difference is not a change of the product (bookkeeping of the pipeline itself)
_NOT_COMPARED = {"updated_at", "image_hash", "model_id"}
_COMPARED = tuple(name for name in Product.model_fields if name not in _NOT_COMPARED)


def metadata_differs(a: Product, b: Product | dict[str, Any]) -> bool:
    """Whether two products differ in anything but bookkeeping; ``b`` may be a stored record as a JSON
    object (``ProductStore.records``)."""
    # field by field on the attributes (str, float, bool, lists of str: equal exactly when their JSON is,
    # so a record's JSON values compare as the product's); two model_dumps per product cost more than
    # the rest of the comparison
    if isinstance(b, dict):
        return any(getattr(a, k) != b.get(k) for k in _COMPARED)
    return any(getattr(a, k) != getattr(b, k) for k in _COMPARED)


def deletion_hold(settings: Settings, vanished: int, live: int, unattributed: list[str]) -> list[str]:
    """Why a run's deletions must wait for a confirmation (empty: they may go ahead).

    ``unattributed``: quarantined rows that may be any live product (no SKU recovered, or one salvaged
    from a damaged row that names no live product: the damage may have hit the SKU), so no absence can
    be trusted;
    a large share of the catalog vanishing at once is far more often a broken export than a clearance."""
    if not vanished:
        return []
    reasons = []
    if unattributed:
        shown = ", ".join(unattributed[:5]) + (", ..." if len(unattributed) > 5 else "")
        reasons.append(f"{len(unattributed)} unreadable row(s) not attributable to a live product ({shown})")
    share = vanished / live if live else 1.0
    if vanished > settings.ingest_delete_free_count and share > settings.ingest_delete_max_share:
        reasons.append(
            f"{vanished} of {live} live products ({share:.0%}) would be deleted, above the bound of "
            f"{settings.ingest_delete_max_share:.0%} (ingest_delete_max_share)"
        )
    return reasons


@gc_paused()
def detect_stage(
    settings: Settings, ws: Workspace, model_id: str, refetch: bool = False, confirm_deletions: bool = False
) -> Workspace:
    """Classify incoming products against the stored ones: which need their image fetched, which
    vanished (or are held: see ``deletion_hold``; ``confirm_deletions`` releases a hold). Products
    keeping their image carry the stored image hash forward."""
    t0 = time.perf_counter()
    ref = ws.ref
    incoming = ws.read_products("incoming")
    products = ProductStore(settings.data_dir)
    have_vector = EmbeddingStore.from_settings(settings).hashes(model_id)
    live = products.vendor_rows(ref.vendor, ["product_id", "vendor_sku", "image_hash"])  # the vendor's stored rows
    live_ids, live_skus, live_images = (live.column(i).to_pylist() for i in range(3)) if live is not None else ([], [], [])
    stored_images = dict(zip(live_ids, live_images, strict=True))
    confirmed = confirm_unchanged(products, stored_images, ws.read_json("unchanged", {}), have_vector, refetch)
    incoming += confirmed["recheck"]
    offers = confirm_offers(stored_images, ws.read_json("offered", {}), have_vector, refetch)
    if offers["recheck"]:  # read for their offer, but their stored image needs fetching: classified below
        recheck = set(offers["recheck"])
        incoming += [p for p in ws.read_products("offers") if p.product_id in recheck]
    stored = products.get_many([p.product_id for p in incoming])
    classes: dict[str, list[str]] = {"new": [], "image_check": [], "same_image": [], "vanished": [], "held": []}
    for p in incoming:
        old = stored.get(p.product_id)
        if old is None:
            classes["new"].append(p.product_id)
        elif refetch or old.image_urls[0] != p.image_urls[0] or old.image_hash not in have_vector:
            classes["image_check"].append(p.product_id)
        else:
            p.image_hash = old.image_hash
            classes["same_image"].append(p.product_id)
    classes["unchanged"] = confirmed["ids"] + offers["same"]
    classes["offer"] = offers["changed"]  # keep their stored image and vector: written at apply, nothing else
    ws.write_json("unchanged_images", sorted(set(confirmed["images"]) | set(offers["images"])))
    if confirmed["recheck"]:  # mapped from their rows as before: their row keys still hold
        unchanged, row_keys = ws.read_json("unchanged", {}), ws.read_json("row_keys", {})
        ws.write_json("row_keys", row_keys | {p.product_id: unchanged[p.product_id] for p in confirmed["recheck"]})
    if ref.mode == "full" and settings.ingest_delete_vanished:
        seen = set(ws.read_json("seen_skus", []))
        present = {p.product_id for p in incoming} | set(classes["unchanged"]) | set(classes["offer"])
        config = load_vendor_config(ref.vendor)  # stored SKUs keyed as this run keyed the feed's
        absent = [(pid, sku) for pid, sku in zip(live_ids, live_skus, strict=True) if pid not in present]
        vanished = sorted(pid for pid, sku in absent if config.sku_key(sku) not in seen)
        doubtful_rows = ws.read_json("doubtful_rows", [])
        live_keys = {config.sku_key(sku) for sku in live_skus} if doubtful_rows else set()
        unattributed = [ref for ref, sku in doubtful_rows if not sku or sku not in live_keys]
        reasons = deletion_hold(settings, len(vanished), len(live_ids), unattributed)
        if reasons and not confirm_deletions:
            classes["held"] = vanished
            report = ws.report()
            report.deletions_held, report.hold_reasons = vanished, reasons
            report.notes.append(
                f"deletions held: {len(vanished)} vanished product(s) left live because "
                + "; ".join(reasons)
                + " (rerun with --confirm-deletions / the DAG's confirm_deletions param to delete them)"
            )
            ws.save_report(report)
            log.warning(
                "deletions held: %d vanished products left live: %s", len(vanished), "; ".join(reasons),
                extra={"run_id": ws.run_id, "vendor": ref.vendor, "product_ids": vanished[:20]},
            )  # fmt: skip
        else:
            classes["vanished"] = vanished
            if reasons:
                report = ws.report()
                report.notes.append(f"deletions confirmed: {len(vanished)} deleted although " + "; ".join(reasons))
                ws.save_report(report)
    ws.write_products("incoming", incoming)
    ws.write_json("classes", classes)
    _timed(ws, "detect", t0)
    return ws
