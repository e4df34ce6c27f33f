"""The outfit within a budget: one product per layer, total price within the budget, summed match
score as high as possible (a multiple-choice knapsack over the per-layer candidates).

Exact, with no price bucketing error: prices are compared in the market's minor units (cents, paise,
yen), which is exactly how they are stored, so every total is an integer and the budget test is exact.
The solver keeps, layer after layer, the Pareto frontier of partial outfits: (total cost, summed
score) pairs none of which is both dearer and lower-scoring than another. Dropping a dominated partial
outfit never loses the optimum, because the objective and the constraint are sums over layers: any
completion of the dominated one completes the dominating one at no more cost and no less score. The
frontier is the sparse form of the classic DP over integer costs ``best[c]``, so it never holds more
points than distinct totals within the budget (``budget + 1`` in minor units), and in practice a few
hundred: each layer's own frontier of 100 candidates is typically 5-10 products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Option:
    """One candidate product for a layer: its price in minor units and its match score."""

    product_id: str
    cost: int
    score: float


@dataclass
class Outfit:
    choice: list[int]  # per layer, the index of the chosen option in that layer's list
    cost: int
    score: float
    within_budget: bool


def _layer_frontier(options: Sequence[Option], max_cost: int) -> np.ndarray:
    """Indices of the layer's options that are not dominated (cheapest first, score strictly rising)
    and cost at most ``max_cost``."""
    if not options:
        return np.zeros(0, dtype=np.int64)
    cost = np.fromiter((o.cost for o in options), dtype=np.int64, count=len(options))
    score = np.fromiter((o.score for o in options), dtype=np.float64, count=len(options))
    order = np.lexsort((-score, cost))  # by cost, then best score first
    order = order[cost[order] <= max_cost]
    if order.size == 0:
        return order
    s = score[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], s[:-1])))
    return order[s > best_before]


def _hull_steps(cost: np.ndarray, score: np.ndarray) -> tuple[int, float, list[tuple[int, float]]]:
    """A layer's frontier (cost ascending, score rising) as its cheapest point and the steps along its
    upper concave hull (each step: extra cost, extra score; slopes falling)."""
    hull = [0]
    for j in range(1, cost.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or under the line from a to j
            if (score[b] - score[a]) * (cost[j] - cost[a]) <= (score[j] - score[a]) * (cost[b] - cost[a]):
                hull.pop()
            else:
                break
        hull.append(j)
    steps = [(int(cost[b] - cost[a]), float(score[b] - score[a])) for a, b in zip(hull, hull[1:], strict=False)]
    return int(cost[0]), float(score[0]), steps


class _Bound:
    """An upper bound on the best score the layers of a suffix can add within a remaining budget: the
    LP relaxation of the multiple-choice knapsack (each layer's cheapest pick, then the hull steps of
    all layers in falling slope order, the last one fractional). Concave and piecewise linear in the
    budget, so it is evaluated for a whole frontier at once with ``np.interp``."""

    def __init__(self, hulls: list[tuple[int, float, list[tuple[int, float]]]]):
        self.base_cost = sum(h[0] for h in hulls)
        base_score = sum(h[1] for h in hulls)
        steps = sorted((step for h in hulls for step in h[2]), key=lambda st: st[1] / st[0] if st[0] else np.inf, reverse=True)
        self.x = np.concatenate(([self.base_cost], self.base_cost + np.cumsum([st[0] for st in steps], dtype=np.float64)))
        self.y = np.concatenate(([base_score], base_score + np.cumsum([st[1] for st in steps], dtype=np.float64)))

    def __call__(self, remaining: np.ndarray) -> np.ndarray:
        bound = np.interp(remaining, self.x, self.y)  # beyond the last step: every layer's best
        return np.where(remaining >= self.base_cost, bound, -np.inf)

    def greedy(self, remaining: np.ndarray) -> np.ndarray:
        """The score of a feasible integer pick within each remaining budget (the LP solution's whole
        steps up to the first that does not fit): a lower bound on what the suffix can add."""
        at = np.searchsorted(self.x, remaining, side="right") - 1
        return np.where(at >= 0, self.y[np.maximum(at, 0)], -np.inf)


def best_outfit(layers: Sequence[Sequence[Option]], budget: int) -> Outfit | None:
    """The highest summed score over one option per layer with total cost <= ``budget`` (ties: the
    cheaper). When no combination fits, the cheapest complete outfit, with ``within_budget`` False.
    None when a layer has no option at all.

    Frontier points that cannot reach the best feasible score found so far, even with the LP bound of
    the layers still to come, are dropped as well (branch and bound): exact, and it keeps the frontier
    small where every candidate is on its layer's frontier (score rising with price)."""
    if any(len(options) == 0 for options in layers):
        return None
    if not layers:
        return Outfit(choice=[], cost=0, score=0.0, within_budget=True)
    min_costs = [min(o.cost for o in options) for options in layers]
    if sum(min_costs) > budget:
        return _cheapest(layers)
    rest = np.cumsum([0, *reversed(min_costs)])[::-1]  # rest[i]: least cost of layers i.. to the end
    kept, hulls = [], []
    for i, options in enumerate(layers):
        keep = _layer_frontier(options, budget - int(rest[0] - rest[i] + rest[i + 1]))
        cost = np.fromiter((options[j].cost for j in keep), dtype=np.int64, count=keep.size)
        score = np.fromiter((options[j].score for j in keep), dtype=np.float64, count=keep.size)
        kept.append((keep, cost, score))
        hulls.append(_hull_steps(cost, score))
    bounds = [_Bound(hulls[i:]) for i in range(len(layers) + 1)]
    floor = float(bounds[0].greedy(np.array([budget]))[0]) - 1e-9  # the optimum is at least this
    front_cost = np.zeros(1, dtype=np.int64)
    front_score = np.zeros(1, dtype=np.float64)
    parents: list[np.ndarray] = []  # per layer: for each frontier point, its parent point in the previous frontier
    picks: list[np.ndarray] = []  # per layer: for each frontier point, the option chosen
    for i, (keep, cost, score) in enumerate(kept):
        total_cost = (front_cost[:, None] + cost[None, :]).ravel()
        total_score = (front_score[:, None] + score[None, :]).ravel()
        remaining = budget - total_cost
        # every point completed greedily is a feasible outfit: the best of them raises the floor
        floor = max(floor, float(np.max(total_score + bounds[i + 1].greedy(remaining))) - 1e-9)
        promising = np.flatnonzero(total_score + bounds[i + 1](remaining) >= floor)
        order = promising[np.lexsort((-total_score[promising], total_cost[promising]))]
        s = total_score[order]
        best_before = np.maximum.accumulate(np.concatenate(([-np.inf], s[:-1])))
        order = order[s > best_before]
        parents.append(order // keep.size)
        picks.append(keep[order % keep.size])
        front_cost, front_score = total_cost[order], total_score[order]
    point = int(front_cost.size - 1)  # the frontier ends at the highest score (the cheapest such)
    cost_total, score_total = int(front_cost[point]), float(front_score[point])
    choice = [0] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        choice[i] = int(picks[i][point])
        point = int(parents[i][point])
    return Outfit(choice=choice, cost=cost_total, score=score_total, within_budget=True)


def _cheapest(layers: Sequence[Sequence[Option]]) -> Outfit:
    choice = [min(range(len(options)), key=lambda j, o=options: (o[j].cost, -o[j].score)) for options in layers]
    picked = [options[j] for options, j in zip(layers, choice, strict=True)]
    return Outfit(choice=choice, cost=sum(o.cost for o in picked), score=sum(o.score for o in picked), within_budget=False)


def to_minor(amount: float, minor_units: int) -> int:
    """A price or budget in the currency's minor units (exact for the stored prices, which carry at
    most ``minor_units`` decimals)."""
    return int(round(float(amount) * 10**minor_units))


def assemble_outfit(
    layer_products: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    budget: float,
    currency: str,
    minor_units: int,
) -> dict[str, Any]:
    """The response's ``outfit`` from each requested layer's candidate products (product summaries:
    ``product_id``, ``score``, ``price``, ``currency``, ``in_stock``). Candidates out of stock, without
    a price or priced in another currency are not eligible; a layer left with none is listed in
    ``missing_layers`` with the reason, and the outfit is solved over the others."""
    eligible: list[tuple[str, list[dict[str, Any]]]] = []
    missing = []
    for layer, products in layer_products:
        ok = [
            p
            for p in products
            if p.get("in_stock") is not False and p.get("price") is not None and p.get("currency") == currency
        ]
        if ok:
            eligible.append((layer, ok))
        else:
            missing.append({"layer": layer, "reason": f"no in-stock candidate priced in {currency}"})
    options = [
        [Option(p["product_id"], to_minor(p["price"], minor_units), float(p["score"])) for p in products]
        for _, products in eligible
    ]
    budget_minor = to_minor(budget, minor_units)
    solved = best_outfit(options, budget_minor)
    items = []
    if solved is not None:
        for (layer, products), j in zip(eligible, solved.choice, strict=True):
            p = products[j]
            items.append({**p, "layer": layer})
    scale = 10**minor_units
    within = bool(items) and solved is not None and solved.within_budget
    if not items:
        note = "no requested layer has an in-stock candidate in this currency"
    elif not within:
        note = "no combination of in-stock candidates fits the budget: the cheapest complete outfit is given"
    else:
        note = None
    return {
        "budget": budget,
        "currency": currency,
        "within_budget": within,
        "total": round(solved.cost / scale, minor_units) if solved else 0,
        "score": round(solved.score, 6) if solved else 0.0,
        "items": items,
        "missing_layers": missing,
        "note": note,
    }
