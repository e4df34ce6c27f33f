"""Outfits for figure and framing tests: product specs from the pools the generator draws looks from."""

from __future__ import annotations

import random
import tempfile
from functools import lru_cache
from pathlib import Path

from looksync.sample.catalog import ProductSpec, catalog_data, sample_vendors
from looksync.sample.looks import LookPools, choose_layers


@lru_cache(maxsize=2)
def look_pools(size: int = 150, seed: int = 5) -> LookPools:
    """The candidate products per (market, gender, layer) of a ``size``-product sample (feeds written to a
    temporary folder, then dropped)."""
    from looksync.sample.generate import _write_feeds

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vendors = sample_vendors()
        for folder in ("feeds", *(f"images/{v}" for v in vendors)):
            (root / folder).mkdir(parents=True, exist_ok=True)
        pools = LookPools(cap=catalog_data()["looks"]["pool_cap"])
        counts = {v: len(range(i, size, len(vendors))) for i, v in enumerate(vendors)}
        _write_feeds(root, vendors, counts, pools, seed=seed, fault_rate=0.0, image_base_url="http://127.0.0.1:1")
    return pools


def full_outfit(gender: str = "men", seed: int = 0) -> dict[str, ProductSpec]:
    """A top, a bottom and shoes at least (and whatever optional layers the draw adds), of ``gender``."""
    rng = random.Random(seed)
    while True:
        chosen = choose_layers(rng, look_pools(), "US", gender)
        if {"topwear", "bottomwear", "footwear"} <= set(chosen):
            return chosen


def outfits(gender: str, n: int, seed: int = 0) -> list[dict[str, ProductSpec]]:
    """``n`` outfits of ``gender`` drawn as the generator draws a look's."""
    rng = random.Random(f"{seed}:{gender}")
    return [choose_layers(rng, look_pools(), "US", gender) for _ in range(n)]
