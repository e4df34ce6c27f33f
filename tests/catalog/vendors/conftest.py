"""Factories for small vendor feeds written by hand in each vendor's native layout.

They deliberately do not use the sample generator or the configs' field paths: a typo in a config
(a wrong header, a wrong JSON path) shows up here as a parse failure.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from looksync.catalog.vendors import VendorConfig, load_vendor_config

Row = dict[str, Any] | bytes  # a record to render, or raw bytes written as they are


class VendorFeed:
    """Builds rows for one vendor and writes them as a feed file."""

    name = ""
    suffix = ""

    @property
    def config(self) -> VendorConfig:
        return load_vendor_config(self.name)

    def record(self, **values: Any) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def row_ref(self, n: int) -> str:
        """How read_feed names the n-th (1-based) row of a feed written by ``write``."""
        return f"line {n}"

    def head(self) -> str:
        return ""

    def tail(self) -> str:
        return ""

    def truncated(self, record: dict[str, Any]) -> bytes:
        text = self.render(record).rstrip("\n")
        return (text[: len(text) // 2] + "\n").encode("utf-8")

    def badly_encoded(self, record: dict[str, Any]) -> bytes:
        """The row with its title in a legacy encoding instead of UTF-8."""
        return self.render(record).encode("latin-1")

    def write(self, folder: Path, rows: list[Row]) -> Path:
        path = folder / f"{self.name}{self.suffix}"
        body = b"".join(row if isinstance(row, bytes) else self.render(row).encode("utf-8") for row in rows)
        path.write_bytes(self.head().encode("utf-8") + body + self.tail().encode("utf-8"))
        return path


class DesiFeed(VendorFeed):
    name, suffix = "desi_threads", ".csv"
    HEADER = [
        "Item Code", "Product Name", "Brand Name", "Description", "Sub Category", "Gender", "Selling Price (INR)",
        "Stock Qty", "Colour", "Print", "Fabric", "Available Sizes", "Image Link", "Product Page", "Last Modified",
    ]  # fmt: skip

    def record(self, **v: Any) -> dict[str, Any]:
        sku = v.get("sku", "DT000001")
        return {
            "Item Code": sku,
            "Product Name": v.get("title", "Roopa Men's Navy Blue Solid Cotton Shirt"),
            "Brand Name": v.get("brand", "Roopa"),
            "Description": v.get("description", "Solid cotton shirt, regular fit"),
            "Sub Category": v.get("category", "Shirts"),
            "Gender": v.get("gender", "Men"),
            "Selling Price (INR)": v.get("price", "1,299.00"),
            "Stock Qty": v.get("stock", "12"),
            "Colour": v.get("colour", "Navy Blue"),
            "Print": v.get("pattern", "Solid"),
            "Fabric": v.get("material", "Cotton"),
            "Available Sizes": v.get("sizes", "S|M|L"),
            "Image Link": v.get("image", f"http://img.example/desi/{sku}.png"),
            "Product Page": f"https://desithreads.example/p/{sku}",
            "Last Modified": v.get("updated", "01-05-2024 10:20:00"),
        }

    def head(self) -> str:
        return _csv_line(self.HEADER)

    def render(self, record: dict[str, Any]) -> str:
        return _csv_line([record[h] for h in self.HEADER])

    def row_ref(self, n: int) -> str:
        return f"line {n + 1}"  # the header is line 1

    def truncated(self, record: dict[str, Any]) -> bytes:
        return _csv_line([record[h] for h in self.HEADER[:5]]).encode("utf-8")


class NorthwindFeed(VendorFeed):
    name, suffix = "northwind_apparel", ".jsonl"

    def record(self, **v: Any) -> dict[str, Any]:
        sku = v.get("sku", "NW-0001")
        return {
            "sku": sku,
            "info": {"name": v.get("title", "Northwind Women's Striped Blouse"), "brand": v.get("brand", "Northwind"),
                     "description": "Relaxed striped blouse"},
            "taxonomy": {"path": v.get("path", f"{v.get('gender', 'Women')} > Tops > {v.get('category', 'Blouses')}")},
            "pricing": {"amount": v.get("price", "29.99"), "currency": v.get("currency", "USD")},
            "inventory": {"available": v.get("stock", True)},
            "variants": [{"size": s} for s in v.get("sizes", ["S", "M"])],
            "attributes": {"color": v.get("colour", "Navy"), "pattern": v.get("pattern", "Striped"), "material": "Cotton"},
            "media": [{"type": "video", "url": f"https://cdn.example/{sku}.mp4"},
                      {"type": "image", "url": v.get("image", f"https://cdn.example/{sku}.png")}],
            "link": f"https://northwind.example/p/{sku}",
            "updated": v.get("updated", "2024-05-01T10:20:00Z"),
        }  # fmt: skip

    def render(self, record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"


class SakuraFeed(VendorFeed):
    name, suffix = "sakura_mode", ".xml"

    def record(self, **v: Any) -> dict[str, Any]:
        sku = v.get("sku", "SM0001")
        return {
            "shohin_code": sku,
            "shohin_mei": v.get("title", "紺屋 ネイビー無地テーラードジャケット"),
            "burando": v.get("brand", "紺屋"),
            "setsumei": "ウール素材のジャケットです。",
            "bunrui": v.get("category", "ジャケット"),
            "seibetsu": v.get("gender", "婦人"),
            "kakaku": v.get("price", "4980"),
            "zaiko": v.get("stock", "在庫あり"),
            "iro": v.get("colour", "ネイビー"),
            "gara": v.get("pattern", "無地"),
            "sozai": "ウール",
            "saizu": v.get("sizes", "S,M,L"),
            "gazou": v.get(
                "images", [f"https://img.sakura.example/{sku}.png", f"https://img.sakura.example/{sku}-2.png"]
            ),
            "shohin_url": f"https://sakura.example/{sku}",
            "koushin_nichiji": v.get("updated", "2024/05/01 10:20"),
        }

    def head(self) -> str:
        return '<?xml version="1.0" encoding="UTF-8"?>\n<catalog>\n'

    def tail(self) -> str:
        return "</catalog>\n"

    def render(self, record: dict[str, Any]) -> str:
        parts = []
        for tag, value in record.items():
            for item in value if isinstance(value, list) else [value]:
                parts.append(f"<{tag}>{escape(str(item))}</{tag}>")
        return "  <item>" + "".join(parts) + "</item>\n"

    def row_ref(self, n: int) -> str:
        return f"record {n}"

    def badly_encoded(self, record: dict[str, Any]) -> bytes:
        return self.render(record).encode("cp932")  # Shift-JIS, a common legacy Japanese encoding


def _csv_line(cells: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


FEEDS: dict[str, VendorFeed] = {feed.name: feed for feed in (DesiFeed(), NorthwindFeed(), SakuraFeed())}


@pytest.fixture
def feeds() -> dict[str, VendorFeed]:
    """Feed factories by vendor name."""
    return FEEDS


@pytest.fixture(params=sorted(FEEDS))
def feed(request: pytest.FixtureRequest) -> VendorFeed:
    """Each vendor's feed factory in turn."""
    return FEEDS[request.param]
