"""Turning vendor-written values (prices, stock, timestamps, lists) into typed ones.

The one place that parses prices: ingestion, the sample generator's tests and anything else that
reads a vendor's price string call ``parse_price`` with the vendor's ``PriceFormat``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from looksync.catalog.vendors.config import PriceFormat, TimestampFormat, VendorConfig


class ValueProblem(ValueError):
    """A vendor value cannot be read; the message names the value."""


def parse_price(value: object, fmt: PriceFormat) -> float:
    """A price as written by the vendor ("1,299.00", "29.99", "4980", 12.5) -> float.

    Negative prices parse (the caller decides what a negative price means); anything else that is not
    a plain number in the vendor's format raises ``ValueProblem``.
    """
    if isinstance(value, bool) or value is None:
        raise ValueProblem(f"{value!r} is not a price")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueProblem(f"{value!r} is not a finite price")
        return float(value)
    text = str(value).strip()
    for mark in fmt.strip:
        text = text.replace(mark, "")
    text = text.strip()
    match = _price_pattern(fmt).fullmatch(text)
    if not match:
        raise ValueProblem(f"cannot read {value!r} as a price (expected e.g. {format_price(1299, fmt)})")
    integer = match["int"].replace(fmt.thousands or "", "")
    number = float(f"{integer}.{match.groupdict().get('frac') or 0}")
    return -number if match["sign"] else number


def format_price(price: float, fmt: PriceFormat, *, grouped: bool = True) -> str:
    """The inverse of ``parse_price``: how this vendor writes a price."""
    text = f"{abs(price):,.{fmt.decimals}f}" if grouped and fmt.thousands else f"{abs(price):.{fmt.decimals}f}"
    text = text.replace(",", "\x00").replace(".", fmt.decimal).replace("\x00", fmt.thousands or "")
    return ("-" if price < 0 else "") + text


def _price_pattern(fmt: PriceFormat) -> re.Pattern[str]:
    # Thousands marks may sit anywhere between digits (Indian lakh grouping writes 1,29,999.00).
    digits = r"\d+" if not fmt.thousands else rf"\d+(?:{re.escape(fmt.thousands)}\d+)*"
    frac = rf"(?:{re.escape(fmt.decimal)}(?P<frac>\d{{1,{fmt.decimals}}}))?" if fmt.decimals else ""
    return re.compile(rf"(?P<sign>-)?\s*(?P<int>{digits}){frac}", re.ASCII)


def parse_stock(value: object, config: VendorConfig) -> bool:
    """In stock or not, read the way this vendor writes it (a quantity, a boolean or a word)."""
    kind = config.stock_kind
    if kind == "quantity":
        text = str(value).strip() if value is not None else ""
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", text, re.ASCII):
            raise ValueProblem(f"stock quantity {value!r} is not a whole number")
        return int(text) > 0
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().casefold()
        if text in {"true", "yes", "1", "y"}:
            return True
        if text in {"false", "no", "0", "n"}:
            return False
        raise ValueProblem(f"stock flag {value!r} is not true/false")
    in_stock = config.standard("stock", value)
    if in_stock is None:
        raise ValueProblem(f"stock term {value!r} is not in the map; known: {', '.join(config.synonyms['stock'])}")
    return bool(in_stock)


def parse_timestamp(value: object, fmt: TimestampFormat) -> datetime:
    """A timestamp in the vendor's format; one written without an offset is in the vendor's zone."""
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValueProblem("timestamp is empty")
    try:
        parsed = datetime.fromisoformat(text) if fmt.format == "iso" else datetime.strptime(text, fmt.format)
    except ValueError:
        raise ValueProblem(f"cannot read {text!r} as a timestamp (format {fmt.format})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=fmt.utc_offset)


def format_timestamp(moment: datetime, fmt: TimestampFormat) -> str:
    """The inverse of ``parse_timestamp``: how this vendor writes a timestamp."""
    local = moment.astimezone(fmt.utc_offset)
    return local.isoformat() if fmt.format == "iso" else local.strftime(fmt.format)


def as_text(value: object) -> str:
    """A scalar vendor value as stripped text ('' for missing)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise ValueProblem(f"expected a single value, got {value!r}")
    return str(value).strip()


def as_list(value: object, separator: str | None) -> list[str]:
    """A list-valued field: already a list (JSON, repeated XML elements) or one delimited string."""
    if value is None:
        return []
    items: list[Any] = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, (dict, list)):
            raise ValueProblem(f"expected text, got {item!r}")
        text = str(item).strip()
        parts = text.split(separator) if separator else [text]
        out.extend(p.strip() for p in parts if p.strip())
    return out
