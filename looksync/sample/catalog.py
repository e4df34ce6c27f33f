"""Sample products in the standard vocabulary, plus the vendor words used to write them in a feed.

Each product is drawn from its own seeded RNG (seed, vendor, index), so the catalog is the same
whatever order products are generated in and however many there are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from looksync.catalog.taxonomy import get_taxonomy
from looksync.catalog.vendors import VendorConfig
from looksync.catalog.vendors.config import YAML_LOADER

CATALOG_DATA_PATH = Path(__file__).parent / "data" / "catalog.yaml"


class SampleError(ValueError):
    """The sample vocabulary and a vendor config do not fit together (e.g. no vendor word for a colour)."""


@dataclass
class ProductSpec:
    """One sample product: standard values (what ground truth and drawings use) and vendor words."""

    vendor: str
    sku: str
    market: str
    category: str
    layer: str
    gender: str
    colour: str
    pattern: str
    brand: str
    price: float
    in_stock: bool
    stock_qty: int
    sizes: list[str]
    updated_at: datetime
    material: str  # the vendor's word
    terms: dict[str, str]  # vendor words for category, gender, colour, pattern
    title: str = ""
    description: str = ""
    product_url: str = ""
    image_url: str = ""
    # how its picture varies from others of the same category/colour/pattern
    draw_rgb: tuple[int, int, int] = (0, 0, 0)
    draw_scale: float = 1.0
    draw_shift: tuple[int, int] = (0, 0)
    pattern_period: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def catalog_data() -> dict[str, Any]:
    """The packaged sample vocabulary (``data/catalog.yaml``)."""
    return yaml.load(CATALOG_DATA_PATH.read_text(encoding="utf-8"), Loader=YAML_LOADER)


def sample_vendors() -> list[str]:
    return list(catalog_data()["vendors"])


def make_sku(vendor: str, n: int) -> str:
    spec = catalog_data()["vendors"][vendor]
    return spec["sku_format"].format(n=spec["sku_start"] + n)


def make_product_spec(
    config: VendorConfig,
    rng: random.Random,
    *,
    category: str,
    sku: str,
    image_base_url: str,
    first_of_category: bool = False,
) -> ProductSpec:
    """Draw one product of ``category`` for the vendor of ``config``."""
    data = catalog_data()
    taxonomy = get_taxonomy()
    cat = data["categories"][category]
    layer = taxonomy.layer_of(category)
    gender = cat["genders"][0] if first_of_category else rng.choice(cat["genders"])
    colour = rng.choice(cat.get("colours") or list(taxonomy.colours))
    patterns = cat.get("patterns") or list(taxonomy.patterns)
    pattern = rng.choices(patterns, weights=[data["pattern_weights"][p] for p in patterns])[0]
    in_stock = rng.random() < data["in_stock_rate"]
    spec = ProductSpec(
        vendor=config.name,
        sku=sku,
        market=config.market,
        category=category,
        layer=layer,
        gender=gender,
        colour=colour,
        pattern=pattern,
        brand=rng.choice(data["vendors"][config.name]["brands"]),
        price=_price(rng, config.market, layer),
        in_stock=in_stock,
        stock_qty=rng.randint(1, data["max_stock_qty"]) if in_stock else 0,
        sizes=_sizes(rng, cat["sizes"], config.market),
        updated_at=_updated_at(rng),
        material=data["vendors"][config.name]["materials"][rng.choice(cat["materials"])],
        terms={kind: _vendor_term(config, rng, kind, value) for kind, value in
               (("category", category), ("gender", gender), ("colour", colour), ("pattern", pattern))},
    )  # fmt: skip
    spec.draw_rgb = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in taxonomy.colours[colour])  # type: ignore[assignment]
    spec.draw_scale = rng.uniform(0.86, 1.0)
    spec.draw_shift = (rng.randint(-6, 6), rng.randint(-6, 6))
    spec.pattern_period = rng.randint(9, 15)
    _describe(spec, config, image_base_url)
    return spec


def _vendor_term(config: VendorConfig, rng: random.Random, kind: str, standard_id: str) -> str:
    terms = config.vendor_terms(kind, standard_id)
    if not terms:
        raise SampleError(
            f"{config.source}: vendor {config.name} has no {kind} term for {standard_id!r}; add one to synonyms.{kind}"
        )
    return rng.choice(terms)


def _describe(spec: ProductSpec, config: VendorConfig, image_base_url: str) -> None:
    vendor = catalog_data()["vendors"][config.name]
    words = {
        "brand": spec.brand,
        "gender_label": vendor["gender_labels"][spec.gender],
        "colour": spec.terms["colour"],
        "pattern": spec.terms["pattern"],
        "material": spec.material,
        "category": spec.terms["category"],
        "category_label": get_taxonomy().categories[spec.category].label.title(),
        "sku": spec.sku,
    }
    spec.title = " ".join(vendor["title_template"].format(**words).split())
    spec.description = " ".join(vendor["description_template"].format(**words).split())
    spec.product_url = vendor["product_url_template"].format(**words)
    spec.image_url = image_url(image_base_url, spec.vendor, spec.sku)


def image_url(image_base_url: str, vendor: str, sku: str, suffix: str = ".png") -> str:
    return f"{image_base_url.rstrip('/')}/images/{vendor}/{sku}{suffix}"


def _price(rng: random.Random, market: str, layer: str) -> float:
    rules = catalog_data()["prices"][market]
    low, high = rules["ranges"][layer]
    step, ending = rules["rounding"]["step"], rules["rounding"]["ending"]
    raw = rng.uniform(low, high)
    price = (int(raw // step) * step) + ending
    return round(max(price, low), 2)


def _sizes(rng: random.Random, scale: str, market: str) -> list[str]:
    sizes = catalog_data()["sizes"][scale][market]
    if len(sizes) == 1:
        return list(sizes)
    start = rng.randrange(0, len(sizes) - 1)
    end = rng.randrange(start + 1, len(sizes) + 1)
    return list(sizes[start:end])


def _updated_at(rng: random.Random) -> datetime:
    rules = catalog_data()["updated_at"]
    latest = datetime.fromisoformat(rules["latest"])
    return latest - timedelta(minutes=rng.randrange(rules["spread_days"] * 24 * 60))
