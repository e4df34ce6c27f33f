"""Planted faults: extra feed rows that ingestion must quarantine, each with the reason it must give.

Parse-stage faults (missing SKU, bad/negative price, unknown category, bad encoding, duplicate SKU,
truncated row) are caught by ``read_feed``; image faults (dead URL, HTML page, oversized PNG) produce
valid products whose image the ingest fetcher must reject.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from looksync.catalog.quarantine import Reason
from looksync.catalog.vendors import format_price
from looksync.sample.catalog import ProductSpec, SampleError, catalog_data, image_url
from looksync.sample.feeds import FeedWriter, vendor_values

# fault kind -> the quarantine reason the pipeline must give for it
FAULT_REASONS: dict[str, Reason] = {
    "missing_sku": Reason.MISSING_SKU,
    "bad_price": Reason.BAD_PRICE,
    "unknown_category": Reason.UNKNOWN_CATEGORY,
    "dead_image_url": Reason.IMAGE_UNREACHABLE,
    "non_image_content": Reason.IMAGE_NOT_IMAGE,
    "oversized_image": Reason.IMAGE_TOO_LARGE,
    "bad_encoding": Reason.BAD_ENCODING,
    "duplicate_sku": Reason.DUPLICATE_SKU,
    "negative_price": Reason.NEGATIVE_PRICE,
    "truncated_row": Reason.TRUNCATED_ROW,
}
IMAGE_FAULTS = ("dead_image_url", "non_image_content", "oversized_image")
OVERSIZED_PIXELS = (6000, 5000)  # 30 Mpx: over the 25 Mpx cap, a few KB as a 1-bit PNG


@dataclass
class PlantedFault:
    vendor: str
    row_ref: str
    vendor_sku: str | None
    kind: str
    expected_reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def faults_per_kind(size: int, fault_rate: float) -> int:
    """At least one of each kind whenever faults are asked for, otherwise in proportion to the rate."""
    if fault_rate <= 0:
        return 0
    return max(1, round(size * fault_rate / len(FAULT_REASONS)))


def plan_faults(
    products_per_vendor: dict[str, int], size: int, fault_rate: float, seed: int
) -> dict[str, dict[int, list[str]]]:
    """vendor -> {index of the valid row the fault rows follow -> fault kinds}, spread over vendors."""
    rng = random.Random(f"{seed}:faults")
    vendors = [v for v, n in products_per_vendor.items() if n > 0]
    plan: dict[str, dict[int, list[str]]] = {v: {} for v in products_per_vendor}
    for k, kind in enumerate(FAULT_REASONS):
        for j in range(faults_per_kind(size, fault_rate)):
            vendor = vendors[(k + j) % len(vendors)]
            plan[vendor].setdefault(rng.randrange(products_per_vendor[vendor]), []).append(kind)
    return plan


def write_fault(
    kind: str,
    writer: FeedWriter,
    fresh: ProductSpec,
    previous: ProductSpec,
    images_dir: Path,
    image_base_url: str,
    rng: random.Random,
) -> PlantedFault:
    """Write one faulty row. ``fresh`` is a new valid product to spoil (its own SKU); ``previous`` is the
    vendor's last valid product (copied for a duplicate SKU)."""
    config = writer.config
    vendor = catalog_data()["vendors"][config.name]
    spec = previous if kind == "duplicate_sku" else fresh
    values = vendor_values(spec, config)
    text, codec, sku = None, "utf-8", spec.sku
    if kind == "missing_sku":
        values["sku"], sku = "", None
    elif kind == "bad_price":
        values["price"] = rng.choice(vendor["bad_prices"])
    elif kind == "negative_price":
        values["price"] = format_price(-spec.price, config.price_format, grouped=False)
    elif kind == "unknown_category":
        values["category"] = rng.choice(vendor["unknown_categories"])
    elif kind == "duplicate_sku":
        values["title"] = f"{values['title']} (restock)"
    elif kind == "bad_encoding":
        values["title"] = spec.title + vendor["bad_encoding"]["title_suffix"]
        codec = vendor["bad_encoding"]["codec"]
    elif kind == "truncated_row":
        text = writer.truncated(values)
    elif kind in IMAGE_FAULTS:
        values["image_urls"] = [_plant_image_fault(kind, config.name, spec.sku, images_dir, image_base_url)]
    else:
        raise SampleError(f"{kind!r}: unknown fault kind; known: {', '.join(FAULT_REASONS)}")
    text = text if text is not None else writer.text(values)
    if kind == "bad_encoding" and _is_utf8(text.encode(codec)):
        raise SampleError(f"{config.name}: bad_encoding codec {codec} produced valid UTF-8 for {text!r}")
    row_ref = writer.put(text, codec)
    return PlantedFault(config.name, row_ref, sku, kind, str(FAULT_REASONS[kind]))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _plant_image_fault(kind: str, vendor: str, sku: str, images_dir: Path, image_base_url: str) -> str:
    folder = images_dir / vendor
    if kind == "dead_image_url":
        return image_url(image_base_url, vendor, sku)  # nothing is written there: the server answers 404
    if kind == "non_image_content":
        (folder / f"{sku}.html").write_text(
            f"<!doctype html><html><body><h1>{sku}</h1><p>Product photo coming soon.</p></body></html>\n",
            encoding="utf-8",
        )
        return image_url(image_base_url, vendor, sku, ".html")
    (folder / f"{sku}.png").write_bytes(_oversized_png())
    return image_url(image_base_url, vendor, sku)


@lru_cache(maxsize=1)
def _oversized_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", OVERSIZED_PIXELS, 1).save(buffer, format="PNG")
    return buffer.getvalue()
