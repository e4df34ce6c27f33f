"""What every search answer is built from: stage timings (``Timer``), one product card per hit
(``product_summary``) and one card per item (``drop_near_duplicates``).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from looksync.index import Hit


@dataclass
class Timer:
    timings_ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


def product_summary(hit: Hit) -> dict[str, Any]:
    p = hit.product
    return {
        "product_id": hit.product_id,
        "score": round(float(hit.score), 6),
        "title": p.get("title"),
        "brand": p.get("brand"),
        "category": p.get("category"),
        "layer": p.get("layer"),
        "gender": p.get("gender"),
        "colours": p.get("colours"),
        "pattern": p.get("pattern"),
        "market": p.get("market"),
        "price": p.get("price"),
        "currency": p.get("currency"),
        "in_stock": p.get("in_stock"),
        "sizes": p.get("sizes"),
        "image_url": (p.get("image_urls") or [None])[0],
        "product_url": p.get("product_url"),
        "image_hash": p.get("image_hash"),  # names the product's thumbnail (the service adds thumbnail_url)
    }


def drop_near_duplicates(hits: list[Hit], exclude_keys: set[str] | None = None) -> list[Hit]:
    """Keep the best-scoring hit of each product group / image (hits arrive best first): one card per
    item. Near-duplicates by vector cosine are removed by the crop rerank, which has the vectors at hand."""
    seen: set[str] = set(exclude_keys or ())
    kept = []
    for hit in hits:
        keys = {k for k in (hit.product.get("group_id"), hit.product.get("image_hash")) if k} or {hit.product_id}
        if keys & seen:
            continue
        seen |= keys
        kept.append(hit)
    return kept
