"""Caches: the in-process default and real Redis (127.0.0.1:6379), including Redis being down."""

from __future__ import annotations

import time
import uuid

import pytest

from looksync.search.cache import CacheUnavailable, LocalFirstCache, MemoryCache, RedisCache, open_cache
from looksync.settings import load_settings

REDIS_URL = "redis://127.0.0.1:6379/6"


def test_memory_cache_lru_and_ttl():
    cache = MemoryCache(max_items=2, ttl_s=3600)
    cache.set("a", b"1")
    cache.set("b", b"2")
    assert cache.get("a") == b"1"  # touch a: b is now the oldest
    cache.set("c", b"3")
    assert cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"
    cache.set("short", b"x", ttl_s=1)
    time.sleep(1.05)
    assert cache.get("short") is None


def test_open_cache_follows_configuration():
    assert isinstance(open_cache(load_settings()), MemoryCache)
    with_redis = open_cache(load_settings(redis_url=REDIS_URL))
    assert isinstance(with_redis, LocalFirstCache) and isinstance(with_redis.remote, RedisCache)
    assert with_redis.client is with_redis.remote.client  # the single-flight lock uses the same server
    assert isinstance(open_cache(load_settings(redis_url=REDIS_URL, cache_local_items=0)), RedisCache)


def test_redis_cache_round_trip_with_ttl():
    cache = RedisCache(REDIS_URL, ttl_s=60, prefix=f"test-{uuid.uuid4().hex}:")
    assert cache.get("k") is None
    cache.set("k", b"\x00vector-bytes")
    assert cache.get("k") == b"\x00vector-bytes"
    ttl = cache._client.ttl(cache.prefix + "k")
    assert 0 < ttl <= 60


def test_redis_down_raises_cache_unavailable():
    cache = RedisCache("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(CacheUnavailable):
        cache.get("k")
    with pytest.raises(CacheUnavailable):
        cache.set("k", b"v")


def test_local_first_serves_repeats_without_redis_and_misses_still_say_unavailable():
    prefix = f"test-{uuid.uuid4().hex}:"
    shared = RedisCache(REDIS_URL, ttl_s=60, prefix=prefix)
    worker = LocalFirstCache(shared, max_items=10, local_ttl_s=60)
    worker.set("seen", b"answer")
    assert shared.get("seen") == b"answer"  # written through to Redis
    other = LocalFirstCache(RedisCache(REDIS_URL, ttl_s=60, prefix=prefix))
    assert other.get("seen") == b"answer" and other.local.get("seen") == b"answer"  # a Redis hit is kept locally

    worker.remote = RedisCache("redis://127.0.0.1:1/0", prefix=prefix)  # Redis goes away
    assert worker.get("seen") == b"answer"  # a repeat: served from the worker, no call
    with pytest.raises(CacheUnavailable):
        worker.get("never-seen")  # a miss still reports the outage, so the answer says so


def test_local_entries_expire_before_the_shared_ones():
    shared = MemoryCache(ttl_s=3600)
    cache = LocalFirstCache(shared, max_items=10, local_ttl_s=1)
    cache.set("k", b"v1", ttl_s=900)
    shared.set("k", b"v2")  # another worker replaced it
    assert cache.get("k") == b"v1"
    time.sleep(1.05)
    assert cache.get("k") == b"v2"  # at most local_ttl_s stale
