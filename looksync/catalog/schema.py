"""The canonical product record.

One pydantic model validates what vendor mappings produce, is what the index stores (plus a vector)
and is what the API returns. Every check here names the field and the offending value.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from looksync.catalog.taxonomy import get_taxonomy


def make_product_id(vendor: str, vendor_sku: str) -> str:
    """Stable product id: the vendor plus a digest of (vendor, SKU), safe in URLs and index ids."""
    if not vendor or not vendor_sku:
        raise ValueError("vendor and vendor_sku are both required to make a product id")
    digest = hashlib.sha1(f"{vendor}\x00{vendor_sku}".encode()).hexdigest()[:16]
    return f"{vendor}-{digest}"


def image_digest(data: bytes) -> str:
    """Content hash of an image's bytes; the embeddings store keys vectors by it."""
    return hashlib.sha256(data).hexdigest()


class Product(BaseModel):
    """A sellable item of one vendor in one market, in LookSync's standard vocabulary."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product_id: str = ""
    vendor: str = Field(min_length=1)
    vendor_sku: str = Field(min_length=1)
    market: str
    title: str = Field(min_length=1)
    description: str = ""
    brand: str = Field(min_length=1)
    category: str
    # how the vendor's category term was read: its own map (rule), the shared synonyms (synonym), or CLIP's
    # nearest category above the threshold (clip); None for products not read from a vendor feed
    category_source: Literal["rule", "synonym", "clip"] | None = None
    layer: str = ""
    gender: str
    colours: list[str] = Field(default_factory=list)
    pattern: str | None = None
    material: str | None = None
    sizes: list[str] = Field(default_factory=list)
    price: float
    currency: str
    in_stock: bool
    image_urls: list[str] = Field(min_length=1)
    product_url: str = ""
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    image_hash: str | None = None
    model_id: str | None = None

    @field_validator("market")
    @classmethod
    def _known_market(cls, v: str) -> str:
        if v not in get_taxonomy().markets:
            raise ValueError(f"unknown market {v!r}; known: {', '.join(get_taxonomy().markets)}")
        return v

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in get_taxonomy().categories:
            raise ValueError(f"unknown category {v!r}")
        return v

    @field_validator("gender")
    @classmethod
    def _known_gender(cls, v: str) -> str:
        if v not in get_taxonomy().genders:
            raise ValueError(f"unknown gender {v!r}; known: {', '.join(get_taxonomy().genders)}")
        return v

    @field_validator("colours")
    @classmethod
    def _known_colours(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in get_taxonomy().colours]
        if unknown:
            raise ValueError(f"unknown colour(s) {unknown!r}")
        return v

    @field_validator("pattern")
    @classmethod
    def _known_pattern(cls, v: str | None) -> str | None:
        if v is not None and v not in get_taxonomy().patterns:
            raise ValueError(f"unknown pattern {v!r}; known: {', '.join(get_taxonomy().patterns)}")
        return v

    @field_validator("price")
    @classmethod
    def _valid_price(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"price must be a finite number, got {v!r}")
        if v < 0 or math.copysign(1.0, v) < 0:
            raise ValueError(f"price must not be negative, got {v!r}")
        return v

    @field_validator("image_urls")
    @classmethod
    def _http_urls(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not u.startswith(("http://", "https://", "s3://", "file://"))]
        if bad:
            raise ValueError(f"image URLs must be http(s), s3 or file URLs, got {bad!r}")
        return v

    @model_validator(mode="after")
    def _derived_fields(self) -> Product:
        taxonomy = get_taxonomy()
        layer = taxonomy.layer_of(self.category)
        if self.layer and self.layer != layer:
            raise ValueError(f"layer {self.layer!r} contradicts category {self.category!r} (layer {layer!r})")
        self.layer = layer
        expected_currency = taxonomy.currency_of(self.market)
        if self.currency != expected_currency:
            raise ValueError(f"currency {self.currency!r} does not match market {self.market} ({expected_currency})")
        self.price = round(self.price, taxonomy.markets[self.market].minor_units)
        expected_id = make_product_id(self.vendor, self.vendor_sku)
        if self.product_id and self.product_id != expected_id:
            raise ValueError(f"product_id {self.product_id!r} is not derived from vendor+SKU ({expected_id!r})")
        self.product_id = expected_id
        return self
