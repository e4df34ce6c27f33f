"""Ingest images: fetching (with thumbnails) and embedding, as two stages or as one overlapped pass.

Owns ``fetch_stage`` and ``embed_stage`` (the staged path: the DAG runs them as two tasks) and
``fetch_embed_stage`` (the one-process path: both as one overlapped pass over
``looksync.pipelines.fetch_embed``, each image decoded once), which leave the workspace alike.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from looksync.catalog.images import FetchError, FetchPolicy, fetch_images
from looksync.catalog.stores import EmbeddingStore
from looksync.catalog.thumbnails import ThumbnailStore
from looksync.pipelines.ingest_workspace import Workspace, _merge_counts, _quarantine_product, _timed, log
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder


def _images_to_fetch(settings: Settings, ws: Workspace):
    """What both fetch paths start from: the incoming products that are new or may have a new image, the
    run's quarantine, the row references of its rows and the directory the fetched images go to."""
    classes = ws.read_json("classes")
    wanted = set(classes["new"]) | set(classes["image_check"])
    todo = [p for p in ws.read_products("incoming") if p.product_id in wanted] if wanted else []
    images_dir = ws.path / "images"
    images_dir.mkdir(exist_ok=True)
    return todo, ws.quarantine(settings), ws.read_json("row_refs", {}), images_dir


def fetch_stage(settings: Settings, ws: Workspace) -> Workspace:
    """Fetch the images of new and possibly changed products (guarded: see ``looksync.catalog.images``)
    and store the thumbnail of each image not stored yet (``looksync.catalog.thumbnails``)."""
    t0 = time.perf_counter()
    todo, quarantine, row_refs, images_dir = _images_to_fetch(settings, ws)
    fetched: dict[str, str] = {}  # product id -> image hash
    images: dict[str, bytes] = {}  # image hash -> bytes, each distinct image once
    policy = replace(FetchPolicy.from_settings(settings), refuse_blank=True)  # a product image must show something
    results = fetch_images([p.image_urls[0] for p in todo], policy, settings.fetch_concurrency)
    for product, result in zip(todo, results, strict=True):
        if isinstance(result, FetchError):
            _quarantine_product(row_refs, quarantine, product, result.reason, result.message)
            continue
        path = images_dir / result.sha256
        if not path.exists():
            path.write_bytes(result.data)
        fetched[product.product_id] = result.sha256
        images[result.sha256] = result.data
    ws.write_json("fetched", fetched)
    fetch_done = time.perf_counter()
    thumbnails = ThumbnailStore.from_settings(settings).ensure_many(images, settings.fetch_concurrency)
    _log_thumbnail_failures(ws, thumbnails.failed, fetched)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    report.thumbnails = _merge_counts(report.thumbnails, thumbnails.counts())
    ws.save_report(report)
    _timed(ws, "fetch", t0, fetch_done)
    _timed(ws, "thumbnails", fetch_done)
    return ws


def _log_thumbnail_failures(ws: Workspace, failed: dict[str, str], fetched: dict[str, str]) -> None:
    """The cards of these products show the vendor's image URL instead: say which, and why."""
    ids = {"run_id": ws.run_id, "vendor": ws.ref.vendor} if failed else {}
    for image_hash, reason in failed.items():
        product_ids = sorted(pid for pid, h in fetched.items() if h == image_hash)
        log.warning("no thumbnail for image %s: %s", image_hash[:12], reason, extra={**ids, "product_ids": product_ids})


def embed_stage(settings: Settings, ws: Workspace, encoder: ClipEncoder, force: bool = False) -> Workspace:
    """Embed fetched images whose (hash, model) has no stored vector (all of them with ``force``)."""
    t0 = time.perf_counter()
    fetched: dict[str, str] = ws.read_json("fetched", {})
    store = EmbeddingStore.from_settings(settings)
    hashes = set(fetched.values())
    known = {} if force else store.lookup(encoder.model_id, hashes)
    todo = [(h, ws.path / "images" / h) for h in sorted(hashes) if h not in known]
    ids, vectors, failures = encoder.encode_images_safe([(h, p.read_bytes()) for h, p in todo])
    store.add(encoder.model_id, ids, vectors)
    ws.write_json("embed_failures", dict(failures))
    ws.write_json("embedded_hashes", sorted(set(ids) | set(ws.read_json("embedded_hashes", []))))
    report = ws.report()
    report.embedded += len(ids)
    ws.save_report(report)
    _timed(ws, "embed", t0)
    log.info("embedded %d images, reused %d", len(ids), len(known), extra={"run_id": ws.run_id, "vendor": ws.ref.vendor})
    return ws


def fetch_embed_stage(settings: Settings, ws: Workspace, encoder: ClipEncoder, force: bool = False) -> Workspace:
    """``fetch_stage`` and ``embed_stage`` as one overlapped pass, each image decoded once
    (``looksync.pipelines.fetch_embed``): the workspace and the report end as the two stages leave them.
    Seconds: ``embed`` is the forward passes, ``fetch`` the rest of the pass (thumbnails made in it)."""
    from looksync.pipelines.fetch_embed import fetch_and_embed

    t0 = time.perf_counter()
    todo, quarantine, row_refs, images_dir = _images_to_fetch(settings, ws)
    store = EmbeddingStore.from_settings(settings)
    known = set() if force or not todo else store.hashes(encoder.model_id)

    def keep(image_hash: str, data: bytes) -> None:
        if not (images_dir / image_hash).exists():
            (images_dir / image_hash).write_bytes(data)

    result = fetch_and_embed([p.image_urls[0] for p in todo], FetchPolicy.from_settings(settings), encoder,
                             ThumbnailStore.from_settings(settings), known=known, keep=keep,
                             concurrency=settings.fetch_concurrency)  # fmt: skip
    fetched: dict[str, str] = {}
    for product, outcome in zip(todo, result.outcomes, strict=True):
        if isinstance(outcome, FetchError):
            _quarantine_product(row_refs, quarantine, product, outcome.reason, outcome.message)
        else:
            fetched[product.product_id] = outcome
    store.add(encoder.model_id, result.ids, result.vectors)
    ws.write_json("fetched", fetched)
    ws.write_json("embed_failures", dict(result.failures))
    ws.write_json("embedded_hashes", sorted(set(result.ids) | set(ws.read_json("embedded_hashes", []))))
    _log_thumbnail_failures(ws, result.thumbnails.failed, fetched)
    report = ws.report()
    report.quarantined = _merge_counts(report.quarantined, quarantine.counts)
    report.thumbnails = _merge_counts(report.thumbnails, result.thumbnails.counts())
    report.embedded += len(result.ids)
    ws.save_report(report)
    ended = time.perf_counter()
    _timed(ws, "fetch", t0, ended - result.model_s)
    _timed(ws, "embed", ended - result.model_s, ended)
    log.info("fetched %d images, embedded %d", len(fetched), len(result.ids), extra={"run_id": ws.run_id, "vendor": ws.ref.vendor})
    return ws
