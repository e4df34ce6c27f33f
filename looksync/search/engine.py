"""The online search pipeline (no Flask here; the service's handlers call these functions).

Look search: cached whole response (key: look image hash + parameters + live index version + model
id) or: per-layer queries (vision LLM, falling back to the local CLIP zero-shot generator) -> CLIP
text embedding (cached per model id) -> filtered kNN per layer on the live index -> near-duplicate
removal -> rerank (LLM listwise | crop-embedding cosine) -> per-layer ranked products, with stage
timings and an honest ``degraded`` list. Also text / image / image+text search and
product-to-product similarity on the same filters.

``SearchEngine`` is put together from one module per concern, each below the one that uses it:
``requests`` (request types, validation, the errors), ``results`` (timings, product cards, one card per
item), ``engine_base`` (the shared state, readiness, cache reads and writes), ``engine_text`` (text
vectors and the vocabulary precompute), ``engine_knn`` (kNN with the gender preference, best-of),
``engine_look`` (the look search flow), ``engine_answers`` (the cached-answer path), ``engine_products``
(text / image search, products, similar) and ``engine_shoppers``. This module holds the class and its
construction from settings, and keeps every name callers import from it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from looksync.catalog.groups import ProductGroups
from looksync.catalog.taxonomy import Taxonomy, get_taxonomy
from looksync.index import CatalogIndex
from looksync.search.cache import Cache, TextVectorTable, open_cache
from looksync.search.engine_answers import CachedLookAnswer, LookAnswersMixin
from looksync.search.engine_base import QueryMirror, SearchEvents
from looksync.search.engine_products import ProductSearchMixin
from looksync.search.engine_shoppers import ShoppersMixin
from looksync.search.engine_text import CLOSE_TIMEOUT_S
from looksync.search.llm import LLMClient
from looksync.search.querygen import LLMQueryGenerator, LocalQueryGenerator, QueryGenerator
from looksync.search.region_finders import make_region_finder
from looksync.search.regions import RegionFinder
from looksync.search.requests import (
    MAX_BUDGET,
    MAX_K,
    InvalidRequest,
    LookSearchRequest,
    NotFound,
    NotReady,
    OutfitRequest,
    SearchRequest,
    Unsupported,
)
from looksync.search.rerank import Reranker
from looksync.search.results import Timer, drop_near_duplicates, product_summary
from looksync.search.singleflight import SingleFlight
from looksync.settings import Settings

if TYPE_CHECKING:
    from embeddings import ClipEncoder
    from embeddings.zeroshot import ZeroShot

__all__ = [
    "CLOSE_TIMEOUT_S",
    "MAX_BUDGET",
    "MAX_K",
    "CachedLookAnswer",
    "InvalidRequest",
    "LookSearchRequest",
    "NotFound",
    "NotReady",
    "OutfitRequest",
    "SearchEngine",
    "SearchEvents",
    "SearchRequest",
    "Timer",
    "Unsupported",
    "drop_near_duplicates",
    "product_summary",
]


class SearchEngine(LookAnswersMixin, ProductSearchMixin, ShoppersMixin):
    """Shared, per-process resources for the online path: encoder, zero-shot heads, index, cache,
    query generator (LLM with local fallback, or local), region finder and reranker."""

    def __init__(
        self,
        settings: Settings,
        encoder: ClipEncoder,
        index: CatalogIndex,
        cache: Cache,
        query_generator: QueryGenerator | None = None,
        taxonomy: Taxonomy | None = None,
        llm: LLMClient | None = None,
        region_finder: RegionFinder | None = None,
        events: SearchEvents | None = None,
        zeroshot: ZeroShot | None = None,
    ):
        from embeddings.zeroshot import ZeroShot

        self.settings = settings
        self.encoder = encoder
        self.index = index
        self.cache = cache
        # one computation per look cache key at a time (across workers when the cache is Redis)
        self.flights = SingleFlight(
            redis_client=getattr(cache, "client", None), timeout_s=settings.look_flight_timeout_s,
            prefix=getattr(cache, "prefix", "looksync:") + "flight:",
        )  # fmt: skip
        self.taxonomy = taxonomy or get_taxonomy()
        self.llm = llm
        self.events = events or SearchEvents()
        self.region_finder = region_finder or make_region_finder(
            settings.region_finder, encoder, lambda texts: self.embed_texts(texts, []), settings=settings
        )
        # the local generator reads layers where the region finder places them (layout slots, pose
        # boxes); a finder without ``place`` (clip_boxes) leaves every layer to the CLIP box search
        heads = None
        if settings.detection_heads is not None:
            from looksync.search.detection import DetectionHeads

            heads = DetectionHeads.load(settings.detection_heads)
            heads.check(encoder.model_id, getattr(self.region_finder, "name", settings.region_finder))
        self.local_query_generator = LocalQueryGenerator(
            encoder, zeroshot or ZeroShot(encoder, self.taxonomy), self.taxonomy, layout=False,
            placer=getattr(self.region_finder, "place", None), heads=heads,
            gender_min_confidence=settings.look_gender_min_confidence,
        )  # fmt: skip
        if query_generator is None:
            query_generator = (
                LLMQueryGenerator(llm, self.local_query_generator, self.taxonomy) if llm else self.local_query_generator
            )
        self.query_generator = query_generator
        self.reranker = Reranker(
            encoder,
            index,
            self.region_finder,
            llm=llm,
            llm_budget_s=settings.rerank_llm_budget_s,
            text_weight=settings.rerank_text_weight,
            dedup_cosine=settings.search_dedup_cosine,
        )
        self._checked_versions: dict[str, str | None] = {}  # version -> its model id (immutable per version)
        self.text_table: TextVectorTable | None = None  # the local vocabulary's text vectors, once computed
        self.text_vocab_state = "off"  # off | building | ready | failed
        self._text_vocab_stop = threading.Event()
        self._profiles = None  # the shopper profile store, opened on first use
        self.groups = ProductGroups(settings, refresh_s=settings.groups_refresh_s)  # one card per item
        self._text_vocab_thread: threading.Thread | None = None
        self.mirror: QueryMirror | None = None  # mirrors a share of answered queries to the shadow version

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchEngine:
        from embeddings import load_encoder_from_settings
        from looksync.index.factory import open_index

        engine = cls(
            settings,
            load_encoder_from_settings(settings),
            open_index(settings),
            open_cache(settings),
            llm=LLMClient.from_settings(settings),
        )
        engine.precompute_text_vocabulary(settings.text_vocab_precompute)
        return engine
