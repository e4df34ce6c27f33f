"""Text / image / image+text search, one product with its group's offers, and products similar to a
product (its stored vector), on the same filters, with one card per item.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from looksync.search.engine_knn import KnnMixin
from looksync.search.engine_text import TextVectorsMixin
from looksync.search.offers import product_group, with_group_ids, with_offers
from looksync.search.requests import InvalidRequest, NotFound, SearchRequest, Unsupported
from looksync.search.results import Timer, drop_near_duplicates, product_summary

if TYPE_CHECKING:
    from PIL.Image import Image


class ProductSearchMixin(TextVectorsMixin, KnnMixin):
    """``search``, ``product`` and ``similar`` of ``SearchEngine``."""

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
