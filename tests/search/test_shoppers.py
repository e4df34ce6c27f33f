"""Shopper profiles: decayed counts, whole batches, erasure, expiry, and the bounded boost, on the
in-process store and on the real Redis (127.0.0.1:6379)."""

from __future__ import annotations

import uuid

import pytest

from looksync.search.shoppers import (
    MemoryProfileStore,
    RedisProfileStore,
    ShopperEvent,
    event_fields,
    personalise,
    preference_boost,
    price_band,
)

DAY = 86400.0
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryProfileStore(half_life_s=30 * DAY, ttl_s=3600, max_events=5)
        return
    prefix = f"looksync-test:{uuid.uuid4().hex}"
    s = RedisProfileStore(REDIS_URL, half_life_s=30 * DAY, ttl_s=3600, max_events=5, prefix=prefix)
    yield s
    keys = list(s.client.scan_iter(f"{prefix}:*"))
    if keys:
        s.client.delete(*keys)


PRODUCT = {"brand": "Acme", "price": 150.0, "market": "US", "sizes": ["M", "L"], "in_stock": True}


def _event(shopper="s1", kind="purchase", at=1_000 * DAY, size=None, product="p1"):
    return ShopperEvent(shopper, product, kind, at, size)


def test_weights_decay_by_half_life_and_the_clock_only_moves_forward(store):
    old, new = _event(kind="view", at=1_000 * DAY), _event(kind="view", at=1_030 * DAY)  # one half-life apart
    store.add([(new, event_fields(new, PRODUCT))])
    store.add([(old, event_fields(old, PRODUCT))])  # arrives late: weighed as of its own time

    profile = store.get("s1", now=1_030 * DAY)

    assert profile.counts["brand:Acme"] == pytest.approx(1.0 + 0.5)
    assert profile.counts["price:US:128-256"] == pytest.approx(1.5)
    assert store.get("s1", now=1_060 * DAY).counts["brand:Acme"] == pytest.approx(0.75)
    assert profile.events == 2


def test_shares_sizes_and_kinds(store):
    batch = [_event(size="M"), _event(kind="click", size="S")]
    store.add([(e, event_fields(e, PRODUCT)) for e in batch])
    profile = store.get("s1", now=1_000 * DAY)
    assert profile.share("size", "M") == pytest.approx(8 / 10)
    assert profile.share("brand", "Acme") == 1.0 and profile.share("brand", "Other") == 0.0
    assert profile.share("price", "128-256", "US") == 1.0 and profile.share("price", "128-256", "IN") == 0.0
    assert profile.kinds() == ["brand", "size", "price"]
    assert profile.to_json()["sizes"] == {"M": 8.0, "S": 2.0}


def test_events_are_capped_newest_first_and_erasure_removes_everything(store):
    events = [_event(at=(1_000 + i) * DAY, product=f"p{i}") for i in range(7)]
    store.add([(e, event_fields(e, PRODUCT)) for e in events])
    kept = store.events("s1")
    assert [e["product_id"] for e in kept] == ["p6", "p5", "p4", "p3", "p2"]
    assert store.get("s2") is None and store.events("s2") == []

    assert store.delete("s1") is True
    assert store.get("s1") is None and store.events("s1") == []
    assert store.delete("s1") is False


def test_redis_keys_expire_after_the_last_event():
    prefix = f"looksync-test:{uuid.uuid4().hex}"
    s = RedisProfileStore(REDIS_URL, half_life_s=30 * DAY, ttl_s=120, max_events=5, prefix=prefix)
    try:
        e = _event()
        s.add([(e, event_fields(e, PRODUCT))])
        ttls = [s.client.ttl(key) for key in s._keys("s1")]
        assert all(0 < ttl <= 120 for ttl in ttls)
    finally:
        s.client.delete(*s._keys("s1"))


def test_the_boost_is_bounded_and_only_reorders():
    store = MemoryProfileStore(half_life_s=30 * DAY, ttl_s=3600, max_events=50)
    liked = {"brand": "Liked", "price": 40.0, "market": "US", "sizes": ["M"], "in_stock": True}
    store.add([(e, event_fields(e, liked)) for e in [_event(size="M"), _event(size="M", kind="add_to_cart")]])
    profile = store.get("s1", now=1_000 * DAY)
    boost, parts = preference_boost(profile, liked, 0.05)
    assert parts == {"brand": 1.0, "size": 1.0, "price": 1.0} and boost == pytest.approx(0.05)
    assert preference_boost(profile, {**liked, "in_stock": False}, 0.05)[1]["size"] == 0.0  # no size out of stock

    results = [
        {"product_id": "a", "score": 0.90, "brand": "Other", "price": 300.0, "market": "US", "sizes": ["S"]},
        {"product_id": "b", "score": 0.87, **{k: v for k, v in liked.items()}},
        {"product_id": "c", "score": 0.60, **{k: v for k, v in liked.items()}},
    ]
    personalise(results, profile, 0.05)
    assert [p["product_id"] for p in results] == ["b", "a", "c"]  # 0.87 + 0.05 passes 0.90; 0.60 + 0.05 does not
    assert [p["preference_boost"] for p in results] == pytest.approx([0.05, 0.0, 0.05])


def test_price_bands():
    assert price_band(0.5) == "0-1" and price_band(1) == "1-2" and price_band(150) == "128-256" and price_band(256) == "256-512"
