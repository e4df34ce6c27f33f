"""Typed request models of every API endpoint: the single source of what a request may hold, used to
validate (``serving.validation.validate``) and to write the OpenAPI document (``serving.openapi``).

Numbers are finite and bounded, strings bounded in length (and, through ``serving.validation.clean``,
free of NUL and lone surrogates, NFC-normalised; ``Text`` repeats that check so a model used on its own
keeps it), lists bounded in length, unknown fields refused. What the taxonomy decides (markets,
layers, categories, rerank modes) is checked by the engine's requests, which name the allowed values.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from looksync.index import SearchFilters
from looksync.search.engine import MAX_BUDGET, MAX_K, LookSearchRequest, OutfitRequest, SearchRequest
from serving.validation import text_problem


def _text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def _comma_list(value: Any) -> Any:
    """Query strings and form fields send lists as ``a,b``; JSON sends arrays."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _text_of(min_length: int = 0, max_length: int | None = None) -> Any:
    """A string bounded in length (checked before the text check), clean and NFC (``_text``)."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_text)]


Text = _text_of()
Name = _text_of(1, 64)
Token = _text_of(1, 200)
NameList = Annotated[list[Token], BeforeValidator(_comma_list), Field(max_length=100)]
Price = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False, description="in the market's currency")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="results per layer (default: the service's default k)")]
ImageUrl = Annotated[_text_of(1, 2048), Field(description="fetched with the ingestion guards")]
ProductId = _text_of(1, 200)
ShopperId = Annotated[_text_of(1, 200), Field(description="the app's shopper id: their profile softly boosts the results")]

_STRICT = ConfigDict(extra="forbid", str_max_length=20_000_000)  # base64 images are long; the byte cap bounds them


class Filters(BaseModel):
    model_config = _STRICT

    brands_include: NameList | None = None
    brands_exclude: NameList | None = None
    price_min: Price | None = None
    price_max: Price | None = None
    sizes: NameList | None = Field(None, description="a product matches if it has any")
    in_stock: bool | None = None

    def to_search_filters(self) -> SearchFilters:
        return SearchFilters(**self.model_dump(exclude_none=True))


class _Common(BaseModel):
    model_config = _STRICT

    market: Name | None = Field(None, description="a taxonomy market (IN, US, JP)")
    gender: Name | None = Field(None, description="women, men or unisex")
    layers: NameList | None = None
    k: K | None = None
    filters: Filters | None = None


class _ImageFields(BaseModel):
    image_base64: str | None = Field(None, description="the image file, base64 (JSON bodies)")
    image_url: ImageUrl | None = None


class Outfit(BaseModel):
    """``outfit`` of a look search: one in-stock product per layer whose total is within the budget."""

    model_config = _STRICT

    budget: float = Field(
        gt=0, le=MAX_BUDGET, allow_inf_nan=False, strict=True, description="in the market's currency (needs market)"
    )
    currency: Annotated[Text, Field(min_length=3, max_length=3, description="the market's currency code, e.g. USD")]

    def to_request(self) -> OutfitRequest:
        return OutfitRequest(budget=float(self.budget), currency=self.currency.upper())


class LookSearchParams(_Common, _ImageFields):
    """POST /v1/looks/search (JSON body, or multipart ``params`` + ``image``)."""

    rerank: Name | None = Field(None, description="auto, llm, local or off (default: the service's)")
    outfit: Outfit | None = None
    shopper_id: ShopperId | None = None

    def to_request(self, default_k: int, default_rerank: str) -> LookSearchRequest:
        return LookSearchRequest(
            market=self.market, gender=self.gender, layers=self.layers, k=self.k or default_k,
            filters=(self.filters or Filters()).to_search_filters(), rerank=self.rerank or default_rerank,
            outfit=self.outfit.to_request() if self.outfit else None,
        )  # fmt: skip


class SearchParams(_Common, _ImageFields):
    """POST /v1/search (JSON body, or multipart ``params`` + ``text`` + ``image``)."""

    text: _text_of(0, 500) | None = None
    categories: NameList | None = None
    shopper_id: ShopperId | None = None

    def to_request(self, default_k: int) -> SearchRequest:
        return SearchRequest(
            text=self.text, market=self.market, gender=self.gender, layers=self.layers, categories=self.categories,
            k=self.k or default_k, filters=(self.filters or Filters()).to_search_filters(),
        )  # fmt: skip


class SimilarQuery(BaseModel):
    """GET /v1/products/{product_id}/similar: the query string (lists as ``a,b``; filters as top-level names)."""

    model_config = _STRICT

    market: Name | None = None
    gender: Name | None = None
    k: K | None = None
    layers: NameList | None = None
    categories: NameList | None = None
    brands_include: NameList | None = None
    brands_exclude: NameList | None = None
    price_min: Price | None = None
    price_max: Price | None = None
    sizes: NameList | None = None
    in_stock: bool | None = None

    def to_request(self, default_k: int) -> SearchRequest:
        filters = Filters.model_validate(self.model_dump(include=set(Filters.model_fields), exclude_none=True))
        return SearchRequest(
            market=self.market, gender=self.gender, layers=self.layers, categories=self.categories,
            k=self.k or default_k, filters=filters.to_search_filters(),
        )  # fmt: skip


class ProductPath(BaseModel):
    model_config = _STRICT

    product_id: ProductId


class ReportQuery(BaseModel):
    """GET /v1/judgments/report."""

    model_config = _STRICT

    model_id: _text_of(0, 200) | None = None


# the multipart form fields a model takes besides ``params`` (JSON) and the ``image`` file
FORM_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    LookSearchParams: ("image_url",),
    SearchParams: ("text", "image_url"),
}


class Event(BaseModel):
    """One thing a shopper did with a product."""

    model_config = _STRICT

    shopper_id: ShopperId
    product_id: ProductId
    type: Literal["view", "click", "add_to_cart", "purchase"]
    at: float | None = Field(
        None, ge=0, le=4_102_444_800, allow_inf_nan=False, description="seconds since the epoch (default: now)"
    )
    size: Name | None = Field(None, description="the size viewed or bought, when known")


class EventsBody(BaseModel):
    """POST /v1/events: a batch, stored whole or not at all."""

    model_config = _STRICT

    events: list[Event] = Field(min_length=1, max_length=500)


class ShopperPath(BaseModel):
    model_config = _STRICT

    shopper_id: ShopperId
