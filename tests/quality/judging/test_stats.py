"""The statistics of the report against textbook values."""

from __future__ import annotations

import math

import pytest

from looksync.quality.judging.stats import krippendorff_alpha, mean_ci, t_quantile

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
# values 1-5 with missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
_ = None
TEXTBOOK = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
}


def textbook_units() -> dict[int, dict[str, int]]:
    return {u: {obs: vals[u] for obs, vals in TEXTBOOK.items() if vals[u] is not None} for u in range(12)}


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_the_textbook_example(metric, published):
    assert krippendorff_alpha(textbook_units(), metric) == pytest.approx(published, abs=5e-4)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_pairs():
    assert krippendorff_alpha({1: {"a": 2, "b": 2}, 2: {"a": 5, "b": 5}}) == pytest.approx(1.0)
    assert krippendorff_alpha({1: {"a": 2}, 2: {"b": 5}}) is None  # no unit has two values
    assert krippendorff_alpha({1: {"a": 3, "b": 3}}) is None  # no variation: expected disagreement 0


def test_alpha_of_two_judges_by_hand():
    # units (1,2), (3,3), (4,5); interval metric. Observed: each unit's ordered pairs, weight 1/(m-1) = 1:
    # 2*1 + 0 + 2*1 = 4. Expected: all ordered pairs of the 6 values = 2 * 6 * sum((x-3)^2) = 2*6*10 = 120,
    # over n-1 = 5 -> 24. alpha = 1 - 4/24 = 5/6.
    units = {1: {"a": 1, "b": 2}, 2: {"a": 3, "b": 3}, 3: {"a": 4, "b": 5}}
    assert krippendorff_alpha(units, "interval") == pytest.approx(5 / 6)


@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (4, 2.776), (9, 2.262), (29, 2.045), (120, 1.980)])
def test_t_quantile_matches_the_t_table(df, table):
    assert t_quantile(0.975, df) == pytest.approx(table, abs=1e-3)


def test_mean_ci_by_hand():
    ci = mean_ci([1, 2, 3, 4, 5])  # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764
    assert ci.mean == 3.0
    assert ci.sd == pytest.approx(math.sqrt(2.5))
    assert ci.half_width == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), abs=1e-4)
    assert (ci.low, ci.high) == pytest.approx((3 - ci.half_width, 3 + ci.half_width))
    assert mean_ci([4]).half_width is None and mean_ci([4]).mean == 4.0
    assert mean_ci([]).mean is None
