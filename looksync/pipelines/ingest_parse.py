"""Ingest parsing: the feed read into products, and the rows that cannot be products quarantined.

Owns ``parse_stage`` (which also sorts out the rows a stored product was made from and the rows read
for their offer only, by their row and offer keys: ``looksync.pipelines.row_keys``), ``resolve_feed``
(a local path for a feed, ``s3://`` ones downloaded) and ``category_fallback`` (the CLIP fallback for
unknown category terms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from looksync.catalog.clip_terms import ClipCategoryFallback
from looksync.catalog.schema import Product
from looksync.catalog.stores import ProductStore
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.catalog.vendors.feed import ParsedRow, apply_offer
from looksync.catalog.vendors.fingerprint import mapping_fingerprint
from looksync.pipelines.feed_ref import FeedRef
from looksync.pipelines.gc_pause import gc_paused
from looksync.pipelines.ingest_detect import metadata_differs
from looksync.pipelines.ingest_workspace import Workspace, _timed, log
from looksync.pipelines.row_keys import known_rows, settings_salt
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ZeroShot


def resolve_feed(settings: Settings, feed: str, workdir: Path) -> Path:
    """A local path for the feed: ``s3://`` feeds are downloaded into ``workdir`` first."""
    if feed.startswith("s3://"):
        from looksync.catalog.object_store import open_store

        bucket_and_key = feed.removeprefix("s3://")
        bucket, _, key = bucket_and_key.partition("/")
        store = open_store(f"s3://{bucket}", settings)
        return store.get_file(key, workdir / "feed" / Path(key).name)
    return Path(feed.removeprefix("file://"))


def category_fallback(
    settings: Settings, zeroshot: ZeroShot | Callable[[], ZeroShot] | None = None
) -> ClipCategoryFallback | None:
    """The CLIP fallback for unknown category terms the settings ask for (None: ``category_clip_fallback``
    off). Without ``zeroshot`` the settings' CLIP model is loaded at the first unknown term only."""
    if not settings.category_clip_fallback:
        return None

    def settings_model() -> ZeroShot:
        from embeddings import ZeroShot, load_encoder_from_settings

        return ZeroShot(load_encoder_from_settings(settings))

    return ClipCategoryFallback(zeroshot or settings_model, settings.category_clip_min_confidence,
                                settings.category_clip_max_wrong)  # fmt: skip


@gc_paused()
def parse_stage(
    settings: Settings,
    ref: FeedRef,
    run_id: str,
    fallback: ClipCategoryFallback | None | bool = True,
    reuse_unchanged: bool = True,
) -> Workspace:
    """Read and validate the feed; rows that cannot become products go to quarantine. ``fallback``: the
    CLIP fallback for unknown category terms (True: ``category_fallback(settings)``; None: none).

    A row that is exactly the one a stored product was made from (same bytes, same mapping: its row key,
    ``looksync.catalog.vendors.fingerprint``) is not mapped again (``reuse_unchanged``): it is listed in
    ``unchanged.json`` (product id -> row key) and ``detect_stage`` confirms it against the stores. A row
    that is a stored product's row but for its offer cells (its offer key) is read for its offer only: the
    stored product with that offer goes to ``offers`` (``offered.json``: ``changed`` / ``same`` as the
    stored one), not ``incoming`` (``looksync.pipelines.row_keys``)."""
    t0 = time.perf_counter()
    ws = Workspace.create(settings, ref, run_id)
    config = load_vendor_config(ref.vendor)
    fallback = category_fallback(settings) if fallback is True else fallback or None
    quarantine = ws.quarantine(settings)
    report = ws.report()
    report.message_id = ref.message_id
    report.quarantine_path = str(quarantine.path)
    products: list[Product] = []
    seen_skus: set[str] = set()
    row_refs: dict[str, list] = {}  # product id -> [row ref, line] in the feed, for quarantines of later stages
    doubtful: list[tuple[str, str | None]] = []  # (row ref, recovered SKU) of unreadable or SKU-less rows
    cleaned: dict[str, list[str]] = {}  # "title truncated" -> row refs: display text changed on the way in
    fingerprint = mapping_fingerprint(config, settings_salt(settings))
    known, known_offers = known_rows(settings, ref.vendor) if reuse_unchanged and settings.ingest_row_keys else ({}, {})
    unchanged: dict[str, str] = {}  # product id -> row key: rows a stored product was made from
    row_keys: dict[str, str] = {}  # product id -> row key of the products mapped now (recorded if they are kept)
    offer_keys: dict[str, str] = {}  # product id -> offer key, likewise
    offer_rows: list[ParsedRow] = []  # rows read for their offer only, made products once the feed is read
    sources = report.category_sources

    def take(row: ParsedRow) -> None:
        seen_skus.update(row.swallowed_skus)
        if row.rejection is not None:
            quarantine.add(row.rejection)
            if row.rejection.vendor_sku:
                seen_skus.add(row.rejection.vendor_sku)
            if row.doubtful:
                doubtful.append((row.row_ref, row.rejection.vendor_sku))
            return
        (offers if row.offer_of is not None else products).append(row.product)
        source = row.product.category_source or "rule"
        sources[source] = sources.get(source, 0) + 1
        row_refs[row.product.product_id] = [row.row_ref, row.line]
        seen_skus.add(row.product.vendor_sku)
        for key, changes in row.cleaned.items():
            for change in changes:
                cleaned.setdefault(f"{key} {change}", []).append(row.row_ref)
        # a row whose text was cleaned or whose category CLIP guessed is mapped again each time, so
        # its note and the fallback's counts stay in every run's report
        if row.row_key is not None and not row.cleaned and source != "clip":
            row_keys[row.product.product_id] = row.row_key
            if row.offer_key is not None:
                offer_keys[row.product.product_id] = row.offer_key

    feed = read_feed(config, resolve_feed(settings, ref.feed, ws.path), fallback, fingerprint=fingerprint, known=known,
                     offers=known_offers)  # fmt: skip
    offers: list[Product] = []
    for row in feed:
        report.rows_read += 1
        if row.unchanged is not None:
            pid, sku, source = known[row.row_key]
            unchanged[pid] = row.row_key
            seen_skus.add(sku)
            source = source or "rule"
            sources[source] = sources.get(source, 0) + 1
        elif row.offer_of is not None:
            offer_rows.append(row)
        else:
            take(row)
    stored = ProductStore(settings.data_dir).records([row.offer_of for row in offer_rows]) if offer_rows else {}
    for row in offer_rows:
        take(apply_offer(config, row, stored.get(row.offer_of), fallback))
    ws.write_products("incoming", products)
    ws.write_products("offers", offers)
    offered: dict[str, list[str]] = {"changed": [], "same": []}  # as the stored products: differ or not
    for p in offers:
        offered["changed" if metadata_differs(p, stored[p.product_id]) else "same"].append(p.product_id)
    ws.write_json("offered", offered)
    ws.write_json("unchanged", unchanged)
    ws.write_json("row_keys", row_keys)
    ws.write_json("offer_keys", offer_keys)
    ws.write_json("seen_skus", sorted(seen_skus))
    ws.write_json("doubtful_rows", doubtful)
    ws.write_json("row_refs", row_refs)
    report.quarantined = dict(quarantine.counts)
    for note in fallback.notes() if fallback else []:
        report.notes.append(note)
        log.warning(note, extra={"run_id": run_id, "vendor": ref.vendor})
    for what, refs in sorted(cleaned.items()):
        shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        report.notes.append(f"text cleaned: {what} in {len(refs)} row(s) ({shown}); see docs/vendors.md")
        log.warning("display text cleaned: %s in %d row(s)", what, len(refs), extra={"run_id": run_id, "vendor": ref.vendor, "rows": refs[:50]})
    ws.save_report(report)
    _timed(ws, "parse", t0)
    log.info("parsed %d rows: %d products, %d rows as stored, %d read for their offer", report.rows_read,
             len(products), len(unchanged), len(offers), extra={"run_id": run_id, "vendor": ref.vendor})  # fmt: skip
    return ws
