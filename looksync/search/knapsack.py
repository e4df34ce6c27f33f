"""The exact multiple-choice knapsack behind the outfit within a budget: one option per layer, total
cost within the budget, summed score as high as possible. Costs are integers (the caller's minor
units), so every total and the budget test are exact; scores are floats, and totals within ``TIE``
(1e-9) of one another count as equal, the cheaper winning (sums of the same scores in another order
differ by far less than that).

Every step that drops an option or a partial outfit proves first that it cannot be in the answer:
1. Dominance: an option dearer than another of its layer and not better-scoring is never needed (any
   outfit with it is matched by the cheaper one at no less score); the same holds for partial outfits,
   because cost and score are both sums over layers. Each layer keeps its Pareto frontier.
2. A feasible outfit early (the floor): the LP relaxation's integer part, improved by moves that change
   one or two layers' picks while any raises the score.
3. Lagrangian reduction: with lambda the LP relaxation's price of a unit of budget, every outfit within
   the budget scores at most the sum over layers of (score - lambda * cost) + lambda * budget. An
   option whose reduced score ``score - lambda * cost`` is so far under its layer's best that even the
   best of every other layer cannot lift the outfit to the target is dropped.
4. Search, meeting in the middle: the frontiers of partial outfits over two halves of the layers (the
   sparse form of the DP over integer totals), each without the points that cannot reach the target
   even with the LP bound of the layers still to come, joined by a binary search; or, when the kept
   options make a few thousand outfits, all of them tried.
The target is first near the LP bound (strong reduction, small search), then lower down to the floor;
a best found is accepted only if it reaches its target, so no pruned outfit could beat or tie it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# totals whose scores differ by no more than this are equal (then the cheaper wins); match scores are
# of order 1, so sums of the same scores in another order differ by ~1e-15, far under it
TIE = 1e-9
SMALL_SEARCH = 512  # partial outfits per half under which the search goes straight to the floor
ENUMERATE = 4096  # outfits under which the kept options are simply all tried
TARGETS = (0.25, 0.5, 1.0)  # where the search looks, as shares of the way from the LP bound to the floor


@dataclass
class Outfit:
    """The answer: the option chosen per layer, the totals, and whether it is within the budget."""

    choice: list[int]  # per layer, the index of the chosen option in that layer's list
    cost: int
    score: float
    within_budget: bool


def _pareto(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (none as cheap or cheaper and scoring as high or
    higher), cheapest first, score strictly rising; of identical points one is kept. The one dominance
    filter, for a layer's candidates and for partial outfits alike."""
    order = np.lexsort((-score, cost))  # by cost, then best score first
    s = score[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], s[:-1])))
    return order[s > best_before]


@dataclass
class _Layer:
    """A layer's frontier: option indices into the caller's list, prices ascending, scores rising."""

    index: np.ndarray
    cost: np.ndarray
    score: np.ndarray

    def subset(self, keep: np.ndarray) -> _Layer:
        return _Layer(self.index[keep], self.cost[keep], self.score[keep])


def _frontier(cost: np.ndarray, score: np.ndarray, max_cost: int) -> _Layer:
    """A layer's candidates (prices in minor units, scores) that are not dominated and cost at most
    ``max_cost``; ``index`` refers to the given order."""
    affordable = np.flatnonzero(cost <= max_cost)
    keep = affordable[_pareto(cost[affordable], score[affordable])]
    return _Layer(keep, cost[keep], score[keep])


def _hull(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Positions, in a frontier (cost ascending, score rising), of its upper concave hull's points."""
    xs, ys = cost.tolist(), score.tolist()  # Python numbers: this loop is scalar work
    hx, hy, hull = xs[:1], ys[:1], [0]
    for j in range(1, len(xs)):
        x, y = xs[j], ys[j]
        # drop the last hull point while it lies on or under the line from the one before it to this one
        while len(hull) >= 2 and (hy[-1] - hy[-2]) * (x - hx[-2]) <= (y - hy[-2]) * (hx[-1] - hx[-2]):
            del hx[-1], hy[-1], hull[-1]
        hx.append(x)
        hy.append(y)
        hull.append(j)
    return np.array(hull, dtype=np.int64)


@dataclass
class _Steps:
    """A layer's LP relaxation: its cheapest point and the steps along its upper concave hull (extra
    cost, extra score, slope falling, and the frontier position each step leads to)."""

    cost: int
    score: float
    step_cost: np.ndarray
    step_score: np.ndarray
    step_to: np.ndarray

    @classmethod
    def of(cls, layer: _Layer) -> _Steps:
        h = _hull(layer.cost, layer.score)
        cost, score = layer.cost[h], layer.score[h]
        return cls(int(cost[0]), float(score[0]), cost[1:] - cost[:-1], score[1:] - score[:-1], h[1:])


class _Bound:
    """The LP relaxation of the multiple-choice knapsack over some layers: each layer's cheapest pick,
    then the steps along the layers' upper concave hulls in falling slope order, the last one
    fractional. Its value is an upper bound on the best score those layers can add within a budget,
    concave and piecewise linear in the budget, so it is evaluated for many budgets at once with
    ``np.interp``."""

    def __init__(self, layers: Sequence[_Steps]):
        self.n_layers = len(layers)
        self.base_cost = sum(layer.cost for layer in layers)
        base_score = sum(layer.score for layer in layers)
        dc = np.concatenate([layer.step_cost for layer in layers] or [np.zeros(0, np.int64)])
        ds = np.concatenate([layer.step_score for layer in layers] or [np.zeros(0)])
        to = np.concatenate([layer.step_to for layer in layers] or [np.zeros(0, np.int64)])
        # a hull step always costs more; a layer's slopes fall, also once divided in floating point
        slope = np.concatenate(
            [np.minimum.accumulate(layer.step_score / layer.step_cost) for layer in layers] or [np.zeros(0)]
        )
        order = np.lexsort((to, -slope))  # falling slope; a layer's own steps in their order
        self.slope = slope[order]
        self.step_layer = np.repeat(np.arange(len(layers)), [layer.step_cost.size for layer in layers])[order]
        self.step_to = to[order]
        self.x = np.concatenate(([self.base_cost], self.base_cost + np.cumsum(dc[order])))
        self.y = np.concatenate(([base_score], base_score + np.cumsum(ds[order])))

    def __call__(self, remaining: np.ndarray) -> np.ndarray:
        bound = np.interp(remaining, self.x, self.y)  # beyond the last step: every layer's best
        return np.where(remaining >= self.base_cost, bound, -np.inf)

    def integer_part(self, budget: int) -> tuple[np.ndarray, float]:
        """The LP solution's whole steps (the frontier position picked per layer) and the price of a
        unit of budget there (the slope of the first step that does not fit; 0 when all fit)."""
        taken = int(np.searchsorted(self.x, budget, side="right")) - 1
        pos = np.zeros(self.n_layers, dtype=np.int64)
        np.maximum.at(pos, self.step_layer[:taken], self.step_to[:taken])
        return pos, float(self.slope[taken]) if taken < self.slope.size else 0.0


def _improve(layers: Sequence[_Layer], pos: np.ndarray, budget: int) -> np.ndarray:
    """Raise a feasible pick (``pos``: a frontier position per layer) by the best move that changes one
    layer's pick, or one layer's and then another's to the best that the freed budget allows, while one
    raises the score."""
    n = len(layers)
    big = budget + 1  # every frontier price is <= budget: layer i's prices live in [i * big, (i + 1) * big)
    key = np.concatenate([i * big + layer.cost for i, layer in enumerate(layers)])
    cost = np.concatenate([layer.cost for layer in layers])
    score = np.concatenate([layer.score for layer in layers])
    start = np.cumsum([0] + [layer.cost.size for layer in layers])
    owner = np.repeat(np.arange(n), np.diff(start))
    others = np.arange(n)[None, :] != owner[:, None]
    for _ in range(4 * n):
        at = start[:-1] + pos
        slack = budget - int(cost[at].sum())
        # first move: any option j (of layer owner[j]); then, for each other layer k, its best within what is left
        left = slack + cost[at][owner] - cost  # budget left for the rest when j replaces its layer's pick
        gain1 = np.where(left >= 0, score - score[at][owner], -np.inf)
        limit = left[:, None] + cost[at][None, :]
        best = np.searchsorted(key, np.arange(n)[None, :] * big + limit, side="right") - 1
        ok = others & (limit >= 0) & (best >= start[:-1][None, :])
        gain2 = np.where(ok, (score - score[at][owner])[:, None] + score[best] - score[at][None, :], -np.inf)
        j1 = int(np.argmax(gain1))
        j2, k2 = np.unravel_index(int(np.argmax(gain2)), gain2.shape)
        if max(gain1[j1], gain2[j2, k2]) <= TIE:
            break
        if gain1[j1] >= gain2[j2, k2]:
            pos[owner[j1]] = j1 - start[owner[j1]]
        else:
            pos[owner[j2]] = j2 - start[owner[j2]]
            pos[k2] = best[j2, k2] - start[k2]
    return pos


class _Lagrangian:
    """For a price of budget ``price`` >= 0, an outfit within the budget scores at most the sum over its
    layers of the reduced score ``score - price * cost``, plus ``price * budget`` (its cost is at most
    the budget): ``upper`` is that bound with every layer at its best reduced score. With the LP
    relaxation's price it equals the LP bound."""

    def __init__(self, layers: Sequence[_Layer], price: float, budget: int):
        self.layers = layers
        self.reduced = [layer.score - price * layer.cost for layer in layers]
        self.best = [float(r.max()) for r in self.reduced]
        self.upper = sum(self.best) + price * budget

    def keep(self, low: float) -> list[_Layer]:
        """Each layer's options that can be in an outfit scoring at least ``low``: an option whose
        reduced score, with every other layer at its best, stays under it is in none."""
        slack = self.upper - low
        return [
            layer.subset(np.flatnonzero(r >= best - slack))
            for layer, r, best in zip(self.layers, self.reduced, self.best, strict=True)
        ]


@dataclass
class _Front:
    """The frontier of partial outfits over some layers: totals (cost ascending, score rising) and, per
    layer, each point's parent in the previous layer's frontier and the position it picks."""

    cost: np.ndarray
    score: np.ndarray
    parents: list[np.ndarray]
    picks: list[np.ndarray]

    def choice(self, point: int) -> list[int]:
        """The frontier position picked in each layer by the partial outfit at ``point``."""
        out = [0] * len(self.picks)
        for i in range(len(self.picks) - 1, -1, -1):
            out[i] = int(self.picks[i][point])
            point = int(self.parents[i][point])
        return out


def _front(
    layers: Sequence[_Layer], steps: Sequence[_Steps], others: Sequence[_Steps], budget: int, low: float
) -> _Front:
    """The frontier of partial outfits over ``layers`` (their LP ``steps``), layer after layer, without
    the points that cannot reach ``low`` even with the LP bound of the layers still to come, these and
    ``others``."""
    front = _Front(np.zeros(1, dtype=np.int64), np.zeros(1), [], [])
    for i, layer in enumerate(layers):
        total_cost = (front.cost[:, None] + layer.cost[None, :]).ravel()
        total_score = (front.score[:, None] + layer.score[None, :]).ravel()
        bound = _Bound([*steps[i + 1 :], *others])
        promising = np.flatnonzero(total_score + bound(budget - total_cost) >= low)
        order = promising[_pareto(total_cost[promising], total_score[promising])]
        front.parents.append(order // layer.cost.size)
        front.picks.append(order % layer.cost.size)
        front.cost, front.score = total_cost[order], total_score[order]
    return front


def _halves_size(layers: Sequence[_Layer]) -> int:
    """The most partial outfits either half of ``_search`` could hold: the product of its layers' sizes."""
    sizes = sorted(layer.cost.size for layer in layers)
    return max(math.prod(sizes[0::2]), math.prod(sizes[1::2]))


def _enumerate(layers: Sequence[_Layer], budget: int, target: float) -> tuple[list[int], int, float] | None:
    """``_search`` by trying every combination of the layers' options (for a few thousand at most)."""
    cost, score = np.zeros((), dtype=np.int64), np.zeros(())
    for layer in layers:
        cost, score = np.add.outer(cost, layer.cost), np.add.outer(score, layer.score)
    fits = cost <= budget
    if not fits.any():
        return None
    best = float(score[fits].max())
    if best < target - TIE:
        return None
    at = np.unravel_index(
        int(np.argmin(np.where(fits & (score >= best - TIE), cost, np.iinfo(np.int64).max))), cost.shape
    )
    return [int(layer.index[j]) for layer, j in zip(layers, at, strict=True)], int(cost[at]), float(score[at])


def _search(bound: _Lagrangian, budget: int, target: float) -> tuple[list[int], int, float] | None:
    """The best outfit (the option picked per layer, cost, score) if it scores at least ``target``
    (less ``TIE``), else None. Options and partial outfits that cannot reach ``target - 2 * TIE`` are
    dropped, so every outfit within ``TIE`` of an accepted best is still there to break the tie.

    Meets in the middle: the frontiers of partial outfits over two halves of the layers (the smaller
    layers first), each pruned with the LP bound of the rest, then for each point of one the best
    point of the other that fits."""
    low = target - 2 * TIE
    kept = bound.keep(low)
    if any(layer.cost.size == 0 for layer in kept):
        return None
    if math.prod(layer.cost.size for layer in kept) <= ENUMERATE:
        return _enumerate(kept, budget, target)
    order = sorted(range(len(kept)), key=lambda i: kept[i].cost.size)
    half = [order[0::2], order[1::2]]
    steps = {i: _Steps.of(kept[i]) for i in order}
    a, b = (
        _front([kept[i] for i in h], [steps[i] for i in h], [steps[i] for i in o], budget, low)
        for h, o in (half, half[::-1])
    )
    if a.cost.size == 0 or b.cost.size == 0:
        return None
    # b's frontier rises in score with cost: for each point of a, the last of b that fits is its best
    fit = np.searchsorted(b.cost, budget - a.cost, side="right") - 1
    best = float(np.max(np.where(fit >= 0, a.score + b.score[fit], -np.inf)))
    if best < target - TIE:
        return None
    # the answer: the cheapest pair within TIE of the best (for each point of a, b's cheapest that reaches it)
    reach = np.minimum(np.searchsorted(b.score, best - TIE - a.score, side="left"), b.cost.size - 1)
    ok = (b.score[reach] >= best - TIE - a.score) & (a.cost + b.cost[reach] <= budget)
    pa = int(np.argmin(np.where(ok, a.cost + b.cost[reach], np.iinfo(np.int64).max)))
    pb = int(reach[pa])
    choice = [0] * len(kept)
    for h, front, point in ((half[0], a, pa), (half[1], b, pb)):
        for i, position in zip(h, front.choice(point), strict=True):
            choice[i] = int(kept[i].index[position])
    return choice, int(a.cost[pa] + b.cost[pb]), float(a.score[pa] + b.score[pb])


def solve(layers: Sequence[tuple[np.ndarray, np.ndarray]], budget: int) -> Outfit | None:
    """The highest summed score over one option per layer with total cost <= ``budget`` (scores within
    ``TIE`` are equal: then the cheaper), each layer given as its options' costs (int64, the caller's
    minor units) and scores (float64). When no combination fits, the cheapest complete outfit, with
    ``within_budget`` False. None when a layer has no option at all."""
    if any(cost.size == 0 for cost, _ in layers):
        return None
    if not layers:
        return Outfit(choice=[], cost=0, score=0.0, within_budget=True)
    min_costs = [int(cost.min()) for cost, _ in layers]
    if sum(min_costs) > budget:
        return _cheapest(layers)
    spare = budget - sum(min_costs)  # what any one layer may spend over its cheapest
    frontiers = [_frontier(cost, score, least + spare) for (cost, score), least in zip(layers, min_costs, strict=True)]
    pos, price = _Bound([_Steps.of(f) for f in frontiers]).integer_part(budget)
    pos = _improve(frontiers, pos, budget)
    floor_cost = sum(int(f.cost[p]) for f, p in zip(frontiers, pos, strict=True))
    if floor_cost > budget:  # a bug: fail loudly rather than prune with a floor no outfit reaches
        raise AssertionError(f"outfit floor pick {pos.tolist()} costs {floor_cost}, over the budget {budget}")
    floor = float(sum(float(f.score[p]) for f, p in zip(frontiers, pos, strict=True)))
    bound = _Lagrangian(frontiers, price, budget)
    # first look only for outfits near the bound: few options survive the reduction, so the search is
    # small; then lower the target, down to the floor, whose own outfit is always found
    big = _halves_size(bound.keep(floor - 2 * TIE)) > SMALL_SEARCH
    for share in TARGETS if big else (1.0,):
        found = _search(bound, budget, bound.upper - (bound.upper - floor) * share)
        if found is not None:
            break
    else:
        raise AssertionError(f"outfit search found nothing at its floor {floor} (budget {budget})")  # a bug too
    picked, cost, score = found
    return Outfit(choice=picked, cost=cost, score=score, within_budget=True)


def _cheapest(layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> Outfit:
    """The cheapest complete outfit (of equal prices, the best score)."""
    choice = [int(np.lexsort((-score, cost))[0]) for cost, score in layers]
    return Outfit(
        choice=choice,
        cost=sum(int(cost[j]) for (cost, _), j in zip(layers, choice, strict=True)),
        score=sum(float(score[j]) for (_, score), j in zip(layers, choice, strict=True)),
        within_budget=False,
    )
