"""Rebuild the index: stores -> new version -> validate -> swap live -> snapshot -> prune.

Vectors come from the embeddings store (never recomputed); products from the product store. Only
products whose image has a vector of the requested model are indexed; the rest are reported. Each step
is a function of its own so the ``catalog_reindex`` DAG runs them as separate tasks; ``build_index``
runs them in one go for the CLI. Every step before ``swap`` works on the new version only, so a failure
anywhere before it leaves the live version serving; a version that failed validation is never made
live: it is dropped at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from looksync.catalog.stores import EmbeddingStore, ProductStore
from looksync.index import CatalogIndex
from looksync.settings import Settings

log = logging.getLogger(__name__)

# (step, steps done, steps): build_index's steps are the write batches, the end of the bulk load, then the rest
Progress = Callable[[str, int, int], None]


class ReindexError(RuntimeError):
    """A reindex step failed; the live version is unchanged (the message says which step and why)."""


@dataclass
class BuildReport:
    version: str
    model_id: str
    indexed: int
    missing_vectors: list[str]
    failures: list[tuple[str, str]]
    pruned: list[str] = field(default_factory=list)
    previous_live: str | None = None
    validation: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None


def _ready(settings: Settings, model_id: str):
    products = ProductStore(settings.data_dir).all()
    vectors = EmbeddingStore.from_settings(settings).load(model_id)
    if not vectors:
        raise RuntimeError(f"embeddings store has no vectors for model {model_id!r}; ingest feeds with it first")
    ready = sorted((p for p in products if p.image_hash in vectors), key=lambda p: p.product_id)
    missing = [p.product_id for p in products if p.image_hash not in vectors]
    return ready, missing, vectors


def build_version(
    settings: Settings, index: CatalogIndex, model_id: str, batch_size: int = 1000, progress: Progress | None = None
) -> BuildReport:
    """Write every product with a vector of ``model_id`` into a new, not-live version (``progress``: after each
    batch and after the end of the bulk load)."""
    ready, missing, vectors = _ready(settings, model_id)
    batches = range(0, len(ready), batch_size)
    steps = len(batches) + 1  # each batch, then the end of the bulk load
    done = progress or (lambda step, n, of: None)
    dim = len(next(iter(vectors.values())))
    previous = index.live_version()
    version = index.create_version(model_id, dim)
    failures: list[tuple[str, str]] = []
    indexed = 0
    index.begin_bulk_load(version)
    for n, start in enumerate(batches, 1):
        batch = ready[start : start + batch_size]
        for p in batch:
            p.model_id = model_id
        matrix = np.stack([vectors[p.image_hash] for p in batch]).astype(np.float32)
        result = index.upsert(version, batch, matrix)
        indexed += result.written
        failures.extend(result.failures)
        done(f"write batch {n}/{len(batches)}", n, steps)
    index.end_bulk_load(version)
    done("end bulk load", steps, steps)
    if indexed == 0:
        raise RuntimeError(f"index version {version} is empty ({len(failures)} failures); live version unchanged")
    return BuildReport(version, model_id, indexed, missing, failures, previous_live=previous)


# -- the same build in shards, for the DAGs: plan -> load each shard (mapped, in parallel) -> finish --


def plan_build(settings: Settings, index: CatalogIndex, model_id: str, shard_size: int) -> dict[str, Any]:
    """Create the new (not live) version, put it in bulk-load mode and cut the products with a vector of
    ``model_id`` into row ranges of at most ``shard_size`` (product id order); ``load_build_shard`` loads
    each range, from any worker, ``finish_build`` ends the load."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    ready, missing, vectors = _ready(settings, model_id)
    dim = len(next(iter(vectors.values())))
    previous = index.live_version()
    version = index.create_version(model_id, dim)
    index.begin_bulk_load(version)
    ranges = [[start, min(start + shard_size, len(ready))] for start in range(0, len(ready), shard_size)] or [[0, 0]]
    return {"version": version, "model_id": model_id, "ranges": ranges, "missing_vectors": missing[:100],
            "missing_count": len(missing), "previous_live": previous, "products": len(ready)}  # fmt: skip


def load_build_shard(
    settings: Settings, index: CatalogIndex, version: str, model_id: str, start: int, end: int, batch_size: int = 1000
) -> dict[str, Any]:
    """Write products ``start``..``end`` (of ``plan_build``'s order) into ``version``: upserts keyed by
    product id, so a shard loaded twice writes the same documents again. Vectors come from the
    embeddings store; nothing is embedded."""
    ready, _missing, vectors = _ready(settings, model_id)
    rows = ready[start:end]
    index.begin_bulk_load(version)  # idempotent: this process's handle learns the version is loading
    written, failures = 0, []
    for offset in range(0, len(rows), batch_size):
        batch = rows[offset : offset + batch_size]
        for p in batch:
            p.model_id = model_id
        result = index.upsert(version, batch, np.stack([vectors[p.image_hash] for p in batch]).astype(np.float32))
        written += result.written
        failures.extend(result.failures)
    return {"start": start, "end": end, "written": written, "failures": failures}


def finish_build(index: CatalogIndex, plan: dict[str, Any], loaded: list[dict[str, Any]]) -> BuildReport:
    """End the bulk load of ``plan``'s version once every shard is loaded; the version's document count
    must be the products planned less the failed writes (a shard loaded twice adds nothing)."""
    version = plan["version"]
    index.end_bulk_load(version)
    failures = [tuple(f) for shard in loaded for f in shard["failures"]]
    indexed = index.count(version)
    if indexed == 0:
        raise RuntimeError(f"index version {version} is empty ({len(failures)} failures); live version unchanged")
    expected = plan["products"] - len({pid for pid, _ in failures})
    if indexed != expected:
        raise ReindexError(f"index version {version} holds {indexed} products, {expected} planned; live version unchanged")
    return BuildReport(version, plan["model_id"], indexed, plan["missing_vectors"], failures, previous_live=plan["previous_live"])


def validate_build(
    settings: Settings, index: CatalogIndex, version: str, model_id: str, failed: list[tuple[str, str]] = ()
) -> dict[str, Any]:
    """Count and sampled recall of ``version`` against exact search on the store's vectors (products
    whose write ``failed`` excluded); on failure the version is dropped and ``ReindexError`` raised (the
    live version never changed)."""
    ready, _missing, vectors = _ready(settings, model_id)
    failed_ids = {pid for pid, _ in failed}
    ready = [p for p in ready if p.product_id not in failed_ids]
    ids = [p.product_id for p in ready]
    matrix = np.stack([vectors[p.image_hash] for p in ready]).astype(np.float32) if ready else np.zeros((0, 1))
    report = index.validate(
        version, ids, matrix, queries=settings.reindex_sample, min_recall=settings.reindex_min_recall
    )
    if not report.ok:
        # never made live, and never to be: dropped now (the CLI's and the DAG's path alike), so a later
        # swap cannot pick it up and its files do not wait for a prune
        index.drop_version(version)
        raise ReindexError(
            f"validation of {version} failed: {'; '.join(report.problems)}; the version was dropped, live version unchanged"
        )
    return asdict(report)


def swap(index: CatalogIndex, version: str) -> str | None:
    """Make ``version`` live (atomic in every backend); returns the version that was live before."""
    previous = index.live_version()
    index.set_live(version)
    log.info("index version %s live (was %s)", version, previous)
    return previous


def snapshot(index: CatalogIndex, version: str) -> dict[str, Any]:
    """Snapshot ``version`` to the backend's snapshot store (S3 when a bucket is configured)."""
    return asdict(index.snapshot(version))


def prune(index: CatalogIndex, keep: int) -> list[str]:
    return index.prune(keep)


def build_index(
    settings: Settings,
    index: CatalogIndex,
    model_id: str,
    keep: int = 3,
    batch_size: int = 1000,
    *,
    validate: bool = True,
    take_snapshot: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Every step in one go (the CLI path): build, validate, swap, optionally snapshot, prune
    (``progress``: after each of them, and after each write batch)."""
    optional = {"validate": validate, "snapshot": take_snapshot}
    later = [step for step in ("validate", "swap", "snapshot", "prune") if optional.get(step, True)]
    build_steps = 0  # the write batches and the end of the bulk load: build_version counts them

    def done(step: str, n: int, of: int) -> None:
        nonlocal build_steps
        build_steps = of
        if progress is not None:
            progress(step, n, of + len(later))

    def done_later(step: str) -> None:
        done(step, build_steps + later.index(step) + 1, build_steps)

    report = build_version(settings, index, model_id, batch_size, done)
    if validate:
        try:
            report.validation = validate_build(settings, index, report.version, model_id, report.failures)
        except ReindexError:
            index.prune(keep)  # the failed version is not live: drop what is beyond `keep`
            raise
        done_later("validate")
    swap(index, report.version)
    done_later("swap")
    if take_snapshot:
        report.snapshot = snapshot(index, report.version)
        done_later("snapshot")
    report.pruned = prune(index, keep)
    done_later("prune")
    log.info(
        "index version %s live: %d products (%d without vectors, %d failed)",
        report.version, report.indexed, len(report.missing_vectors), len(report.failures),
    )  # fmt: skip
    return report
