"""Standardised attributes mirrored to Redis, and coverage computed from the mirror.

Layout (``prefix`` defaults to ``looksync:attr``)::

    <prefix>:product:<product_id>   hash: vendor, market, brand, category, layer, gender, colours, pattern,
                                    material, sizes, in_stock, group_id, sources (JSON: attribute -> source)
    <prefix>:all                    set of every mirrored product id
    <prefix>:market:<market>        set per market
    <prefix>:layer:<layer>          set per layer
    <prefix>:category:<category>    set per category

Sanity checks, coverage analysis and migrations read this instead of querying the index. The mirror is
written by the ingest pipeline after the index upsert; deleting a product removes it from every set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from looksync.catalog.schema import Product
from looksync.catalog.taxonomy import get_taxonomy

# attributes whose absence coverage reports; the value is how "missing" shows in the hash
MISSING_CHECKS: dict[str, str] = {"colours": "", "pattern": "", "material": "", "sizes": "", "group_id": ""}
_SET_FIELDS = ("market", "layer", "category")


def open_redis(url: str):
    import redis

    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)


class AttributeMirror:
    def __init__(self, client: Any, prefix: str = "looksync:attr"):
        self.redis = client
        self.prefix = prefix.rstrip(":")

    @classmethod
    def from_settings(cls, settings) -> AttributeMirror | None:
        """The configured mirror, or None when no Redis is configured (the caller logs that)."""
        url = settings.attributes_redis_url or settings.redis_url
        return cls(open_redis(url), settings.attributes_prefix) if url else None

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @staticmethod
    def fields_of(product: Product, group_id: str | None = None, sources: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "vendor": product.vendor,
            "market": product.market,
            "brand": product.brand,
            "category": product.category,
            "layer": product.layer,
            "gender": product.gender,
            "colours": ",".join(product.colours),
            "pattern": product.pattern or "",
            "material": product.material or "",
            "sizes": ",".join(product.sizes),
            "in_stock": "1" if product.in_stock else "0",
            "group_id": group_id or "",
            "sources": json.dumps(sources or {}, sort_keys=True),
        }

    def upsert(
        self,
        products: Sequence[Product],
        groups: dict[str, str | None] | None = None,
        sources: dict[str, dict[str, str]] | None = None,
    ) -> int:
        """Write products' attributes; moves a product between sets when its market/layer/category changed."""
        groups, sources = groups or {}, sources or {}
        if not products:
            return 0
        previous = self._previous([p.product_id for p in products])
        pipe = self.redis.pipeline(transaction=True)
        for p, old in zip(products, previous, strict=True):
            key = self._key("product", p.product_id)
            new = self.fields_of(p, groups.get(p.product_id), sources.get(p.product_id))
            if old.get("sources") and not sources.get(p.product_id):
                new["sources"] = old["sources"]  # keep earlier zero-shot decisions on a metadata update
            for name in _SET_FIELDS:
                if old.get(name) and old[name] != new[name]:
                    pipe.srem(self._key(name, old[name]), p.product_id)
                pipe.sadd(self._key(name, new[name]), p.product_id)
            pipe.sadd(self._key("all"), p.product_id)
            pipe.hset(key, mapping=new)
        pipe.execute()
        return len(products)

    def set_groups(self, groups: dict[str, str | None]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for pid, gid in groups.items():
            if self.redis.exists(self._key("product", pid)):
                pipe.hset(self._key("product", pid), "group_id", gid or "")
        pipe.execute()

    def delete(self, product_ids: Iterable[str]) -> int:
        ids = list(product_ids)
        previous = self._previous(ids)
        pipe = self.redis.pipeline(transaction=True)
        n = 0
        for pid, old in zip(ids, previous, strict=True):
            if not old:
                continue
            n += 1
            for name in _SET_FIELDS:
                if old.get(name):
                    pipe.srem(self._key(name, old[name]), pid)
            pipe.srem(self._key("all"), pid)
            pipe.delete(self._key("product", pid))
        pipe.execute()
        return n

    def get(self, product_id: str) -> dict[str, str]:
        return self.redis.hgetall(self._key("product", product_id))

    def members(self, **where: str) -> set[str]:
        """Product ids in the intersection of the named sets, e.g. ``members(market="US", layer="bag")``."""
        keys = [self._key(name, value) for name, value in where.items()] or [self._key("all")]
        return set(self.redis.sinter(keys))

    def _previous(self, ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for pid in ids:
            pipe.hgetall(self._key("product", pid))
        return pipe.execute()

    def iter_products(self, batch: int = 1000) -> Iterator[tuple[str, dict[str, str]]]:
        ids: list[str] = []
        for pid in self.redis.sscan_iter(self._key("all"), count=batch):
            ids.append(pid)
            if len(ids) >= batch:
                yield from zip(ids, self._previous(ids), strict=True)
                ids = []
        if ids:
            yield from zip(ids, self._previous(ids), strict=True)

    def clear(self) -> None:
        """Remove every key under the prefix (tests, migrations)."""
        keys = list(self.redis.scan_iter(match=self.prefix + ":*", count=1000))
        for start in range(0, len(keys), 500):
            self.redis.delete(*keys[start : start + 500])


@dataclass
class Coverage:
    total: int
    by_market_layer: dict[str, dict[str, int]]  # market -> layer -> products
    missing: dict[str, int]  # attribute -> products without it
    missing_by_market: dict[str, dict[str, int]] = field(default_factory=dict)  # market -> attribute -> count
    zeroshot: dict[str, int] = field(default_factory=dict)  # attribute -> products it was set by zero-shot

    def missing_rate(self, attribute: str) -> float:
        return self.missing.get(attribute, 0) / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_market_layer": self.by_market_layer,
            "missing": self.missing,
            "missing_rate": {a: round(self.missing_rate(a), 4) for a in self.missing},
            "missing_by_market": self.missing_by_market,
            "zeroshot": self.zeroshot,
        }

    def format_table(self) -> str:
        taxonomy = get_taxonomy()
        markets = sorted(self.by_market_layer)
        lines = [f"{'layer':<18}" + "".join(f"{m:>8}" for m in markets)]
        for layer in taxonomy.layers:
            lines.append(f"{layer:<18}" + "".join(f"{self.by_market_layer[m].get(layer, 0):>8}" for m in markets))
        lines.append(f"{'total':<18}" + "".join(f"{sum(self.by_market_layer[m].values()):>8}" for m in markets))
        lines.append("")
        lines.append("missing attributes (share of products):")
        for attribute in self.missing:
            lines.append(f"  {attribute:<10} {self.missing[attribute]:>7}  {self.missing_rate(attribute):6.1%}")
        return "\n".join(lines)


def coverage(mirror: AttributeMirror) -> Coverage:
    """Counts per market x layer (set intersections) and missing-attribute counts (one pass over hashes)."""
    taxonomy = get_taxonomy()
    by_market_layer = {
        m: {layer: int(mirror.redis.sintercard(2, [mirror._key("market", m), mirror._key("layer", layer)]))
            for layer in taxonomy.layers}
        for m in taxonomy.markets
    }  # fmt: skip
    missing = dict.fromkeys(MISSING_CHECKS, 0)
    missing_by_market: dict[str, dict[str, int]] = {m: dict.fromkeys(MISSING_CHECKS, 0) for m in taxonomy.markets}
    zeroshot: dict[str, int] = {}
    total = 0
    for _pid, fields in mirror.iter_products():
        if not fields:
            continue
        total += 1
        for attribute, empty in MISSING_CHECKS.items():
            if fields.get(attribute, "") == empty:
                missing[attribute] += 1
                missing_by_market.setdefault(fields.get("market", "?"), dict.fromkeys(MISSING_CHECKS, 0))[attribute] += 1
        for attribute, source in json.loads(fields.get("sources") or "{}").items():
            if source == "zeroshot":
                zeroshot[attribute] = zeroshot.get(attribute, 0) + 1
    return Coverage(total, by_market_layer, missing, missing_by_market, zeroshot)
