"""Caches for the online path: an in-process LRU with TTL (default) or Redis when configured.

Values are bytes; callers (de)serialise. A Redis failure never fails a request: the cache reports
itself unavailable and the caller records a degraded note.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

from looksync.settings import Settings

log = logging.getLogger(__name__)


class Cache(Protocol):
    name: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: int | None = None) -> None: ...


class CacheUnavailable(RuntimeError):
    """The cache backend could not be reached; the caller goes on without it."""


class MemoryCache:
    name = "memory"

    def __init__(self, max_items: int = 10_000, ttl_s: int = 3600):
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires and expires < time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: int | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        with self._lock:
            self._items[key] = (time.monotonic() + ttl if ttl else 0.0, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


class RedisCache:
    name = "redis"

    def __init__(self, url: str, ttl_s: int = 3600, prefix: str = "looksync:"):
        import redis

        self.ttl_s = ttl_s
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)

    def get(self, key: str) -> bytes | None:
        import redis

        try:
            return self._client.get(self.prefix + key)
        except redis.RedisError as exc:
            raise CacheUnavailable(f"redis get failed: {exc}") from exc

    def set(self, key: str, value: bytes, ttl_s: int | None = None) -> None:
        import redis

        ttl = self.ttl_s if ttl_s is None else ttl_s
        try:
            self._client.set(self.prefix + key, value, ex=ttl or None)
        except redis.RedisError as exc:
            raise CacheUnavailable(f"redis set failed: {exc}") from exc


def open_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, ttl_s=settings.cache_ttl_s)
    return MemoryCache(ttl_s=settings.cache_ttl_s)
