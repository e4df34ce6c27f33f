"""The outfit solver: exact against brute force, cheapest outfit when nothing fits, eligibility."""

from __future__ import annotations

import itertools
import random

import pytest

from looksync.search.outfit import Option, assemble_outfit, best_outfit


def _brute(layers, budget):
    best = None
    for combo in itertools.product(*[range(len(options)) for options in layers]):
        cost = sum(layers[i][j].cost for i, j in enumerate(combo))
        score = sum(layers[i][j].score for i, j in enumerate(combo))
        if cost <= budget and (best is None or score > best[1] + 1e-9 or (abs(score - best[1]) <= 1e-9 and cost < best[0])):
            best = (cost, score)
    return best


def _random_layers(rng, n_layers, n_options, correlated=False):
    layers = []
    for i in range(n_layers):
        options = []
        for j in range(n_options):
            cost = rng.randint(0, 60)
            score = cost / 60 + rng.random() * 0.01 if correlated else round(rng.random(), rng.choice([1, 3]))
            options.append(Option(f"p{i}-{j}", cost, score))
        layers.append(options)
    return layers


@pytest.mark.parametrize("seed", range(300))
def test_the_solver_equals_brute_force(seed):
    rng = random.Random(seed)
    layers = _random_layers(rng, rng.randint(1, 4), rng.randint(1, 6), correlated=seed % 5 == 0)
    budget = rng.randint(0, 200)
    expected = _brute(layers, budget)
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
