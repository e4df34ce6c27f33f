"""Ingest one vendor feed: parse -> validate -> quarantine -> fetch images -> embed -> store.

The stages are plain functions so a DAG task or the CLI can call them. This is the first slice: a
whole feed per call, vectors written to the embeddings store, products to the product store; the
near-duplicate grouping, change detection and live-index upserts are the pipelines issue's.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from looksync.images import FetchError, FetchPolicy, fetch_images
from looksync.quarantine import QuarantineRecord, QuarantineWriter, Reason
from looksync.schema import Product
from looksync.settings import Settings
from looksync.store import EmbeddingStore, ProductStore
from looksync.vendors import load_vendor_config, read_feed

if TYPE_CHECKING:
    from embeddings import ClipEncoder

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    run_id: str
    vendor: str
    feed: str
    rows_read: int = 0
    products_stored: int = 0
    embedded: int = 0
    embeddings_reused: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_path: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def new_run_id(prefix: str = "ingest") -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _quarantine_product(quarantine: QuarantineWriter, product: Product, reason: Reason, message: str) -> None:
    quarantine.add(
        QuarantineRecord(
            vendor=product.vendor,
            reason=reason,
            message=message,
            row_ref=f"sku {product.vendor_sku}",
            raw=product.model_dump(mode="json"),
            vendor_sku=product.vendor_sku,
        )
    )


def ingest_feed(
    settings: Settings,
    vendor: str,
    feed_path: str | Path,
    encoder: ClipEncoder,
    run_id: str | None = None,
) -> IngestReport:
    run_id = run_id or new_run_id()
    config = load_vendor_config(vendor)
    quarantine = QuarantineWriter(settings.data_dir / "quarantine", run_id)
    report = IngestReport(run_id=run_id, vendor=vendor, feed=str(feed_path), quarantine_path=str(quarantine.path))
    log.info("ingest start", extra={"run_id": run_id, "vendor": vendor, "feed": str(feed_path)})

    t0 = time.perf_counter()
    products: list[Product] = []
    for row in read_feed(config, feed_path):
        report.rows_read += 1
        if row.rejection is not None:
            quarantine.add(row.rejection)
        else:
            products.append(row.product)
    report.seconds["parse"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    policy = FetchPolicy.from_settings(settings)
    fetched = fetch_images([p.image_urls[0] for p in products], policy, settings.fetch_concurrency)
    images: dict[str, bytes] = {}
    with_images: list[Product] = []
    for product, result in zip(products, fetched, strict=True):
        if isinstance(result, FetchError):
            _quarantine_product(quarantine, product, result.reason, result.message)
            continue
        product.image_hash = result.sha256
        images[result.sha256] = result.data
        with_images.append(product)
    report.seconds["fetch"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = EmbeddingStore(settings.data_dir)
    known = store.lookup(encoder.model_id, images)
    report.embeddings_reused = len(known)
    todo = [(h, data) for h, data in images.items() if h not in known]
    ids, vectors, failures = encoder.encode_images_safe(todo)
    store.add(encoder.model_id, ids, vectors)
    report.embedded = len(ids)
    failed = dict(failures)
    report.seconds["embed"] = time.perf_counter() - t0

    stored: list[Product] = []
    for product in with_images:
        if product.image_hash in failed:
            _quarantine_product(quarantine, product, Reason.IMAGE_NOT_IMAGE, failed[product.image_hash])
            continue
        product.model_id = encoder.model_id
        stored.append(product)
    report.products_stored = ProductStore(settings.data_dir).upsert(stored)
    report.quarantined = dict(quarantine.counts)
    log.info(
        "ingest done: %d rows, %d stored, %d embedded, %d reused, %d quarantined",
        report.rows_read,
        report.products_stored,
        report.embedded,
        report.embeddings_reused,
        report.quarantined_total,
        extra={"run_id": run_id, "vendor": vendor},
    )
    return report
