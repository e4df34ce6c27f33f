"""Caches for the online path: an in-process LRU with TTL (default) or Redis when configured.

Values are bytes; callers (de)serialise. A Redis failure never fails a request: the cache reports
itself unavailable and the caller records a degraded note. ``TextVectorTable``: text vectors
precomputed per model for a known vocabulary (the local query generator's), saved next to the data.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder

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

    @property
    def client(self):
        """The Redis client (the look search's single-flight lock uses the same server)."""
        return self._client

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


class LocalFirstCache:
    """A small in-process LRU in front of a shared cache (Redis): hits that repeat within a worker cost
    no network call, and they keep being served while Redis is down (the soak: without it, every
    repeated look was computed again during an outage). Entries live at most ``local_ttl_s`` in the
    worker, which bounds how long one worker can serve an answer another has replaced (keys carry the
    index version, so a swap never serves an old version's answer)."""

    def __init__(self, remote: Cache, max_items: int = 1024, local_ttl_s: int = 60):
        self.remote = remote
        self.local = MemoryCache(max_items=max_items, ttl_s=local_ttl_s)
        self.local_ttl_s = local_ttl_s
        self.name = f"{remote.name}+local"

    @property
    def client(self):
        return getattr(self.remote, "client", None)

    @property
    def prefix(self) -> str:
        return getattr(self.remote, "prefix", "looksync:")

    def get(self, key: str) -> bytes | None:
        value = self.local.get(key)
        if value is not None:
            return value
        value = self.remote.get(key)  # CacheUnavailable propagates: the caller notes it
        if value is not None:
            self.local.set(key, value)
        return value

    def set(self, key: str, value: bytes, ttl_s: int | None = None) -> None:
        local_ttl = self.local_ttl_s if not ttl_s else min(ttl_s, self.local_ttl_s)
        self.local.set(key, value, ttl_s=local_ttl)
        self.remote.set(key, value, ttl_s=ttl_s)


def open_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        remote = RedisCache(settings.redis_url, ttl_s=settings.cache_ttl_s)
        if settings.cache_local_items > 0:
            return LocalFirstCache(remote, settings.cache_local_items, settings.cache_local_ttl_s)
        return remote
    return MemoryCache(ttl_s=settings.cache_ttl_s)


class TextVectorTable:
    """Text vectors precomputed for one model (``model_id``), looked up by exact text.

    The local query generator's queries come from a finite vocabulary
    (``looksync.search.querygen.local_vocabulary``), so the service can embed them all once per model and
    answer their text-embedding stage with a lookup. A table never answers for another model id."""

    def __init__(self, model_id: str, texts: list[str], vectors: np.ndarray):
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        self.model_id = model_id
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._rows = {text: i for i, text in enumerate(texts)}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, model_id: str, text: str) -> np.ndarray | None:
        if model_id != self.model_id:
            return None
        row = self._rows.get(text)
        return None if row is None else self.vectors[row]

    @classmethod
    def build(
        cls, encoder: ClipEncoder, texts: list[str], batch_size: int = 64, stop: threading.Event | None = None
    ) -> TextVectorTable | None:
        """Embed ``texts`` in batches; None when ``stop`` is set before the end."""
        parts = []
        for start in range(0, len(texts), batch_size):
            if stop is not None and stop.is_set():
                return None
            parts.append(encoder.encode_texts(texts[start : start + batch_size], batch_size=batch_size))
        vectors = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)
        return cls(encoder.model_id, list(texts), vectors)

    @staticmethod
    def path_for(directory: Path, model_id: str) -> Path:
        return directory / f"textvec-{hashlib.sha256(model_id.encode()).hexdigest()[:16]}.npz"

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(directory, self.model_id)
        tmp = path.with_name(path.name + ".tmp.npz")
        texts = sorted(self._rows, key=self._rows.get)
        np.savez(tmp, model_id=np.array(self.model_id), texts=np.array(texts), vectors=self.vectors)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: Path, model_id: str, texts: list[str]) -> TextVectorTable | None:
        """The saved table of ``model_id`` when it holds exactly ``texts``; None otherwise (no file,
        another model, another vocabulary, unreadable)."""
        path = cls.path_for(directory, model_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                saved_model, saved_texts, vectors = str(data["model_id"]), [str(t) for t in data["texts"]], data["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("text vector table %s unreadable, recomputing: %s", path, exc)
            return None
        if saved_model != model_id or saved_texts != list(texts):
            return None
        return cls(model_id, saved_texts, vectors)
