"""What the parts of ``SearchEngine`` build on: the engine's shared resources (declared here, made in
``engine.SearchEngine.__init__``), readiness (``check_ready``: a live index of the loaded model), the cache
reads and writes that turn a cache failure into a ``degraded`` note, the product groups' refresh, the
metric hooks (``SearchEvents``) and what a shadow mirror must offer (``QueryMirror``). The logger keeps
its name, ``looksync.search.engine``, for every part.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from looksync.catalog.groups import GroupsUnavailable, ProductGroups
from looksync.catalog.taxonomy import Taxonomy
from looksync.index import CatalogIndex
from looksync.search.cache import Cache, CacheUnavailable, TextVectorTable
from looksync.search.llm import LLMClient
from looksync.search.querygen import LocalQueryGenerator, QueryGenerator
from looksync.search.regions import RegionFinder
from looksync.search.requests import LookSearchRequest, NotReady, SearchRequest
from looksync.search.rerank import Reranker
from looksync.search.singleflight import SingleFlight
from looksync.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder

log = logging.getLogger("looksync.search.engine")


class SearchEvents:
    """Hooks the service uses for metrics; the defaults do nothing."""

    def cache(self, cache: str, result: str) -> None:  # result: hit | miss | error
        pass


class QueryMirror(Protocol):
    """Where the engine offers its answers (``shadow.ShadowMirror``): a non-blocking put, True if taken."""

    def offer_look(self, image: Image | Callable[[], Image], request: LookSearchRequest, response: dict[str, Any]) -> bool: ...

    def offer_search(self, request: SearchRequest, image: Image | None, response: dict[str, Any]) -> bool: ...


class EngineBase:
    """The state every part of ``SearchEngine`` reads, and the helpers they share."""

    settings: Settings
    encoder: ClipEncoder
    index: CatalogIndex
    cache: Cache
    flights: SingleFlight
    taxonomy: Taxonomy
    llm: LLMClient | None
    events: SearchEvents
    region_finder: RegionFinder
    local_query_generator: LocalQueryGenerator
    query_generator: QueryGenerator
    reranker: Reranker
    _checked_versions: dict[str, str | None]
    text_table: TextVectorTable | None
    text_vocab_state: str
    _text_vocab_stop: threading.Event
    _text_vocab_thread: threading.Thread | None
    _profiles: Any
    groups: ProductGroups
    mirror: QueryMirror | None

    def check_ready(self) -> str:
        """The live version name, or NotReady saying why the service cannot answer."""
        version = self.index.live_version()
        if version is None:
            raise NotReady("no live index version: run `looksync index build` after ingesting feeds")
        if version not in self._checked_versions:
            self._checked_versions[version] = self.index.live_model_id()
        model_id = self._checked_versions[version]
        if model_id != self.encoder.model_id:
            raise NotReady(f"live index {version} holds vectors of {model_id}, but the service loaded {self.encoder.model_id}")
        return version

    def _cache_get(self, cache_name: str, key: str, degraded: list[str]) -> bytes | None:
        try:
            value = self.cache.get(key)
        except CacheUnavailable as exc:
            self.events.cache(cache_name, "error")
            _note(degraded, f"cache_unavailable: {exc}")
            return None
        self.events.cache(cache_name, "miss" if value is None else "hit")
        return value

    def _cache_set(self, key: str, value: bytes, degraded: list[str], ttl_s: int | None = None) -> None:
        try:
            self.cache.set(key, value, ttl_s=ttl_s)
        except CacheUnavailable as exc:
            _note(degraded, f"cache_unavailable: {exc}")

    def _load_groups(self, degraded: list[str]) -> None:
        """Fresh product groups, or the last ones read with a degraded note (results stay correct, only
        not collapsed by group)."""
        try:
            self.groups.load()
        except GroupsUnavailable as exc:
            _note(degraded, f"groups_unavailable: {exc}")


def _note(degraded: list[str], message: str) -> None:
    if message not in degraded:
        log.warning("degraded: %s", message)
        degraded.append(message)
