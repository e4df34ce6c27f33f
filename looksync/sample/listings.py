"""One item, many shops: sample products that other vendors list too.

A cross-listing is the same item (same brand, category, gender, colour, pattern, material) written by
another vendor in that vendor's words and language, at that market's price, currency, sizes and stock,
with its picture re-encoded (resized, saved as a JPEG of a drawn quality), so it is the same item but
never the same bytes. The generator records which listings are one item in ``groups.json``: the ground
truth that grouping is scored on (``looksync eval``).

Each decision comes from its own seeded RNG (seed, product index), so the cross-listings never move
the products drawn before them: a sample with cross-listings holds every product (same SKU, same
bytes) that the sample without them holds, plus the extra listings.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, replace

from PIL import Image

from looksync.catalog.schema import make_product_id
from looksync.catalog.vendors import VendorConfig
from looksync.sample.catalog import (
    ProductSpec,
    _describe,
    _price,
    _sizes,
    _updated_at,
    _vendor_term,
    catalog_data,
    image_url,
    make_sku,
)


@dataclass
class CrossListing:
    spec: ProductSpec
    image: bytes  # the re-encoded picture (JPEG)


def listing_rules() -> dict:
    return catalog_data()["cross_listing"]


def plan_cross_listing(index: int, spec: ProductSpec, vendors: list[str], seed: int, rate: float) -> list[str]:
    """The other vendors that also list product ``index`` (none for most products)."""
    if rate <= 0:
        return []
    rng = random.Random(f"{seed}:cross:{index}")
    if rng.random() >= rate:
        return []
    others = [v for v in vendors if v != spec.vendor]
    extra = 2 if len(others) > 1 and rng.random() < listing_rules()["second_shop_rate"] else 1
    return rng.sample(others, extra)


def cross_listing(
    spec: ProductSpec, picture: Image.Image, target: VendorConfig, n: int, seed: int, image_base_url: str
) -> CrossListing:
    """``spec`` as vendor ``target`` lists it: its ``n``-th cross-listing (SKUs after ``sku_offset``, far
    from the vendor's own and its planted faults' SKUs)."""
    data = catalog_data()
    rules = listing_rules()
    rng = random.Random(f"{seed}:cross:{spec.vendor}:{spec.sku}:{target.name}")
    source_materials = {word: material for material, word in data["vendors"][spec.vendor]["materials"].items()}
    in_stock = rng.random() < data["in_stock_rate"]
    brand = spec.brand.upper() if spec.brand.isascii() and rng.random() < rules["brand_upper_rate"] else spec.brand
    listing = replace(
        spec,
        vendor=target.name,
        sku=make_sku(target.name, rules["sku_offset"] + n),
        market=target.market,
        brand=brand,
        price=_price(rng, target.market, spec.layer),
        in_stock=in_stock,
        stock_qty=rng.randint(1, data["max_stock_qty"]) if in_stock else 0,
        sizes=_sizes(rng, data["categories"][spec.category]["sizes"], target.market),
        updated_at=_updated_at(rng),
        material=data["vendors"][target.name]["materials"][source_materials[spec.material]],
        terms={kind: _vendor_term(target, rng, kind, value) for kind, value in
               (("category", spec.category), ("gender", spec.gender), ("colour", spec.colour), ("pattern", spec.pattern))},
        extra={**spec.extra, "listing_of": make_product_id(spec.vendor, spec.sku)},
    )  # fmt: skip
    _describe(listing, target, image_base_url)
    listing.image_url = image_url(image_base_url, target.name, listing.sku, ".jpg")
    return CrossListing(listing, reencode(picture, rng))


def reencode(picture: Image.Image, rng: random.Random) -> bytes:
    """The picture as another shop serves it: resized by a drawn factor and saved as a JPEG of a drawn quality."""
    rules = listing_rules()
    scale = rng.uniform(*rules["resize"])
    size = (max(16, round(picture.width * scale)), max(16, round(picture.height * scale)))
    out = io.BytesIO()
    picture.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(
        out, format="JPEG", quality=rng.randint(*rules["jpeg_quality"])
    )
    return out.getvalue()
