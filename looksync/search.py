"""The online look search pipeline (no Flask here; the service's handlers call these functions).

look image -> per-layer queries (local CLIP zero-shot generator; the LLM generator comes with the
service issue) -> CLIP text embedding (cached per model id) -> filtered kNN per layer on the live
index -> near-duplicate removal (same image) -> per-layer ranked products, with stage timings and
an honest ``degraded`` list.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from looksync.cache import Cache, CacheUnavailable, open_cache
from looksync.index import CatalogIndex, Hit, SearchFilters
from looksync.querygen import LocalQueryGenerator, QueryGenerator
from looksync.settings import Settings
from looksync.taxonomy import Taxonomy, get_taxonomy

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder

log = logging.getLogger(__name__)

MAX_K = 100


class InvalidRequest(ValueError):
    """The caller asked for something invalid (unknown market, layer, bad k...)."""


class NotReady(RuntimeError):
    """The service cannot answer yet (no live index, or the index was built with another model)."""


@dataclass
class LookSearchRequest:
    market: str | None = None
    gender: str | None = None
    layers: list[str] | None = None
    k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)

    def validate(self, taxonomy: Taxonomy) -> None:
        if self.market is not None and self.market not in taxonomy.markets:
            raise InvalidRequest(f"market {self.market!r} is not one of {', '.join(taxonomy.markets)}")
        if self.gender is not None and self.gender not in taxonomy.genders:
            raise InvalidRequest(f"gender {self.gender!r} is not one of {', '.join(taxonomy.genders)}")
        unknown = [layer for layer in self.layers or [] if layer not in taxonomy.layers]
        if unknown:
            raise InvalidRequest(f"unknown layer(s) {unknown}; known: {', '.join(taxonomy.layers)}")
        if self.layers is not None and not self.layers:
            raise InvalidRequest("layers, when given, must name at least one layer")
        if not 1 <= self.k <= MAX_K:
            raise InvalidRequest(f"k must be between 1 and {MAX_K}, got {self.k}")
        f = self.filters
        if f.price_min is not None and f.price_max is not None and f.price_min > f.price_max:
            raise InvalidRequest(f"price_min {f.price_min} is above price_max {f.price_max}")


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
        "market": p.get("market"),
        "price": p.get("price"),
        "currency": p.get("currency"),
        "in_stock": p.get("in_stock"),
        "image_url": (p.get("image_urls") or [None])[0],
        "product_url": p.get("product_url"),
    }


def drop_near_duplicates(hits: list[Hit]) -> list[Hit]:
    """Keep the best-scoring hit of each image (hits arrive best first)."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        key = hit.product.get("image_hash") or hit.product_id
        if key in seen:
            continue
        seen.add(key)
        kept.append(hit)
    return kept


class SearchEngine:
    """Shared, per-process resources for the online path: encoder, zero-shot heads, index, cache."""

    def __init__(
        self,
        settings: Settings,
        encoder: ClipEncoder,
        index: CatalogIndex,
        cache: Cache,
        query_generator: QueryGenerator | None = None,
        taxonomy: Taxonomy | None = None,
    ):
        from embeddings.zeroshot import ZeroShot

        self.settings = settings
        self.encoder = encoder
        self.index = index
        self.cache = cache
        self.taxonomy = taxonomy or get_taxonomy()
        self.query_generator = query_generator or LocalQueryGenerator(encoder, ZeroShot(encoder, self.taxonomy), self.taxonomy)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchEngine:
        from embeddings import load_encoder_from_settings
        from looksync.index.factory import open_index

        return cls(settings, load_encoder_from_settings(settings), open_index(settings), open_cache(settings))

    def check_ready(self) -> str:
        """The live version name, or NotReady saying why the service cannot answer."""
        version = self.index.live_version()
        if version is None:
            raise NotReady("no live index version: run `looksync index build` after ingesting feeds")
        model_id = self.index.live_model_id()
        if model_id != self.encoder.model_id:
            raise NotReady(f"live index {version} holds vectors of {model_id}, but the service loaded {self.encoder.model_id}")
        return version

    def embed_text(self, text: str, degraded: list[str]) -> np.ndarray:
        key = "textvec:" + hashlib.sha1(f"{self.encoder.model_id}\x00{text}".encode()).hexdigest()
        try:
            cached = self.cache.get(key)
        except CacheUnavailable as exc:
            cached = None
            _note(degraded, f"cache_unavailable: {exc}")
        if cached is not None:
            return np.frombuffer(cached, dtype=np.float32)
        vector = self.encoder.encode_texts([text])[0].astype(np.float32)
        try:
            self.cache.set(key, vector.tobytes())
        except CacheUnavailable as exc:
            _note(degraded, f"cache_unavailable: {exc}")
        return vector

    def search_look(self, look: Image, request: LookSearchRequest) -> dict[str, Any]:
        request.validate(self.taxonomy)
        version = self.check_ready()
        timer = Timer()
        degraded: list[str] = []
        with timer.stage("query_generation"):
            generated = self.query_generator.generate(look, layers=request.layers, gender=request.gender)
        gender = request.gender or generated.gender
        results = []
        for layer_query in generated.layers:
            with timer.stage("text_embedding"):
                vector = self.embed_text(layer_query.query, degraded)
            filters = replace(
                request.filters,
                layers=[layer_query.layer],
                market=request.market or request.filters.market,
                genders=[gender, "unisex"] if gender and gender != "unisex" else request.filters.genders,
            )
            gender_filter = "requested" if request.gender else "inferred"
            with timer.stage("knn"):
                hits = self.index.search(vector, k=request.k * 2, filters=filters, num_candidates=request.k * 10)
                if not request.gender and filters.genders and len(hits) < request.k:
                    # an inferred gender is a preference, not the caller's constraint: widen rather than
                    # return a short list
                    hits = self.index.search(
                        vector, k=request.k * 2, filters=replace(filters, genders=None), num_candidates=request.k * 10
                    )
                    gender_filter = "relaxed"
            with timer.stage("dedup"):
                hits = drop_near_duplicates(hits)[: request.k]
            results.append(
                {
                    "layer": layer_query.layer,
                    "query": layer_query.query,
                    "query_source": generated.source,
                    "attributes": layer_query.attributes,
                    "region": list(layer_query.box) if layer_query.box else None,
                    "gender_filter": gender_filter,
                    "products": [product_summary(h) for h in hits],
                }
            )
        return {
            "index_version": version,
            "model_id": self.encoder.model_id,
            "gender": gender,
            "market": request.market,
            "layers": results,
            "rerank": "off",  # rerankers (LLM, crop cosine) arrive with the service issue
            "timings_ms": {k: round(v, 2) for k, v in timer.timings_ms.items()},
            "degraded": degraded,
        }


def _note(degraded: list[str], message: str) -> None:
    if message not in degraded:
        log.warning("degraded: %s", message)
        degraded.append(message)
