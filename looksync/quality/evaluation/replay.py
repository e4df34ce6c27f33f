"""Offline replay of shopper preferences: synthetic shoppers with planted tastes browse the live index,
their earlier sessions become events, and their later (held-out) purchases are ranked with and
without the profile those events built.

A shopper has a planted brand, size and price band in one market. A session is a similar-products
search from a random catalog product (the index's kNN over stored vectors, k results, the market's
filter); the shopper views the top results, and buys one result drawn with probability proportional to
``exp(taste_weight * taste - rank / rank_scale)``, where ``taste`` counts the planted brand, size (in
stock) and price band the product has. Training sessions send view, click and purchase events through
the same code the service uses (``event_fields``, a ``MemoryProfileStore``); in held-out sessions the
purchased product's rank in the unchanged list is compared with its rank after ``personalise`` (the
service's boost). The figure is the mean rank gain (positive: the profile moved the purchase up) and
the reciprocal-rank gain, with bootstrap 95% intervals over shoppers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from looksync.index.base import CatalogIndex, SearchFilters
from looksync.search.engine import product_summary
from looksync.search.shoppers import MemoryProfileStore, ShopperEvent, event_fields, personalise, price_band


@dataclass
class ReplayOptions:
    shoppers: int = 100
    train_sessions: int = 8
    test_sessions: int = 4
    k: int = 20
    views_per_session: int = 5
    taste_weight: float = 1.5
    rank_scale: float = 5.0
    max_boost: float = 0.05
    resamples: int = 1000
    seed: int = 0


def _pool(index: CatalogIndex, market: str, dim: int, rng: np.random.Generator, draws: int = 40) -> list[dict[str, Any]]:
    """Products of a market, gathered by kNN from random directions (the index has no full scan)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(draws):
        vector = rng.normal(size=dim).astype(np.float32)
        for hit in index.search(vector / np.linalg.norm(vector), k=100, filters=SearchFilters(market=market)):
            seen.setdefault(hit.product_id, hit.product)
    return list(seen.values())


def _taste(product: dict[str, Any], brand: str, size: str, band: str) -> int:
    in_stock = product.get("in_stock") is not False
    return (
        int(product.get("brand") == brand)
        + int(in_stock and size in (product.get("sizes") or []))
        + int(product.get("price") is not None and price_band(float(product["price"])) == band)
    )


def _interval(values: list[float], resamples: int, rng: np.random.Generator) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    means = [float(np.mean(rng.choice(arr, size=arr.size, replace=True))) for _ in range(resamples)]
    return {"mean": round(float(arr.mean()), 4), "ci_low": round(float(np.percentile(means, 2.5)), 4),
            "ci_high": round(float(np.percentile(means, 97.5)), 4)}  # fmt: skip


def run_replay(
    index: CatalogIndex, markets: list[str], options: ReplayOptions, echo: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    rng = np.random.default_rng(options.seed)
    pyrng = random.Random(options.seed)
    live = index.live_version()
    dim = next(info.dim for info in index.list_versions() if info.name == live)
    pools = {m: _pool(index, m, dim, rng) for m in markets}
    pools = {m: p for m, p in pools.items() if len(p) >= options.k}
    if not pools:
        raise ValueError(f"no market has {options.k} products in the live index")
    store = MemoryProfileStore(half_life_s=30 * 86400, ttl_s=10**9, max_events=10_000)
    per_shopper_rank_gain, per_shopper_rr_gain = [], []
    clock = 1_000_000.0

    def session(market: str, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seed_product = pyrng.choice(pool)
        vector = index.vectors([seed_product["product_id"]])[seed_product["product_id"]]
        hits = index.search(vector, k=options.k, filters=SearchFilters(market=market))
        return [product_summary(h) | {"sizes": h.product.get("sizes")} for h in hits]

    def choose(results: list[dict[str, Any]], brand: str, size: str, band: str) -> int:
        weights = [math.exp(options.taste_weight * _taste(p, brand, size, band) - i / options.rank_scale) for i, p in enumerate(results)]
        return pyrng.choices(range(len(results)), weights=weights)[0]

    for s in range(options.shoppers):
        market = pyrng.choice(sorted(pools))
        pool = pools[market]
        brand = pyrng.choice(sorted({p["brand"] for p in pool if p.get("brand")}))
        size = pyrng.choice(sorted({z for p in pool for z in p.get("sizes") or []}))
        band = pyrng.choice(sorted({price_band(float(p["price"])) for p in pool if p.get("price") is not None}))
        shopper = f"replay-{s}"
        for _ in range(options.train_sessions):
            results = session(market, pool)
            bought = results[choose(results, brand, size, band)]
            events = [ShopperEvent(shopper, p["product_id"], "view", clock) for p in results[: options.views_per_session]]
            events += [ShopperEvent(shopper, bought["product_id"], kind, clock + 1, size) for kind in ("click", "purchase")]
            store.add([(e, event_fields(e, next(p for p in results if p["product_id"] == e.product_id))) for e in events])
            clock += 3600
        profile = store.get(shopper, now=clock)
        rank_gain, rr_gain = [], []
        for _ in range(options.test_sessions):
            results = session(market, pool)
            chosen = results[choose(results, brand, size, band)]["product_id"]
            before = [p["product_id"] for p in results].index(chosen) + 1
            personalise(results, profile, options.max_boost)
            after = [p["product_id"] for p in results].index(chosen) + 1
            rank_gain.append(before - after)
            rr_gain.append(1 / after - 1 / before)
        per_shopper_rank_gain.append(float(np.mean(rank_gain)))
        per_shopper_rr_gain.append(float(np.mean(rr_gain)))
    summary = {
        "shoppers": options.shoppers,
        "held_out_purchases": options.shoppers * options.test_sessions,
        "markets": sorted(pools),
        "max_boost": options.max_boost,
        "rank_gain": _interval(per_shopper_rank_gain, options.resamples, rng),
        "reciprocal_rank_gain": _interval(per_shopper_rr_gain, options.resamples, rng),
    }
    echo(
        f"preference replay: {summary['held_out_purchases']} held-out purchases of {options.shoppers} shoppers, "
        f"max boost {options.max_boost}: purchase rank gain {summary['rank_gain']['mean']:+.2f} "
        f"[{summary['rank_gain']['ci_low']:+.2f}, {summary['rank_gain']['ci_high']:+.2f}], reciprocal rank gain "
        f"{summary['reciprocal_rank_gain']['mean']:+.3f} [{summary['reciprocal_rank_gain']['ci_low']:+.3f}, "
        f"{summary['reciprocal_rank_gain']['ci_high']:+.3f}]"
    )
    return summary
