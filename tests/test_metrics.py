"""Metrics against small cases computed by hand."""

import math

import pytest

from looksync.metrics import (
    bootstrap_ci,
    ndcg_at_k,
    paired_difference_ci,
    recall_at_k,
    reciprocal_rank,
    violation_rate,
)


def test_recall_and_mrr_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"c"}, 2) == 0.0
    assert recall_at_k(ranked, {"c"}, 3) == 1.0
    assert recall_at_k(ranked, {"b", "z"}, 4) == 0.5
    assert reciprocal_rank(ranked, {"c", "d"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"z"}) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(ranked, set(), 1)


def test_ndcg_by_hand():
    # one relevant item at rank 2: DCG = 1/log2(3), ideal = 1
    assert ndcg_at_k(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / math.log2(3))
    # grades 2 and 1, returned in the wrong order
    got = ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 2)
    expected = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert got == pytest.approx(expected)
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 2) == pytest.approx(1.0)


def test_violations():
    results = [{"market": "US"}, {"market": "JP"}, {"market": "US"}, {"market": "US"}]
    assert violation_rate(results, lambda r: r["market"] == "US") == 0.25
    assert violation_rate([], lambda r: False) == 0.0


def test_bootstrap_intervals_cover_the_mean_and_shrink_with_data():
    small = [0, 1] * 5
    big = [0, 1] * 500
    mean, low, high = bootstrap_ci(small)
    assert mean == 0.5 and low < 0.5 < high
    _, blow, bhigh = bootstrap_ci(big)
    assert (bhigh - blow) < (high - low) / 4
    diff, dlow, dhigh = paired_difference_ci([0, 0, 0, 1] * 25, [1, 1, 0, 1] * 25)
    assert diff == 0.5 and 0 < dlow <= diff <= dhigh
    with pytest.raises(ValueError):
        paired_difference_ci([1], [1, 2])


def test_rank_correlations_and_overlap_over_the_common_products():
    from looksync.metrics import kendall_tau, overlap_at_k, spearman_rho

    a = ["p1", "p2", "p3", "p4"]
    assert spearman_rho(a, a) == 1.0 and kendall_tau(a, a) == 1.0
    assert spearman_rho(a, a[::-1]) == -1.0 and kendall_tau(a, a[::-1]) == -1.0
    # only p1, p2, p3 are common; p2 and p3 swapped: one discordant pair of three
    b = ["x", "p1", "p3", "p2"]
    assert kendall_tau(a, b) == 1 / 3 and spearman_rho(a, b) == 0.5
    assert spearman_rho(a, ["p1", "y"]) is None and kendall_tau(a, []) is None
    assert overlap_at_k(a, b, 10) == 0.75 and overlap_at_k(a, b, 2) == 0.5
    assert overlap_at_k([], [], 10) is None and overlap_at_k(a, [], 10) == 0.0
