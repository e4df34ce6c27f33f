"""Retrieval metrics for match quality: Recall@k, MRR, NDCG@k, filter violations, bootstrap intervals.

Each query has a ranked list of returned ids and a set of relevant ids (graded relevance optional
for NDCG). Functions take plain lists so evaluation code, tests and notebooks share them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant items found in the top k (1.0 when all are)."""
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len(set(ranked[:k]) & relevant) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for rank, item in enumerate(ranked, 1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    """NDCG with gains ``2^rel - 1`` and log2 discounts; ``relevance`` maps id -> grade (> 0)."""
    def dcg(grades: Sequence[float]) -> float:
        return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(grades))

    ideal = dcg(sorted(relevance.values(), reverse=True)[:k])
    if ideal == 0:
        raise ValueError("NDCG needs at least one item with positive relevance")
    return dcg([relevance.get(item, 0.0) for item in ranked[:k]]) / ideal


def violation_rate(results: Sequence[Mapping], allowed: Callable[[Mapping], bool]) -> float:
    """Share of returned results that break a requested filter (must be 0)."""
    if not results:
        return 0.0
    return sum(not allowed(r) for r in results) / len(results)


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): a percentile bootstrap interval of the mean."""
    if not values:
        raise ValueError("bootstrap needs at least one value")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_resamples))
    alpha = (1 - confidence) / 2
    low = means[int(math.floor(alpha * (n_resamples - 1)))]
    high = means[int(math.ceil((1 - alpha) * (n_resamples - 1)))]
    return sum(values) / n, low, high


def paired_difference_ci(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of b - a over the same queries, with a paired bootstrap interval (side-by-side configs)."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    return bootstrap_ci([y - x for x, y in zip(a, b, strict=True)], n_resamples, confidence, seed)
