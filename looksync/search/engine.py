"""The online search pipeline (no Flask here; the service's handlers call these functions).

Look search: cached whole response (key: look image hash + parameters + live index version + model
id) or: per-layer queries (vision LLM, falling back to the local CLIP zero-shot generator) -> CLIP
text embedding (cached per model id) -> filtered kNN per layer on the live index -> near-duplicate
removal -> rerank (LLM listwise | crop-embedding cosine) -> per-layer ranked products, with stage
timings and an honest ``degraded`` list. Also text / image / image+text search and
product-to-product similarity on the same filters.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from looksync.catalog.groups import GroupsUnavailable, ProductGroups
from looksync.catalog.taxonomy import Taxonomy, get_taxonomy
from looksync.index import CatalogIndex, Hit, SearchFilters
from looksync.search.cache import Cache, CacheUnavailable, TextVectorTable, open_cache
from looksync.search.explain import explain_match
from looksync.search.llm import LLMClient
from looksync.search.offers import product_group, with_group_ids, with_offers
from looksync.search.outfit import assemble_outfit
from looksync.search.querygen import LLMQueryGenerator, LocalQueryGenerator, QueryGenerator, local_vocabulary
from looksync.search.region_finders import make_region_finder
from looksync.search.regions import RegionFinder
from looksync.search.rerank import RERANK_MODES, LayerCandidates, Reranker
from looksync.search.singleflight import SingleFlight
from looksync.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder
    from embeddings.zeroshot import ZeroShot
    from looksync.search.shadow import ShadowMirror
    from looksync.search.shoppers import ShopperEvent

log = logging.getLogger(__name__)

MAX_K = 100
CLOSE_TIMEOUT_S = 10.0  # how long close() waits for the background build to reach the end of its batch


class InvalidRequest(ValueError):
    """The caller asked for something invalid (unknown market, layer, bad k...); ``field`` names the
    request field at fault when one is."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotReady(RuntimeError):
    """The service cannot answer yet (no live index, or the index was built with another model)."""


class NotFound(LookupError):
    """No such product in the live index."""


class Unsupported(RuntimeError):
    """The configured backend cannot do this (e.g. return stored vectors for /similar)."""


MAX_BUDGET = 1e9  # in the market's currency: far above any outfit, low enough for exact minor-unit sums


@dataclass(frozen=True)
class OutfitRequest:
    """``outfit`` of a look search: assemble one product per layer whose total is within ``budget``."""

    budget: float
    currency: str


@dataclass
class LookSearchRequest:
    market: str | None = None
    gender: str | None = None
    layers: list[str] | None = None
    k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)
    rerank: str = "auto"
    outfit: OutfitRequest | None = None

    def cache_params(self) -> dict[str, Any]:
        # the filters' fields are flat (strings, numbers, lists of strings): a shallow copy serialises as
        # asdict's deep one does, at a tenth of its cost on every cache lookup
        return {"market": self.market, "gender": self.gender, "layers": self.layers, "k": self.k,
                "filters": dict(vars(self.filters)), "rerank": self.rerank,
                "outfit": asdict(self.outfit) if self.outfit else None}

    def validate(self, taxonomy: Taxonomy) -> None:
        if self.rerank not in RERANK_MODES:
            raise InvalidRequest(f"rerank {self.rerank!r} is not one of {', '.join(RERANK_MODES)}", field="rerank")
        if self.market is not None and self.market not in taxonomy.markets:
            raise InvalidRequest(f"market {self.market!r} is not one of {', '.join(taxonomy.markets)}", field="market")
        if self.gender is not None and self.gender not in taxonomy.genders:
            raise InvalidRequest(f"gender {self.gender!r} is not one of {', '.join(taxonomy.genders)}", field="gender")
        unknown = [layer for layer in self.layers or [] if layer not in taxonomy.layers]
        if unknown:
            raise InvalidRequest(f"unknown layer(s) {unknown}; known: {', '.join(taxonomy.layers)}", field="layers")
        if self.layers is not None and not self.layers:
            raise InvalidRequest("layers, when given, must name at least one layer", field="layers")
        if not 1 <= self.k <= MAX_K:
            raise InvalidRequest(f"k must be between 1 and {MAX_K}, got {self.k}", field="k")
        f = self.filters
        for name in ("price_min", "price_max"):
            value = getattr(f, name)
            # a client's NaN or infinity must never reach the index, which would refuse it as a backend error
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
                raise InvalidRequest(f"{name} must be a finite number, got {value!r}", field=f"filters.{name}")
        if f.price_min is not None and f.price_max is not None and f.price_min > f.price_max:
            raise InvalidRequest(f"price_min {f.price_min} is above price_max {f.price_max}", field="filters.price_min")
        if self.outfit is not None:
            market = self.market or f.market
            if market is None:
                raise InvalidRequest("outfit needs market: prices are compared in the market's currency", field="market")
            currency = taxonomy.currency_of(market)
            if self.outfit.currency != currency:
                raise InvalidRequest(
                    f"outfit.currency {self.outfit.currency!r}: market {market} prices in {currency}", field="outfit.currency"
                )


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
        "colours": p.get("colours"),
        "pattern": p.get("pattern"),
        "market": p.get("market"),
        "price": p.get("price"),
        "currency": p.get("currency"),
        "in_stock": p.get("in_stock"),
        "sizes": p.get("sizes"),
        "image_url": (p.get("image_urls") or [None])[0],
        "product_url": p.get("product_url"),
        "image_hash": p.get("image_hash"),  # names the product's thumbnail (the service adds thumbnail_url)
    }


def drop_near_duplicates(hits: list[Hit], exclude_keys: set[str] | None = None) -> list[Hit]:
    """Keep the best-scoring hit of each product group / image (hits arrive best first): one card per
    item. Near-duplicates by vector cosine are removed by the crop rerank, which has the vectors at hand."""
    seen: set[str] = set(exclude_keys or ())
    kept = []
    for hit in hits:
        keys = {k for k in (hit.product.get("group_id"), hit.product.get("image_hash")) if k} or {hit.product_id}
        if keys & seen:
            continue
        seen |= keys
        kept.append(hit)
    return kept


@dataclass
class SearchRequest:
    """``POST /v1/search``: a text, an image, or an image with a text modifier ("like this, in navy")."""

    text: str | None = None
    market: str | None = None
    gender: str | None = None
    layers: list[str] | None = None
    categories: list[str] | None = None
    k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)

    def validate(self, taxonomy: Taxonomy, has_image: bool) -> None:
        LookSearchRequest(self.market, self.gender, self.layers, self.k, self.filters).validate(taxonomy)
        if not has_image and not (self.text and self.text.strip()):
            raise InvalidRequest("give a text, an image, or both")
        if self.text is not None and len(self.text) > 500:
            raise InvalidRequest(f"text is {len(self.text)} characters; at most 500", field="text")
        unknown = [c for c in self.categories or [] if c not in taxonomy.categories]
        if unknown:
            raise InvalidRequest(f"unknown categor(y/ies) {unknown}; known: {', '.join(taxonomy.categories)}", field="categories")


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


class SearchEvents:
    """Hooks the service uses for metrics; the defaults do nothing."""

    def cache(self, cache: str, result: str) -> None:  # result: hit | miss | error
        pass


class SearchEngine:
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
        self.mirror: ShadowMirror | None = None  # mirrors a share of answered queries to the shadow version

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

    def precompute_text_vocabulary(self, mode: str = "blocking", texts: list[str] | None = None) -> threading.Thread | None:
        """Text vectors for every query the local generator can write, so its text-embedding stage is
        a lookup: loaded from ``text_vocab_dir`` when saved for this model id and vocabulary, else
        computed (``blocking``: now; ``background``: in a daemon thread, requests meanwhile embed as
        usual; ``close()`` stops it, as interpreter exit does) and saved. ``off``: nothing. ``texts``:
        another vocabulary (tests). Returns the background thread, if one was started."""
        if mode == "off":
            return None
        if mode not in ("background", "blocking"):
            raise ValueError(f"text_vocab_precompute {mode!r}: expected off, background or blocking")
        directory = self.settings.text_vocab_dir or self.settings.data_dir / "textvec"
        texts = local_vocabulary(self.taxonomy) if texts is None else texts
        table = TextVectorTable.load(directory, self.encoder.model_id, texts)
        if table is not None:
            self.text_table, self.text_vocab_state = table, "ready"
            return None
        self.text_vocab_state = "building"

        def build() -> None:
            start = time.perf_counter()
            try:
                # batches of the encoder's size: a stop, and a request waiting for the model, waits one batch
                built = TextVectorTable.build(
                    self.encoder, texts, batch_size=self.encoder.batch_size, stop=self._text_vocab_stop
                )
            except Exception:  # a failed precompute leaves the service on per-request embedding
                log.exception("text vocabulary precompute failed; text queries are embedded per request")
                self.text_vocab_state = "failed"
                return
            if built is None:
                self.text_vocab_state = "off"
                return
            self.text_table, self.text_vocab_state = built, "ready"
            log.info("text vocabulary: %d vectors in %.1fs", len(built), time.perf_counter() - start)
            try:
                built.save(directory)
            except OSError as exc:
                log.warning("text vocabulary not saved to %s: %s", directory, exc)

        if mode == "blocking":
            build()
            return None
        thread = threading.Thread(target=build, name="text-vocabulary", daemon=True)
        self._text_vocab_thread = thread
        _engines_to_close.add(self)
        thread.start()
        return thread

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the background text-vocabulary build at the end of its current batch and wait for it (at
        most ``timeout_s``). Runs at interpreter exit for every engine still building, from gunicorn's
        ``worker_exit`` hook, and in tests; calling it again does nothing more."""
        self._text_vocab_stop.set()
        thread = self._text_vocab_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("text vocabulary build still running %.0f s after the stop; exit may abort", timeout_s)
        _engines_to_close.discard(self)

    # ---- readiness and caches -------------------------------------------------------------------

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

    def embed_text(self, text: str, degraded: list[str]) -> np.ndarray:
        return self.embed_texts([text], degraded)[0]

    def embed_texts(self, texts: list[str], degraded: list[str]) -> np.ndarray:
        """len(texts) x dim: from the precomputed vocabulary table (this model's only), else the text
        cache (per model id), else one ``encode_texts`` batch for all the misses (then cached)."""
        model_id = self.encoder.model_id
        out: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        table = self.text_table
        for i, text in enumerate(texts):
            vector = table.get(model_id, text) if table is not None else None
            if vector is not None:
                out[i] = vector
                continue
            if text in missing:
                missing[text].append(i)
                continue
            cached = self._cache_get("text_embedding", _text_key(model_id, text), degraded)
            if cached is not None:
                out[i] = np.frombuffer(cached, dtype=np.float32)
            else:
                missing[text] = [i]
        if missing:
            vectors = self.encoder.encode_texts(list(missing)).astype(np.float32, copy=False)
            for (text, rows), vector in zip(missing.items(), vectors, strict=True):
                for i in rows:
                    out[i] = vector
                self._cache_set(_text_key(model_id, text), vector.tobytes(), degraded)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack(out)  # type: ignore[arg-type]

    def look_cache_key(self, look_sha256: str, request: LookSearchRequest, version: str) -> str:
        params = json.dumps(request.cache_params(), sort_keys=True, default=str)
        raw = f"{look_sha256}\x00{params}\x00{version}\x00{self.encoder.model_id}"
        return "look:" + hashlib.sha256(raw.encode()).hexdigest()

    # ---- look search ----------------------------------------------------------------------------

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

    def _compute_look(self, look: Image, request: LookSearchRequest, version: str, key: str | None, timer: Timer,
                      degraded: list[str]) -> dict[str, Any]:  # fmt: skip
        with timer.stage("query_generation"):
            generated = self.query_generator.generate(look, layers=request.layers, gender=request.gender)
        for stage, ms in generated.timings_ms.items():  # the region finder's steps, out of query generation
            timer.timings_ms[stage] = timer.timings_ms.get(stage, 0.0) + ms
            timer.timings_ms["query_generation"] -= ms
        for note in generated.degraded:
            _note(degraded, note)
        gender = request.gender or generated.gender
        market = request.market or request.filters.market
        self._load_groups(degraded)
        reranking = request.rerank != "off"
        per_k = self.settings.rerank_candidates_per_k if reranking else 2
        candidates, extras = [], []
        with timer.stage("text_embedding"):
            vectors = self.embed_texts([q.query for q in generated.layers], degraded)
        for layer_query, vector in zip(generated.layers, vectors, strict=True):
            queries = [self.look_query_vector(vector, layer_query.crop_vector)]
            if layer_query.alt_crop_vectors is not None and self.settings.look_crop_weight > 0:
                queries += [self.look_query_vector(vector, alt) for alt in layer_query.alt_crop_vectors]
            filters = replace(request.filters, layers=[layer_query.layer], market=request.market or request.filters.market)
            with timer.stage("knn"):
                hits, gender_filter = self._knn_best_of(queries, request.k * per_k, filters, gender, request.gender)
            if gender is None and generated.gender_guess is not None:
                gender_filter = "unsure"  # read, but below look_gender_min_confidence: searched across genders
            with timer.stage("dedup"):
                hits = drop_near_duplicates(with_group_ids(hits, self.groups))
            candidates.append(
                LayerCandidates(
                    layer=layer_query.layer,
                    query=layer_query.query,
                    hits=hits,
                    box=layer_query.box,
                    crop_vector=layer_query.crop_vector,
                    alt_crop_vectors=layer_query.alt_crop_vectors,
                )
            )
            extras.append((layer_query, gender_filter))
        with timer.stage("rerank"):
            method = self.reranker.rerank(look, candidates, request.rerank, version, degraded) if reranking else "off"

        results = []
        for c, (layer_query, gender_filter) in zip(candidates, extras, strict=True):
            products = []
            read = {"category": layer_query.category, **layer_query.attributes}
            for hit in c.hits[: request.k]:
                summary = with_offers(product_summary(hit), self.groups, market)
                rerank_score = c.rerank_scores.get(hit.product_id)
                if rerank_score is not None:
                    summary["rerank_score"] = round(rerank_score, 6)
                summary["match"] = explain_match(
                    read, hit.product, hit.score, c.crop_scores.get(hit.product_id), rerank_score,
                    self.reranker.text_weight if rerank_score is not None else None,
                )  # fmt: skip
                products.append(summary)
            results.append(
                {
                    "layer": c.layer,
                    "query": c.query,
                    "query_source": generated.source,
                    "attributes": layer_query.attributes,
                    "region": list(c.box) if c.box else None,
                    "gender_filter": gender_filter,
                    "products": products,
                }
            )
        if request.outfit is not None:
            with timer.stage("outfit"):
                outfit = self._assemble_outfit(candidates, request)
        response = {
            "index_version": version,
            "model_id": self.encoder.model_id,
            "gender": gender,
            # the gender read from the look when none was requested, how sure, and whether it filtered
            "gender_detected": None if request.gender or generated.gender_guess is None else {
                "gender": generated.gender_guess,
                "confidence": round(float(generated.gender_confidence), 4),
                "used": gender is not None,
            },
            "market": request.market,
            "query_source": generated.source,
            "layers": results,
            "region_source": generated.region_source,
            # layers the region finder found not to be in the look (asked for or detected): no query
            "not_in_look": [{"layer": layer, "reason": reason} for layer, reason in generated.absent.items()],
            "rerank": method,
            **({"outfit": outfit} if request.outfit is not None else {}),
            "cache": ("unavailable" if any(n.startswith("cache_unavailable") for n in degraded) else "miss") if key else "off",
            "timings_ms": {},
            "degraded": degraded,
        }
        if key and not degraded:
            with timer.stage("cache"):
                self._cache_set(key, msgspec.json.encode(response), degraded, ttl_s=self.settings.look_cache_ttl_s)
        response["timings_ms"] = {k: round(v, 2) for k, v in timer.timings_ms.items()}
        return response

    def _assemble_outfit(self, candidates: list[LayerCandidates], request: LookSearchRequest) -> dict[str, Any]:
        """One product per searched layer within the budget, over every layer's candidates (not only the
        top k shown), scored by the crop rerank's score where it gave one, else the kNN score."""
        market = request.market or request.filters.market
        layer_products = []
        for c in candidates:
            products = []
            for hit in c.hits:
                summary = product_summary(hit)
                summary["score"] = round(c.rerank_scores.get(hit.product_id, hit.score), 6)
                products.append(summary)
            layer_products.append((c.layer, products))
        minor_units = self.taxonomy.markets[market].minor_units
        return assemble_outfit(layer_products, request.outfit.budget, request.outfit.currency, minor_units)

    def look_query_vector(self, text_vector: np.ndarray, crop_vector: np.ndarray | None) -> np.ndarray:
        """A layer's kNN query: the text vector, blended with the garment crop's image vector when there
        is one (what the query was read from: it carries the shape, shade and pattern words lose)."""
        w = self.settings.look_crop_weight
        if crop_vector is None or w == 0:
            return text_vector
        blended = (1 - w) * np.asarray(text_vector, dtype=np.float32) + w * np.asarray(crop_vector, dtype=np.float32)
        norm = float(np.linalg.norm(blended))
        return blended / norm if norm > 0 else text_vector

    def _knn_best_of(
        self, vectors: list[np.ndarray], k: int, filters: SearchFilters, gender: str | None, requested_gender: str | None
    ) -> tuple[list[Hit], str]:
        """kNN for each query vector of a layer (one per crop extent), merged: a product keeps its best
        score; the top ``k`` by that score."""
        if len(vectors) == 1:
            return self._knn_with_gender(vectors[0], k, filters, gender, requested_gender)
        best: dict[str, Hit] = {}
        relaxed = []
        for vector in vectors:
            hits, gender_filter = self._knn_with_gender(vector, k, filters, gender, requested_gender)
            relaxed.append(gender_filter)
            for hit in hits:
                if hit.product_id not in best or hit.score > best[hit.product_id].score:
                    best[hit.product_id] = hit
        merged = sorted(best.values(), key=lambda h: h.score, reverse=True)[:k]
        return merged, "relaxed" if "relaxed" in relaxed else relaxed[0]

    def _knn_with_gender(
        self, vector: np.ndarray, k: int, filters: SearchFilters, gender: str | None, requested_gender: str | None
    ) -> tuple[list[Hit], str]:
        if gender and gender != "unisex":
            filters = replace(filters, genders=[gender, "unisex"])
        gender_filter = "requested" if requested_gender else ("inferred" if gender else "none")
        hits = self.index.search(vector, k=k, filters=filters, num_candidates=k * 5)
        if not requested_gender and gender and len(hits) < k:
            # an inferred gender is a preference, not the caller's constraint: widen rather than
            # return a short list
            hits = self.index.search(vector, k=k, filters=replace(filters, genders=None), num_candidates=k * 5)
            gender_filter = "relaxed"
        return hits, gender_filter

    # ---- text / image search, products ----------------------------------------------------------

    def search(self, request: SearchRequest, image: Image | None = None) -> dict[str, Any]:
        """Text, image, or image + text modifier: normalise(image + w * text) as the query vector."""
        request.validate(self.taxonomy, has_image=image is not None)
        version = self.check_ready()
        timer = Timer()
        degraded: list[str] = []
        parts = []
        if image is not None:
            with timer.stage("image_embedding"):
                parts.append(self.encoder.encode_images([image.convert("RGB")])[0])
        if request.text and request.text.strip():
            with timer.stage("text_embedding"):
                text_vector = self.embed_text(" ".join(request.text.split()), degraded)
            parts.append(text_vector * (self.settings.search_modifier_weight if image is not None else 1.0))
        vector = np.sum(parts, axis=0)
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise InvalidRequest("the text modifier cancels the image out; lower search_modifier_weight")
        filters = replace(
            request.filters,
            layers=request.layers or request.filters.layers,
            categories=request.categories or request.filters.categories,
            market=request.market or request.filters.market,
        )
        with timer.stage("knn"):
            hits, gender_filter = self._knn_with_gender(vector / norm, request.k * 2, filters, request.gender, request.gender)
        self._load_groups(degraded)
        with timer.stage("dedup"):
            hits = drop_near_duplicates(with_group_ids(hits, self.groups))[: request.k]
        response = {
            "index_version": version,
            "model_id": self.encoder.model_id,
            "mode": "image+text" if image is not None and request.text else ("image" if image is not None else "text"),
            "text": request.text,
            "products": [with_offers(product_summary(h), self.groups, filters.market) for h in hits],
            "timings_ms": {k: round(v, 2) for k, v in timer.timings_ms.items()},
            "degraded": degraded,
        }
        if self.mirror is not None:
            self.mirror.offer_search(request, image, response)
        return response

    # ---- shoppers: events, profiles, preferences --------------------------------------------------

    @property
    def profiles(self):
        if self._profiles is None:
            from looksync.search.shoppers import open_profile_store

            self._profiles = open_profile_store(self.settings)
        return self._profiles

    def record_events(self, events: list[ShopperEvent]) -> int:
        """Store a batch of shopper events whole: every product must be in the live index (else
        InvalidRequest naming the first unknown, and nothing is stored)."""
        from looksync.search.shoppers import event_fields

        version = self.check_ready()
        products: dict[str, dict[str, Any]] = {}
        for i, event in enumerate(events):
            if event.product_id not in products:
                product = self.index.get(event.product_id, version=version)
                if product is None:
                    raise InvalidRequest(
                        f"events[{i}]: product {event.product_id!r} is not in the live index {version}; nothing was stored",
                        field=f"events[{i}].product_id",
                    )
                products[event.product_id] = product
        self.profiles.add([(event, event_fields(event, products[event.product_id])) for event in events])
        return len(events)

    def shopper_profile(self, shopper_id: str) -> dict[str, Any]:
        profile = self.profiles.get(shopper_id)
        if profile is None:
            raise NotFound(f"no profile for shopper {shopper_id!r} (no events, erased, or expired)")
        return {**profile.to_json(), "recent_events": self.profiles.events(shopper_id)[:20]}

    def forget_shopper(self, shopper_id: str) -> bool:
        """Erase the shopper's profile and events (right to be forgotten); False when there was none."""
        return self.profiles.delete(shopper_id)

    def apply_preferences(self, response: dict[str, Any], shopper_id: str | None) -> dict[str, Any]:
        """Reorder each list of ``response`` by the shopper's soft preferences (a bounded boost, within
        the results the request's filters gave) and say which were applied. A profile store that cannot
        be reached leaves the order as it was, with a degraded note."""
        if shopper_id is None:
            return response
        from looksync.search.shoppers import ProfileUnavailable, personalise

        try:
            profile = self.profiles.get(shopper_id)
        except ProfileUnavailable as exc:
            response.setdefault("degraded", []).append(f"profiles_unavailable: {exc}")
            response["preferences"] = {"shopper_id": shopper_id, "applied": [], "note": "profile store unavailable"}
            return response
        if profile is None:
            response["preferences"] = {"shopper_id": shopper_id, "applied": [], "note": "no profile yet"}
            return response
        cap = self.settings.shopper_max_boost
        lists = [layer["products"] for layer in response.get("layers", [])] + (
            [response["products"]] if "products" in response else []
        )
        for products in lists:
            personalise(products, profile, cap)
        response["preferences"] = {"shopper_id": shopper_id, "applied": profile.kinds(), "max_boost": cap}
        return response

    def product(self, product_id: str) -> dict[str, Any]:
        version = self.check_ready()
        product = self.index.get(product_id, version=version)
        if product is None:
            raise NotFound(f"product {product_id!r} is not in the live index {version}")
        degraded: list[str] = []
        self._load_groups(degraded)
        # the group's offers, the best in-stock one in this product's market first
        group = product_group(product_id, self.groups, product.get("market"))
        return {"index_version": version, "product": product, "group": group, "degraded": degraded}

    def similar(self, product_id: str, request: SearchRequest) -> dict[str, Any]:
        """Products like ``product_id`` (its stored image vector), same layer unless ``layers`` says
        otherwise, under the same filters; the product itself and its duplicates are left out."""
        request.validate(self.taxonomy, has_image=True)
        version = self.check_ready()
        timer = Timer()
        with timer.stage("lookup"):
            product = self.index.get(product_id, version=version)
            if product is None:
                raise NotFound(f"product {product_id!r} is not in the live index {version}")
            try:
                vector = self.index.vectors([product_id], version=version).get(product_id)
            except NotImplementedError as exc:
                raise Unsupported(f"the {self.settings.resolved_index_backend} index cannot return vectors: {exc}") from exc
        if vector is None:
            raise NotFound(f"product {product_id!r} has no stored vector in {version}")
        filters = replace(
            request.filters,
            layers=request.layers or [product["layer"]],
            categories=request.categories or request.filters.categories,
            market=request.market or request.filters.market,
            exclude_ids=[*(request.filters.exclude_ids or []), product_id],
        )
        with timer.stage("knn"):
            hits, _ = self._knn_with_gender(vector, request.k * 2 + 1, filters, request.gender, request.gender)
        degraded: list[str] = []
        self._load_groups(degraded)
        own = {k for k in (self.groups.group_of(product_id), product.get("image_hash")) if k}
        with timer.stage("dedup"):
            hits = drop_near_duplicates(with_group_ids(hits, self.groups), exclude_keys=own)[: request.k]
        return {
            "index_version": version,
            "model_id": self.encoder.model_id,
            "product_id": product_id,
            "products": [with_offers(product_summary(h), self.groups, filters.market) for h in hits],
            "timings_ms": {k: round(v, 2) for k, v in timer.timings_ms.items()},
            "degraded": degraded,
        }


# Engines with a background build, held weakly so this set keeps none alive. At interpreter exit the builds
# are stopped and joined while Python still runs threads: a daemon thread still inside a torch call when
# finalisation starts is ended as it takes the GIL back, unwinding through torch's C++ frames, and
# libstdc++ aborts the process ("terminate called without an active exception", exit status 134).
_engines_to_close: weakref.WeakSet[SearchEngine] = weakref.WeakSet()


@atexit.register
def _close_engines_at_exit() -> None:
    for engine in list(_engines_to_close):
        engine.close()


def _text_key(model_id: str, text: str) -> str:
    return "textvec:" + hashlib.sha1(f"{model_id}\x00{text}".encode()).hexdigest()


def _note(degraded: list[str], message: str) -> None:
    if message not in degraded:
        log.warning("degraded: %s", message)
        degraded.append(message)
