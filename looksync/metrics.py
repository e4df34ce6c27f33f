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


def _common_ranks(a: Sequence[str], b: Sequence[str]) -> tuple[list[int], list[int]]:
    """Positions in ``a`` and in ``b`` of the items both rankings hold, in ``a``'s order."""
    in_b = {item: i for i, item in enumerate(b)}
    common = [item for item in a if item in in_b]
    return [a.index(item) for item in common], [in_b[item] for item in common]


def spearman_rho(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Spearman's rank correlation of two rankings over the items both hold (None under two of them)."""
    x, y = _common_ranks(a, b)
    n = len(x)
    if n < 2:
        return None
    rank_x = {v: r for r, v in enumerate(sorted(x))}
    rank_y = {v: r for r, v in enumerate(sorted(y))}
    d2 = sum((rank_x[i] - rank_y[j]) ** 2 for i, j in zip(x, y, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Kendall's tau (no ties in a ranking) of two rankings over the items both hold (None under two)."""
    x, y = _common_ranks(a, b)
    n = len(x)
    if n < 2:
        return None
    concordant = sum(
        1 if (x[i] - x[j]) * (y[i] - y[j]) > 0 else -1 for i in range(n) for j in range(i + 1, n)
    )
    return concordant / (n * (n - 1) / 2)


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float | None:
    """|top-k of a ∩ top-k of b| / the longer of the two top-k lists (None when both are empty)."""
    top_a, top_b = list(a)[:k], list(b)[:k]
    longest = max(len(top_a), len(top_b))
    return len(set(top_a) & set(top_b)) / longest if longest else None
