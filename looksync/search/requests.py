"""The online search's requests and the errors it raises: ``LookSearchRequest`` (with its ``OutfitRequest``)
and ``SearchRequest`` (text / image / image+text, also ``/similar``), each with its ``validate`` against the
taxonomy, and ``InvalidRequest`` / ``NotReady`` / ``NotFound`` / ``Unsupported``, which the service turns
into HTTP statuses. The service's request models and the shadow mirror use these types too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from looksync.catalog.taxonomy import Taxonomy
from looksync.index import SearchFilters
from looksync.search.rerank import RERANK_MODES

MAX_K = 100


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
