"""The cached-answer path of a look search: the look cache key (look image hash, parameters, live index
version, model id), a hit returned as the stored bytes (``CachedLookAnswer``, parsed only when a caller
needs the dict), identical looks asked at once computed once (single flight, across workers through
Redis), and the answer offered to the shadow mirror when there is one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from looksync.search.cache import CacheUnavailable
from looksync.search.engine_look import LookFlowMixin
from looksync.search.requests import LookSearchRequest
from looksync.search.results import Timer

if TYPE_CHECKING:
    from PIL.Image import Image


@dataclass(frozen=True)
class CachedLookAnswer:
    """A look answer found in the response cache, not parsed yet: ``data`` is the answer as it was stored
    (``cache: "miss"``, empty ``timings_ms``, no ``degraded`` note: degraded answers are never stored),
    ``timings_ms`` this request's. ``response()`` is the answer a hit returns."""

    key: str
    data: bytes
    timings_ms: dict[str, float]

    def response(self) -> dict[str, Any]:
        response = msgspec.json.decode(self.data)  # 2x json.loads on a 45 kB answer
        response.update(cache="hit", timings_ms=dict(self.timings_ms))
        return response


class LookAnswersMixin(LookFlowMixin):
    """``search_look``, ``look_answer`` and ``look_cache_key`` of ``SearchEngine``."""

    def look_cache_key(self, look_sha256: str, request: LookSearchRequest, version: str) -> str:
        params = json.dumps(request.cache_params(), sort_keys=True, default=str)
        raw = f"{look_sha256}\x00{params}\x00{version}\x00{self.encoder.model_id}"
        return "look:" + hashlib.sha256(raw.encode()).hexdigest()

    def search_look(self, look: Image | Callable[[], Image], request: LookSearchRequest,
                    look_sha256: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Per-layer products for a look. ``look_sha256`` (of the uploaded bytes) enables the response
        cache; answers with a degraded note are not cached, so a recovered dependency is used again.
        ``look``: the image, or a function that decodes it, called only when the cache cannot answer
        (a hit never decodes the pixels). With a shadow mirror, the answer may be offered to it (a
        non-blocking put; the shadow decodes a deferred look in its own thread)."""
        answer = self.look_answer(look, request, look_sha256)
        return answer.response() if isinstance(answer, CachedLookAnswer) else answer

    def look_answer(self, look: Image | Callable[[], Image], request: LookSearchRequest,
                    look_sha256: str | None = None) -> dict[str, Any] | CachedLookAnswer:  # fmt: skip
        """``search_look``, with a cache hit left as the stored bytes (``CachedLookAnswer``) for a caller
        that can send them on without parsing them (the service). With a shadow mirror every answer is
        parsed, since the mirror compares rankings."""
        answer = self._search_look(look, request, look_sha256)
        if self.mirror is not None:
            response = answer.response() if isinstance(answer, CachedLookAnswer) else answer
            self.mirror.offer_look(look, request, response)
            return response
        return answer

    def _search_look(self, look: Image | Callable[[], Image], request: LookSearchRequest,
                     look_sha256: str | None) -> dict[str, Any] | CachedLookAnswer:  # fmt: skip
        request.validate(self.taxonomy)
        version = self.check_ready()
        timer = Timer()
        degraded: list[str] = []

        def image() -> Image:
            return look() if callable(look) else look

        if not (look_sha256 and self.settings.look_cache_ttl_s > 0):
            return self._compute_look(image(), request, version, None, timer, degraded)
        key = self.look_cache_key(look_sha256, request, version)
        with timer.stage("cache"):
            cached = self._cache_get("look", key, degraded)
        if cached is not None:
            return CachedLookAnswer(key, cached, {k: round(v, 2) for k, v in timer.timings_ms.items()})
        # identical looks asked at the same time: one computes, the others wait for its answer (in this
        # process; across workers through a Redis lock, unless the cache was just found down)
        started = time.perf_counter()
        response, role = self.flights.run(
            key,
            lambda: self._compute_look(image(), request, version, key, timer, degraded),
            lambda: self._look_from_cache(key),
            across_workers=not degraded,
        )
        if role != "leader":
            timer.timings_ms["single_flight_wait"] = (time.perf_counter() - started) * 1000
            if role == "waited":
                self.events.cache("look", "hit")
                response["cache"] = "hit"
            response["timings_ms"] = {k: round(v, 2) for k, v in timer.timings_ms.items()}
        return response

    def _look_from_cache(self, key: str) -> dict[str, Any] | None:
        try:
            cached = self.cache.get(key)
        except CacheUnavailable:
            return None
        return msgspec.json.decode(cached) if cached is not None else None
