"""The outfit solver: exact against brute force, cheapest outfit when nothing fits, eligibility."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from looksync.search import knapsack
from looksync.search.knapsack import TIE
from looksync.search.outfit import Option, assemble_outfit, best_outfit


@pytest.fixture(params=["as shipped", "always the frontier search", "always the high targets first"])
def path(request, monkeypatch):
    """The solver's shortcuts only choose how the answer is searched for, never the answer: run the
    comparisons through each route (small cases would otherwise always be enumerated)."""
    if request.param != "as shipped":
        monkeypatch.setattr(knapsack, "ENUMERATE", 0)
    if request.param == "always the high targets first":
        monkeypatch.setattr(knapsack, "SMALL_SEARCH", -1)
    return request.param


def _brute(layers, budget):
    """(cost, score) of the answer by trying every combination: the best score, then of the totals
    within TIE of it the cheapest."""
    totals = [
        (sum(layers[i][j].cost for i, j in enumerate(combo)), sum(layers[i][j].score for i, j in enumerate(combo)))
        for combo in itertools.product(*[range(len(options)) for options in layers])
    ]
    fits = [(cost, score) for cost, score in totals if cost <= budget]
    if not fits:
        return None
    best = max(score for _, score in fits)
    return min((cost, score) for cost, score in fits if score >= best - TIE)


def _dense_dp(layers, budget):
    """(cost, score) of the answer by the textbook DP over every integer total cost (an oracle that
    shares nothing with the solver): best[c] is the best score of an outfit costing exactly c."""
    best = np.zeros(1)
    for options in layers:
        top = min(budget, best.size - 1 + max(o.cost for o in options))
        new = np.full(top + 1, -np.inf)
        for o in options:
            if o.cost <= top:
                room = min(best.size, top + 1 - o.cost)
                np.maximum(new[o.cost : o.cost + room], best[:room] + o.score, out=new[o.cost : o.cost + room])
        best = new
    if not np.isfinite(best).any():
        return None
    cost = int(np.argmax(best >= best.max() - TIE))
    return cost, float(best[cost])


def _layers(rng, n_layers, n_options, *, prices=(0, 60), score=None):
    """Random layers: prices uniform in ``prices``; ``score(rng, cost)`` or a random score rounded to 1
    or 3 decimals (ties)."""
    layers = []
    for i in range(n_layers):
        options = []
        for j in range(n_options):
            cost = rng.randint(*prices)
            value = score(rng, cost) if score else round(rng.random(), rng.choice([1, 3]))
            options.append(Option(f"p{i}-{j}", cost, value))
        layers.append(options)
    return layers


# shapes of scores against prices: the adversarial ones put every candidate on its layer's frontier
SHAPES = {
    "random": None,
    "rising": lambda rng, cost: cost / 60 + rng.random() * 0.01,  # score rises with price, a little noise
    "proportional": lambda rng, cost: cost / 60,  # exactly on a line: every total of one price ties
    "few values": lambda rng, cost: rng.choice([0.0, 0.25, 0.5]),  # many ties and zero scores
    "zero": lambda rng, cost: 0.0,  # only the price matters (the cheapest of the ties)
    "signed": lambda rng, cost: rng.uniform(-1, 1),  # negative scores (a penalty can outweigh a match)
}


def _check(layers, budget, expected):
    solved = best_outfit(layers, budget)
    if expected is None:  # nothing fits: the cheapest complete outfit, said to be over budget
        assert solved is not None and not solved.within_budget
        assert solved.cost == sum(min(o.cost for o in options) for options in layers) > budget
    else:
        assert solved.within_budget
        assert solved.score == pytest.approx(expected[1], abs=1e-9)
        assert solved.cost == expected[0]
    picked = [layers[i][j] for i, j in enumerate(solved.choice)]  # the choice is what the totals say
    assert sum(o.cost for o in picked) == solved.cost
    assert sum(o.score for o in picked) == pytest.approx(solved.score, abs=1e-9)


@pytest.mark.parametrize("seed", range(300))
def test_the_solver_equals_brute_force(seed, path):
    rng = random.Random(seed)
    layers = _layers(rng, rng.randint(1, 4), rng.randint(1, 6), score=SHAPES["rising"] if seed % 5 == 0 else None)
    budget = rng.randint(0, 200)
    _check(layers, budget, _brute(layers, budget))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(40))
def test_the_solver_equals_brute_force_on_ties_equal_prices_and_exact_budgets(shape, seed, path):
    rng = random.Random(1000 + seed)
    # few distinct prices (equal prices within and across layers), and budgets on the edges: exactly
    # one outfit's total, exactly the cheapest outfit, one under it, or anything
    layers = _layers(rng, rng.randint(1, 4), rng.randint(1, 6), prices=(0, rng.choice([3, 10, 60])), score=SHAPES[shape])
    least = sum(min(o.cost for o in options) for options in layers)
    some_outfit = sum(rng.choice(options).cost for options in layers)
    budget = rng.choice([some_outfit, least, least - 1, rng.randint(0, 100)])
    _check(layers, budget, _brute(layers, budget))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(6))
def test_six_layers_of_a_hundred_equal_the_dense_dp(shape, seed, path):
    rng = random.Random(2000 + seed)
    layers = _layers(rng, 6, 100, prices=(0, 300), score=SHAPES[shape])
    dearest = sum(max(o.cost for o in options) for options in layers)
    for share in (0.25, 0.5, 0.75, 1.0):
        budget = int(dearest * share)
        _check(layers, budget, _dense_dp(layers, budget))
    exact = sum(rng.choice(options).cost for options in layers)  # a budget some outfit spends to the unit
    _check(layers, exact, _dense_dp(layers, exact))


@pytest.mark.parametrize("n_layers", [1, 2, 3, 9])
def test_other_layer_counts_equal_the_dense_dp(n_layers, path):
    rng = random.Random(3000 + n_layers)
    for shape in ("random", "rising", "proportional"):
        layers = _layers(rng, n_layers, 50, prices=(0, 300), score=SHAPES[shape])
        dearest = sum(max(o.cost for o in options) for options in layers)
        for share in (0.3, 0.6, 0.9):
            _check(layers, int(dearest * share), _dense_dp(layers, int(dearest * share)))


@pytest.mark.parametrize("noise", [None, 0.01, 1e-4])
def test_the_bench_shapes_at_real_prices_equal_the_dense_dp(noise):
    # prices $5-$300 in cents, budgets up to ~$900: the shapes bench/bench_outfit.py times, checked exactly
    rng = random.Random(4000)
    layers = [
        [
            Option(f"{i}-{j}", cost, rng.uniform(0.2, 0.9) if noise is None else cost / 30_000 * 0.5 + rng.random() * noise)
            for j, cost in enumerate(rng.randint(500, 30_000) for _ in range(100))
        ]
        for i in range(6)
    ]
    dearest = sum(max(o.cost for o in options) for options in layers)
    for share in (0.25, 0.5, 0.75):
        _check(layers, int(dearest * share), _dense_dp(layers, int(dearest * share)))


@pytest.mark.parametrize("n_free_layers", [0, 1, 2, 3])
def test_totals_equal_but_for_float_rounding_are_ties_and_the_cheaper_wins(n_free_layers, path):
    # 0.1 + 0.2 is 0.30000000000000004 in floating point: one ulp over 0.3, far under TIE
    assert 0.1 + 0.2 > 0.3 and 0.1 + 0.2 - 0.3 < TIE
    free = [[Option(f"free{i}", 0, 0.0)] for i in range(n_free_layers)]
    layers = [*free, [Option("ulp-dearer", 5, 0.1 + 0.2), Option("cheaper", 3, 0.3)]]
    solved = best_outfit(layers, budget=10)
    assert solved.cost == 3 and layers[-1][solved.choice[-1]].product_id == "cheaper"
    assert _brute(layers, 10) == (3, 0.3)


def test_a_layer_without_options_has_no_outfit():
    assert best_outfit([[Option("a", 1, 0.5)], []], budget=10) is None


def test_a_large_case_stays_within_the_budget_and_beats_every_greedy_pick():
    rng = random.Random(7)
    layers = [[Option(f"{i}-{j}", rng.randint(500, 20_000), rng.random()) for j in range(100)] for i in range(6)]
    budget = 40_000
    solved = best_outfit(layers, budget)
    assert solved.within_budget and solved.cost <= budget
    # any single swap of one layer's pick that still fits cannot raise the score (a necessary condition)
    for i, options in enumerate(layers):
        for j, option in enumerate(options):
            cost = solved.cost - options[solved.choice[i]].cost + option.cost
            if cost <= budget:
                assert solved.score - options[solved.choice[i]].score + option.score <= solved.score + 1e-9, (i, j)


def _product(pid, price, score, currency="USD", in_stock=True):
    return {"product_id": pid, "price": price, "score": score, "currency": currency, "in_stock": in_stock}


def test_assemble_reads_prices_in_minor_units_and_skips_ineligible_candidates():
    layers = [
        ("topwear", [_product("t-best", 99.99, 0.9), _product("t-cheap", 20.00, 0.5), _product("t-out", 1.0, 0.99, in_stock=False)]),
        ("footwear", [_product("f-best", 50.02, 0.8), _product("f-cheap", 30.01, 0.6), _product("f-inr", 1.0, 0.95, currency="INR")]),
    ]
    outfit = assemble_outfit(layers, budget=150.00, currency="USD", minor_units=2)
    # 99.99 + 50.02 = 150.01 is one cent over: the best that fits is t-best + f-cheap
    assert [i["product_id"] for i in outfit["items"]] == ["t-best", "f-cheap"]
    assert outfit["within_budget"] and outfit["total"] == 130.00 and outfit["note"] is None
    assert outfit["score"] == pytest.approx(1.5)

    exact = assemble_outfit(layers, budget=150.01, currency="USD", minor_units=2)
    assert [i["product_id"] for i in exact["items"]] == ["t-best", "f-best"] and exact["total"] == 150.01


def test_assemble_over_budget_gives_the_cheapest_outfit_and_says_so():
    layers = [("topwear", [_product("a", 80, 0.9), _product("b", 60, 0.1)]), ("bags", [_product("c", 70, 0.2)])]
    outfit = assemble_outfit(layers, budget=100, currency="USD", minor_units=2)
    assert not outfit["within_budget"] and outfit["total"] == 130
    assert [i["product_id"] for i in outfit["items"]] == ["b", "c"]
    assert "cheapest complete outfit" in outfit["note"]


def test_assemble_lists_layers_with_no_eligible_candidate():
    layers = [("topwear", [_product("a", 10, 0.9)]), ("bags", [_product("b", 5, 0.9, in_stock=False)])]
    outfit = assemble_outfit(layers, budget=100, currency="USD", minor_units=2)
    assert [i["layer"] for i in outfit["items"]] == ["topwear"]
    assert outfit["missing_layers"] == [{"layer": "bags", "reason": "no in-stock candidate priced in USD"}]

    none = assemble_outfit([("bags", [])], budget=100, currency="JPY", minor_units=0)
    assert not none["within_budget"] and none["items"] == [] and "no requested layer" in none["note"]


@pytest.mark.parametrize("cents", [29, 57, 115, 201, 435, 1999, 100_000_007])
def test_a_budget_equal_to_the_total_fits_to_the_cent(cents):
    # prices whose binary float times 100 is a hair under the whole number of cents (0.29 * 100 is 28.999999999999996)
    price = cents / 100
    layers = [("topwear", [_product("a", price, 0.5)]), ("bags", [_product("b", 10.10, 0.5)])]
    fits = assemble_outfit(layers, budget=(cents + 1010) / 100, currency="USD", minor_units=2)
    assert fits["within_budget"] and fits["total"] == (cents + 1010) / 100
    short = assemble_outfit(layers, budget=(cents + 1009) / 100, currency="USD", minor_units=2)
    assert not short["within_budget"] and "cheapest complete outfit" in short["note"]
