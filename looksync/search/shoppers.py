"""Preferences learned from what a shopper did: events, a decayed profile per shopper, and a bounded
soft boost of search results.

An event (view, click, add to cart, purchase) of a product adds its weight to the shopper's profile
under the product's brand, the size bought (when the event names one) and the product's price band in
its market. Counts decay exponentially (``shopper_half_life_days``): an event's weight is halved for
every half-life between its time and the profile's clock. The profile and the shopper's recent events
(the newest ``shopper_max_events``) expire ``shopper_ttl_days`` after the last event. Redis holds them
when ``LOOKSYNC_REDIS_URL`` is set (one Lua script per shopper, all shoppers of a batch in one
MULTI/EXEC, so no reader sees half a batch); otherwise an in-process store, lost at restart. A batch is
checked whole before anything is written (every event's fields, every product in the live index): a
bad event stores nothing. Redis does not roll back a command that fails inside EXEC; with checked
input that only happens on a key some other client overwrote with another type.

The boost of a product is ``max_boost x mean(brand share, size share, price-band share)``, each share
the product's part of the shopper's decayed counts of that kind (0 when the profile has none). It only
reorders the results a search returned under the request's own filters: a preference never brings in
a product an explicit filter left out, nor pushes one out.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
KINDS = ("brand", "size", "price")


class ProfileUnavailable(RuntimeError):
    """The profile store (Redis) cannot be reached."""


@dataclass(frozen=True)
class ShopperEvent:
    shopper_id: str
    product_id: str
    type: str
    at: float  # seconds since the epoch
    size: str | None = None


def price_band(price: float) -> str:
    """Power-of-two bands (``64-128``): a band is a price range a shopper keeps to, whatever the currency."""
    if price < 1:
        return "0-1"
    low = 2 ** math.floor(math.log2(price))
    return f"{low}-{low * 2}"


def event_fields(event: ShopperEvent, product: dict[str, Any]) -> dict[str, float]:
    """The profile fields an event of ``product`` adds to, with the event's weight."""
    weight = EVENT_WEIGHTS[event.type]
    fields = {}
    if product.get("brand"):
        fields[f"brand:{product['brand']}"] = weight
    if event.size:
        fields[f"size:{event.size}"] = weight
    if product.get("price") is not None and product.get("market"):
        fields[f"price:{product['market']}:{price_band(float(product['price']))}"] = weight
    return fields


@dataclass
class Profile:
    shopper_id: str
    counts: dict[str, float]  # "brand:X", "size:M", "price:IN:1024-2048" -> decayed weight, as of `as_of`
    as_of: float
    events: int

    def share(self, kind: str, key: str, market: str | None = None) -> float:
        prefix = f"{kind}:{market}:" if kind == "price" else f"{kind}:"
        total = sum(v for k, v in self.counts.items() if k.startswith(prefix))
        return self.counts.get(prefix + key, 0.0) / total if total > 0 else 0.0

    def kinds(self) -> list[str]:
        return [kind for kind in KINDS if any(k.startswith(f"{kind}:") for k in self.counts)]

    def to_json(self) -> dict[str, Any]:
        grouped: dict[str, Any] = {"brands": {}, "sizes": {}, "price_bands": {}}
        for key, value in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            kind, _, rest = key.partition(":")
            if kind == "brand":
                grouped["brands"][rest] = round(value, 4)
            elif kind == "size":
                grouped["sizes"][rest] = round(value, 4)
            elif kind == "price":
                market, _, band = rest.partition(":")
                grouped["price_bands"].setdefault(market, {})[band] = round(value, 4)
        return {"shopper_id": self.shopper_id, **grouped, "events": self.events,
                "as_of": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.as_of))}  # fmt: skip


def _decay(value: float, seconds: float, half_life_s: float) -> float:
    return value * 0.5 ** (max(seconds, 0.0) / half_life_s)


class ProfileStore:
    """Where profiles live; ``add`` takes whole batches (all or nothing)."""

    def __init__(self, half_life_s: float, ttl_s: int, max_events: int):
        self.half_life_s = half_life_s
        self.ttl_s = ttl_s
        self.max_events = max_events

    def add(self, batch: Sequence[tuple[ShopperEvent, dict[str, float]]]) -> None:
        raise NotImplementedError

    def get(self, shopper_id: str, now: float | None = None) -> Profile | None:
        raise NotImplementedError

    def events(self, shopper_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def delete(self, shopper_id: str) -> bool:
        raise NotImplementedError


class MemoryProfileStore(ProfileStore):
    def __init__(self, half_life_s: float, ttl_s: int, max_events: int):
        super().__init__(half_life_s, ttl_s, max_events)
        self._lock = threading.Lock()
        self._profiles: dict[str, tuple[float, dict[str, float], list[dict[str, Any]], float]] = {}

    def add(self, batch):
        with self._lock:
            staged = dict(self._profiles)
            for event, fields in batch:
                clock, counts, events, _ = staged.get(event.shopper_id, (event.at, {}, [], 0.0))
                counts = dict(counts)
                new_clock = max(clock, event.at)
                if new_clock > clock:
                    counts = {k: _decay(v, new_clock - clock, self.half_life_s) for k, v in counts.items()}
                for key, weight in fields.items():
                    counts[key] = counts.get(key, 0.0) + _decay(weight, new_clock - event.at, self.half_life_s)
                events = [asdict(event), *events][: self.max_events]
                staged[event.shopper_id] = (new_clock, counts, events, time.time() + self.ttl_s)
            self._profiles = staged

    def _live(self, shopper_id: str):
        entry = self._profiles.get(shopper_id)
        if entry is None or entry[3] < time.time():
            return None
        return entry

    def get(self, shopper_id, now=None):
        entry = self._live(shopper_id)
        if entry is None:
            return None
        clock, counts, events, _ = entry
        now = max(now or time.time(), clock)
        return Profile(shopper_id, {k: _decay(v, now - clock, self.half_life_s) for k, v in counts.items()}, now, len(events))

    def events(self, shopper_id):
        entry = self._live(shopper_id)
        return list(entry[2]) if entry else []

    def delete(self, shopper_id):
        with self._lock:
            return self._profiles.pop(shopper_id, None) is not None


# KEYS: profile hash, events list. ARGV: half-life s, ttl s, max events, n, then n x (field, weight, at),
# then the events' JSON. The clock (field "_t") only moves forward; the counts are decayed to it first.
_ADD_SCRIPT = """
local half = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local clock = tonumber(redis.call('HGET', KEYS[1], '_t') or '-1')
local newest = clock
for i = 0, n - 1 do
  local at = tonumber(ARGV[7 + 3 * i])
  if at > newest then newest = at end
end
if clock >= 0 and newest > clock then
  local factor = math.pow(0.5, (newest - clock) / half)
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= '_t' then redis.call('HSET', KEYS[1], all[i], tostring(tonumber(all[i + 1]) * factor)) end
  end
end
for i = 0, n - 1 do
  local w = tonumber(ARGV[6 + 3 * i]) * math.pow(0.5, (newest - tonumber(ARGV[7 + 3 * i])) / half)
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[5 + 3 * i], w)
end
redis.call('HSET', KEYS[1], '_t', tostring(newest))
for j = 5 + 3 * n, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[j]) end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


class RedisProfileStore(ProfileStore):
    def __init__(self, url: str, half_life_s: float, ttl_s: int, max_events: int, prefix: str = "looksync:shopper"):
        super().__init__(half_life_s, ttl_s, max_events)
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix
        self._script = self.client.register_script(_ADD_SCRIPT)

    def _keys(self, shopper_id: str) -> list[str]:
        return [f"{self.prefix}:{{{shopper_id}}}:profile", f"{self.prefix}:{{{shopper_id}}}:events"]

    def _call(self, what: str, fn):
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            raise ProfileUnavailable(f"shopper profiles: {what}: {exc}") from exc

    def add(self, batch):
        by_shopper: dict[str, list[tuple[ShopperEvent, dict[str, float]]]] = {}
        for event, fields in batch:
            by_shopper.setdefault(event.shopper_id, []).append((event, fields))

        def run():
            pipe = self.client.pipeline(transaction=True)  # MULTI/EXEC: every shopper of the batch, or none
            for shopper_id, items in by_shopper.items():
                triples = [(k, w, e.at) for e, fields in items for k, w in fields.items()]
                args = [self.half_life_s, self.ttl_s, self.max_events, len(triples)]
                for key, weight, at in triples:
                    args += [key, weight, at]
                args += [json.dumps(asdict(e)) for e, _ in sorted(items, key=lambda item: item[0].at)]
                self._script(keys=self._keys(shopper_id), args=args, client=pipe)
            pipe.execute()

        self._call("store events", run)

    def get(self, shopper_id, now=None):
        raw = self._call("read profile", lambda: self.client.hgetall(self._keys(shopper_id)[0]))
        if not raw:
            return None
        values = {k.decode(): float(v) for k, v in raw.items()}
        clock = values.pop("_t")
        events = self._call("count events", lambda: self.client.llen(self._keys(shopper_id)[1]))
        now = max(now or time.time(), clock)
        return Profile(shopper_id, {k: _decay(v, now - clock, self.half_life_s) for k, v in values.items()}, now, events)

    def events(self, shopper_id):
        raw = self._call("read events", lambda: self.client.lrange(self._keys(shopper_id)[1], 0, -1))
        return [json.loads(item) for item in raw]

    def delete(self, shopper_id):
        return bool(self._call("erase", lambda: self.client.delete(*self._keys(shopper_id))))


def open_profile_store(settings) -> ProfileStore:
    half_life_s = settings.shopper_half_life_days * 86400
    ttl_s = int(settings.shopper_ttl_days * 86400)
    if settings.redis_url:
        return RedisProfileStore(settings.redis_url, half_life_s, ttl_s, settings.shopper_max_events)
    return MemoryProfileStore(half_life_s, ttl_s, settings.shopper_max_events)


def preference_boost(profile: Profile, product: dict[str, Any], max_boost: float) -> tuple[float, dict[str, float]]:
    """The bounded boost of one product, and its parts (the shares that gave it)."""
    parts = {"brand": profile.share("brand", str(product.get("brand")))}
    sizes = [s for s in product.get("sizes") or []] if product.get("in_stock") is not False else []
    parts["size"] = max((profile.share("size", s) for s in sizes), default=0.0)
    price = product.get("price")
    parts["price"] = profile.share("price", price_band(float(price)), product.get("market")) if price is not None else 0.0
    return max_boost * sum(parts.values()) / len(parts), parts


def personalise(products: list[dict[str, Any]], profile: Profile, max_boost: float) -> None:
    """Reorder ``products`` (result summaries, best first) in place by their ranking score plus the
    shopper's boost; each gets ``preference_boost``."""
    ranked = []
    for i, product in enumerate(products):
        boost, _ = preference_boost(profile, product, max_boost)
        product["preference_boost"] = round(boost, 6)
        base = product.get("rerank_score", product.get("score", 0.0))
        ranked.append((-(base + boost), i, product))
    products[:] = [p for _, _, p in sorted(ranked)]
