"""Build a new index version from the stores, make it live, keep the last few versions.

Vectors come from the embeddings store (never recomputed); products from the product store. Only
products whose image has a vector of the requested model are indexed; the rest are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from looksync.index import CatalogIndex
from looksync.settings import Settings
from looksync.store import EmbeddingStore, ProductStore

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    version: str
    model_id: str
    indexed: int
    missing_vectors: list[str]
    failures: list[tuple[str, str]]
    pruned: list[str]


def build_index(
    settings: Settings, index: CatalogIndex, model_id: str, keep: int = 3, batch_size: int = 1000
) -> BuildReport:
    products = ProductStore(settings.data_dir).all()
    vectors = EmbeddingStore(settings.data_dir).load(model_id)
    if not vectors:
        raise RuntimeError(f"embeddings store has no vectors for model {model_id!r}; ingest feeds with it first")
    dim = len(next(iter(vectors.values())))
    ready = [p for p in products if p.image_hash in vectors]
    missing = [p.product_id for p in products if p.image_hash not in vectors]
    version = index.create_version(model_id, dim)
    failures: list[tuple[str, str]] = []
    indexed = 0
    for start in range(0, len(ready), batch_size):
        batch = ready[start : start + batch_size]
        for p in batch:
            p.model_id = model_id
        matrix = np.stack([vectors[p.image_hash] for p in batch]).astype(np.float32)
        result = index.upsert(version, batch, matrix)
        indexed += result.written
        failures.extend(result.failures)
    if indexed == 0:
        raise RuntimeError(f"index version {version} is empty ({len(failures)} failures); live version unchanged")
    index.set_live(version)
    pruned = index.prune(keep)
    log.info("index version %s live: %d products (%d without vectors, %d failed)", version, indexed, len(missing), len(failures))
    return BuildReport(version, model_id, indexed, missing, failures, pruned)
