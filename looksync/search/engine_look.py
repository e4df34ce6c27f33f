"""The look search flow, once the cache cannot answer: per-layer queries (query generator) -> text
vectors -> query vectors blended with the garment crops -> filtered kNN per layer -> one card per item
-> rerank (LLM listwise | crop cosine) -> per-layer products with their match explanations, the
gender read, the layers not in the look, an optional outfit within a budget, timings and ``degraded``;
the answer is stored in the look cache when nothing degraded it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from looksync.search.engine_base import _note
from looksync.search.engine_knn import KnnMixin
from looksync.search.engine_text import TextVectorsMixin
from looksync.search.explain import explain_match
from looksync.search.offers import with_group_ids, with_offers
from looksync.search.outfit import assemble_outfit
from looksync.search.requests import LookSearchRequest
from looksync.search.rerank import LayerCandidates
from looksync.search.results import Timer, drop_near_duplicates, product_summary

if TYPE_CHECKING:
    from PIL.Image import Image


class LookFlowMixin(TextVectorsMixin, KnnMixin):
    """``_compute_look`` (with ``look_query_vector`` and ``_assemble_outfit``) of ``SearchEngine``."""

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
