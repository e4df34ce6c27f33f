"""The outfit within a budget: one product per layer, in stock and in the market's currency, total
price within the budget, summed match score as high as possible; the cheapest complete outfit, said to
be over budget, when nothing fits.

Prices are compared in the market's minor units (cents, paise, yen), which is exactly how they are
stored, so there is no bucketing: every total is an integer and the budget test is exact. The search
itself, exact too, is ``looksync.search.knapsack``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from looksync.search.knapsack import Outfit, solve


@dataclass(frozen=True)
class Option:
    """One candidate product for a layer: its price in minor units and its match score."""

    product_id: str
    cost: int
    score: float


def best_outfit(layers: Sequence[Sequence[Option]], budget: int) -> Outfit | None:
    """The highest summed score over one option per layer with total cost <= ``budget`` (scores within
    ``TIE`` are equal: then the cheaper). When no combination fits, the cheapest complete outfit, with
    ``within_budget`` False. None when a layer has no option at all."""
    return solve(
        [
            (
                np.fromiter((o.cost for o in options), dtype=np.int64, count=len(options)),
                np.fromiter((o.score for o in options), dtype=np.float64, count=len(options)),
            )
            for options in layers
        ],
        budget,
    )


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
    scale = 10**minor_units
    arrays = [
        (
            # np.rint rounds half to even like round() in to_minor: the same minor units, for a whole layer at once
            np.rint(np.fromiter((p["price"] for p in products), dtype=np.float64, count=len(products)) * scale).astype(
                np.int64
            ),
            np.fromiter((p["score"] for p in products), dtype=np.float64, count=len(products)),
        )
        for _, products in eligible
    ]
    solved = solve(arrays, to_minor(budget, minor_units))
    items = []
    if solved is not None:
        for (layer, products), j in zip(eligible, solved.choice, strict=True):
            p = products[j]
            items.append({**p, "layer": layer})
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
