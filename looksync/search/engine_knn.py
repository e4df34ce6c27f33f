"""The kNN steps of every search: a layer's filtered kNN with the gender preference (a requested gender
filters; an inferred one is widened to every gender when it leaves the list short) and the best-of merge
over several query vectors of one layer (one per crop extent).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from looksync.index import Hit, SearchFilters
from looksync.search.engine_base import EngineBase


class KnnMixin(EngineBase):
    """``_knn_best_of`` and ``_knn_with_gender`` of ``SearchEngine``."""

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
