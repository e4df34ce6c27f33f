"""Checking a built index version against the vectors it was built from, whatever the backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from looksync.index.errors import IndexBackendError


class _VersionReader(Protocol):
    """What validation needs of an index (``CatalogIndex`` has it): a count and an unfiltered search."""

    def count(self, version: str | None = None) -> int: ...
    def search(self, vector: np.ndarray, k: int, *, version: str | None = None) -> list: ...


@dataclass
class ValidationReport:
    """A version checked before it goes live: document count and sampled recall@k against exact search."""

    version: str
    count: int
    expected_count: int
    recall: float  # mean recall@k of the sampled queries (1.0 when nothing was sampled)
    queries: int
    k: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems




def exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the exact cosine top-k of each query (rows are unit vectors), best first."""
    scores = queries @ matrix.T
    k = min(k, matrix.shape[0])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def validate_version(
    index: _VersionReader,
    version: str,
    product_ids: Sequence[str],
    vectors: np.ndarray,
    *,
    queries: int = 20,
    k: int = 10,
    min_recall: float = 0.9,
    seed: int = 0,
) -> ValidationReport:
    if len(product_ids) != len(vectors):
        raise IndexBackendError(f"validate {version}: {len(product_ids)} product ids but {len(vectors)} vectors")
    matrix = np.asarray(vectors, dtype=np.float32)
    count = index.count(version)
    problems = []
    if count != len(product_ids):
        problems.append(f"count {count} != {len(product_ids)} expected")
    recalls: list[float] = []
    if len(product_ids) and queries > 0:
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(product_ids), size=min(queries, len(product_ids)), replace=False)
        sample = matrix[rows]
        truth = exact_top_k(matrix, sample, k)
        for query, expected in zip(sample, truth, strict=True):
            want = {product_ids[i] for i in expected}
            got = {h.product_id for h in index.search(query, k=k, version=version)}
            recalls.append(len(want & got) / len(want))
    recall = float(np.mean(recalls)) if recalls else 1.0
    if recall < min_recall:
        problems.append(f"recall@{k} {recall:.3f} < {min_recall} over {len(recalls)} sampled queries")
    return ValidationReport(
        version=version,
        count=count,
        expected_count=len(product_ids),
        recall=recall,
        queries=len(recalls),
        k=k,
        problems=problems,
    )
