"""Writing sample feeds in each vendor's own format, driven by the vendor's config.

The field layout (CSV headers, JSON paths, XML elements) comes from the same ``VendorConfig`` the
parser reads, so the generator and ``read_feed`` cannot drift apart. Rows are streamed to disk and
each write returns the row's reference ("line 17" / "record 4") as ``read_feed`` will report it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from looksync.catalog.vendors import VendorConfig, format_price
from looksync.catalog.vendors.values import format_timestamp
from looksync.sample.catalog import ProductSpec, catalog_data

FEED_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "xml": ".xml"}


def vendor_values(spec: ProductSpec, config: VendorConfig) -> dict[str, Any]:
    """The product in the vendor's words, keyed by canonical field."""
    grouped = catalog_data()["vendors"][config.name]["price_grouping"]
    stock: Any = {"quantity": spec.stock_qty, "boolean": spec.in_stock}.get(config.stock_kind)
    if config.stock_kind == "terms":
        stock = config.vendor_terms("stock", spec.in_stock)[0 if spec.stock_qty > 5 or not spec.in_stock else -1]
    return {
        "sku": spec.sku,
        "title": spec.title,
        "brand": spec.brand,
        "description": spec.description,
        "category": spec.terms["category"],
        "gender": spec.terms["gender"],
        "price": format_price(spec.price, config.price_format, grouped=grouped),
        "currency": config.currency,
        "stock": stock,
        "colour": spec.terms["colour"],
        "pattern": spec.terms["pattern"],
        "material": spec.material,
        "sizes": list(spec.sizes),
        "image_urls": [spec.image_url],
        "product_url": spec.product_url,
        "updated_at": format_timestamp(spec.updated_at, config.updated_at),
    }


def place_values(config: VendorConfig, values: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    """Lay canonical values out as a vendor record: the inverse of the parser's field specs."""
    record: dict[str, Any] = {}
    segments: dict[str, tuple[str, dict[int, str]]] = {}
    for key, value in values.items():
        spec = config.fields.get(key)
        if spec is None or value is None:
            continue
        if spec.split:
            if spec.path not in segments:
                _set(record, spec.path, None, nested)  # keep the field's place in the record
            segments.setdefault(spec.path, (spec.split, {}))[1][spec.index or 0] = value
            continue
        if spec.each:
            value = [{**dict(spec.where), spec.each: item} for item in value]
        elif isinstance(value, list) and not (key == "image_urls" and config.format == "xml"):
            separator = {"sizes": config.size_separator, "colour": config.colour_separator}.get(key) or " "
            value = separator.join(value)
        _set(record, spec.path, value, nested)
    for path, (separator, parts) in segments.items():
        ordered = sorted(parts, key=lambda i: i if i >= 0 else 1_000_000 + i)
        _set(record, path, separator.join(parts[i] for i in ordered), nested)
    return record


def _set(record: dict[str, Any], path: str, value: Any, nested: bool) -> None:
    if not nested:
        record[path] = value
        return
    *parents, last = path.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[last] = value


class FeedWriter:
    """Streams one vendor's feed file; ``text``/``truncated`` render rows, ``put`` writes them."""

    def __init__(self, config: VendorConfig, path: Path):
        self.config = config
        self.path = path
        self.rows = 0
        self._fh = path.open("wb")
        self._lines_before_rows = 0
        self._start()

    def _start(self) -> None:
        pass

    def text(self, values: dict[str, Any]) -> str:
        raise NotImplementedError

    def truncated(self, values: dict[str, Any]) -> str:
        raise NotImplementedError

    def row_ref(self) -> str:
        return f"line {self._lines_before_rows + self.rows}"

    def put(self, text: str, codec: str = "utf-8") -> str:
        """Write one rendered row (in ``codec``, which a fault may set wrong); returns its row ref."""
        self._fh.write(text.encode(codec))
        self.rows += 1
        return self.row_ref()

    def close(self) -> None:
        self._fh.close()


class CsvFeedWriter(FeedWriter):
    def _start(self) -> None:
        self.header = [spec.path for spec in self.config.fields.values()]
        self._fh.write(self._line(self.header).encode("utf-8"))
        self._lines_before_rows = 1

    def _cells(self, values: dict[str, Any]) -> list[str]:
        record = place_values(self.config, values, nested=False)
        return ["" if record.get(h) is None else str(record[h]) for h in self.header]

    @staticmethod
    def _line(cells: list[str]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(cells)
        return out.getvalue()

    def text(self, values: dict[str, Any]) -> str:
        return self._line(self._cells(values))

    def truncated(self, values: dict[str, Any]) -> str:
        cells = self._cells(values)
        return self._line(cells[: max(1, len(cells) // 2)])  # cut on a field boundary, so later rows stay intact


class JsonlFeedWriter(FeedWriter):
    def text(self, values: dict[str, Any]) -> str:
        return json.dumps(place_values(self.config, values, nested=True), ensure_ascii=False) + "\n"

    def truncated(self, values: dict[str, Any]) -> str:
        line = self.text(values).rstrip("\n")
        return line[: len(line) // 2] + "\n"


class XmlFeedWriter(FeedWriter):
    def _start(self) -> None:
        self._fh.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<catalog vendor="{self.config.name}">\n'.encode())

    def row_ref(self) -> str:
        return f"record {self.rows}"

    def text(self, values: dict[str, Any]) -> str:
        tag = self.config.record_tag
        parts = [f"  <{tag}>"]
        for name, value in place_values(self.config, values, nested=False).items():
            for item in value if isinstance(value, list) else [value]:
                parts.append(f"<{name}>{escape(str(item))}</{name}>")
        parts.append(f"</{tag}>\n")
        return "".join(parts)

    def truncated(self, values: dict[str, Any]) -> str:
        record = self.text(values).rstrip("\n")
        return record[: len(record) // 2] + "\n"

    def close(self) -> None:
        self._fh.write(b"</catalog>\n")
        super().close()


WRITERS: dict[str, type[FeedWriter]] = {"csv": CsvFeedWriter, "jsonl": JsonlFeedWriter, "xml": XmlFeedWriter}


def open_feed_writer(config: VendorConfig, feeds_dir: Path) -> FeedWriter:
    return WRITERS[config.format](config, feeds_dir / f"{config.name}{FEED_SUFFIX[config.format]}")
