"""Typed response models of the search endpoints: the single source of what an answer holds. The
OpenAPI document takes their JSON Schema (``serving.openapi``), and the tests validate real answers
against them with unknown fields refused, so a field the service starts sending is documented first.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_CLOSED = ConfigDict(extra="forbid")


class MatchAttribute(BaseModel):
    model_config = _CLOSED

    name: str = Field(description="category, colour, pattern or gender")
    look: str = Field(description="what was read from the look's region")
    product: str | list[str] | None = Field(description="the catalog's value (colours: a list)")
    agrees: bool = Field(description="colour: one of the product's colours; gender: equal or unisex; else equal")


class MatchScore(BaseModel):
    model_config = _CLOSED

    knn: float = Field(description="cosine with the layer's query (the text query blended with the region's crop)")
    crop: float | None = Field(None, description="best cosine of the region's crops with the product image (crop rerank)")
    rerank: float | None = Field(None, description="text_weight * knn + (1 - text_weight) * crop: the list's order")
    text_weight: float | None = None


class Match(BaseModel):
    """Why this product matches the layer (look search results only)."""

    model_config = _CLOSED

    attributes: list[MatchAttribute]
    agreed: int = Field(description="how many attributes agree")
    score: MatchScore


class Offer(BaseModel):
    """One shop's listing of an item: where to buy it, at what price, whether it is in stock."""

    model_config = _CLOSED

    product_id: str
    vendor: str
    market: str
    title: str = Field(description="the shop's own title (its language)")
    price: float = Field(description="in the offer's currency")
    currency: str
    in_stock: bool
    product_url: str


_OFFERS = (
    "the item's offers at every shop and market that lists it (one card per item): in-stock offers in the "
    "shopper's market first, cheapest first; then in-stock offers in other markets; then out of stock"
)


class ProductResult(BaseModel):
    model_config = _CLOSED

    product_id: str
    score: float = Field(description="kNN cosine (outfit items: the match score the outfit summed)")
    rerank_score: float | None = Field(None, description="blended score after the crop rerank")
    title: str | None
    brand: str | None
    category: str | None
    layer: str | None
    gender: str | None
    colours: list[str] | None = Field(description="taxonomy colours, main first")
    pattern: str | None
    market: str | None
    price: float | None = Field(description="in the market's currency")
    currency: str | None
    in_stock: bool | None
    sizes: list[str] | None
    image_url: str | None = Field(description="the vendor's image")
    product_url: str | None
    image_hash: str | None
    thumbnail_url: str | None = Field(
        description="this service's URL of the image's thumbnail (/v1/thumbnails/{image_hash}); null without an "
        "image hash; 404 when no thumbnail was stored (show image_url then)"
    )
    match: Match | None = None
    group_id: str | None = Field(None, description="the item's product group, when other shops list it too")
    offers: list[Offer] | None = Field(None, description=_OFFERS)
    preference_boost: float | None = Field(None, description="added by the shopper's profile (shopper_id), bounded")


class Absent(BaseModel):
    model_config = _CLOSED

    layer: str
    reason: str


class LookLayer(BaseModel):
    model_config = _CLOSED

    layer: str
    query: str
    query_source: Literal["llm", "local"]
    attributes: dict[str, str | None] = Field(description="what the query generator read from the region")
    region: list[int] | None = Field(description="pixel box [x0, y0, x1, y1] the garment was read from, when known")
    gender_filter: str | None = Field(
        description="requested, inferred, relaxed (an inferred gender left too few products), unsure (the gender "
        "read from the look was below LOOKSYNC_LOOK_GENDER_MIN_CONFIDENCE: no gender filter), or none"
    )
    products: list[ProductResult]


class OutfitResult(BaseModel):
    """One in-stock product per layer within the budget (present when the request asked for an outfit)."""

    model_config = _CLOSED

    budget: float
    currency: str
    within_budget: bool = Field(description="false: nothing fits, items is the cheapest complete outfit")
    total: float
    score: float = Field(description="summed match score of the items")
    items: list[ProductResult]
    missing_layers: list[Absent] = Field(description="layers with no in-stock candidate in the currency")
    note: str | None


class Preferences(BaseModel):
    """Present when the request gave shopper_id: which of the shopper's preferences reordered the results."""

    model_config = _CLOSED

    shopper_id: str
    applied: list[Literal["brand", "size", "price"]]
    max_boost: float | None = None
    note: str | None = None


class GenderDetected(BaseModel):
    model_config = _CLOSED

    gender: str
    confidence: float = Field(ge=0, le=1, description="the detector's probability of that gender")
    used: bool = Field(description="whether it filtered the search (confidence >= the configured minimum)")


class LookResponse(BaseModel):
    model_config = _CLOSED

    index_version: str
    model_id: str
    gender: str | None = Field(description="the gender the search filtered on (requested, or read confidently)")
    gender_detected: GenderDetected | None = Field(
        None, description="the gender read from the look when none was requested (null: requested, or none read)"
    )
    market: str | None
    query_source: Literal["llm", "local"]
    layers: list[LookLayer]
    region_source: Literal["layout", "pose", "person_box"] | None = Field(
        description="what placed the layer regions (null: CLIP box search or LLM queries)"
    )
    not_in_look: list[Absent] = Field(description="layers found out of frame or not visible: no query was made")
    rerank: Literal["llm", "local", "off"]
    outfit: OutfitResult | None = None
    preferences: Preferences | None = None
    cache: Literal["hit", "miss", "unavailable", "off"]
    timings_ms: dict[str, float] = Field(description="per-stage milliseconds")
    degraded: list[str] = Field(description="why the answer is less than the best path")


class SearchResponse(BaseModel):
    model_config = _CLOSED

    index_version: str
    model_id: str
    mode: Literal["text", "image", "image+text"]
    text: str | None
    products: list[ProductResult]
    preferences: Preferences | None = None
    timings_ms: dict[str, float]
    degraded: list[str]


class SimilarResponse(BaseModel):
    model_config = _CLOSED

    index_version: str
    model_id: str
    product_id: str
    products: list[ProductResult]
    timings_ms: dict[str, float]
    degraded: list[str]


class ProductGroup(BaseModel):
    """The item a product is one listing of, with every shop's offer."""

    model_config = _CLOSED

    group_id: str
    canonical_product_id: str = Field(description="the group's most complete listing")
    title: str = Field(description="the canonical listing's title")
    brand: str
    category: str
    markets: list[str]
    vendors: list[str]
    offers: list[Offer] = Field(description=_OFFERS.replace("shopper's market", "product's market"))


class ProductResponse(BaseModel):
    model_config = _CLOSED

    index_version: str
    product: dict[str, Any] = Field(description="the product's record in the live index")
    group: ProductGroup | None = Field(description="null when no other shop or market lists the item")
    degraded: list[str]


RESPONSE_MODELS = (LookResponse, SearchResponse, SimilarResponse, ProductResponse)
