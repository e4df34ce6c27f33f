"""Turning vendor-written values (prices, stock, timestamps, lists) into typed ones.

The one place that parses prices: ingestion, the sample generator's tests and anything else that
reads a vendor's price string call ``parse_price`` with the vendor's ``PriceFormat``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from looksync.catalog.quarantine import Reason
from looksync.catalog.vendors.config import PriceFormat, TimestampFormat, VendorConfig


class ValueProblem(ValueError):
    """A vendor value cannot be read; the message names the value."""


class PriceProblem(ValueProblem):
    """A price that cannot be stored; ``reason`` is its quarantine code (``bad_price``: unreadable,
    ``negative_price``: below zero, ``-0`` included, ``price_out_of_range``: zero or absurdly large)."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason


# Marks a price may carry, by currency. The vendor's own ``price_format.strip`` marks are removed too; a
# mark of another currency is refused (a feed in the wrong currency is not a price in the market's).
CURRENCY_MARKS: dict[str, tuple[str, ...]] = {
    "INR": ("₹", "Rs.", "Rs", "INR"),
    "USD": ("US$", "$", "USD"),
    "JPY": ("¥", "円", "JPY"),
    "EUR": ("€", "EUR"),
    "GBP": ("£", "GBP"),
    "CNY": ("CN¥", "RMB", "CNY", "元"),
}
_MINUS = ("-", "\u2212", "\u2013")  # hyphen-minus, the minus sign, an en dash typed as one


def parse_price(value: object, fmt: PriceFormat, market: str | None = None) -> float:
    """A price as the vendor writes it -> float; the one price parser of every feed format.

    Text is read after NFKC (full-width digits ``１２００``, ``￥``, no-break spaces), with the vendor's
    decimal and grouping marks (``1,299.00``; ``1.299,00`` for a vendor whose ``price_format`` says
    ``decimal: ","``; spaces group digits for every vendor: ``1 299,00``), the currency marks of the
    market's currency (or the vendor's ``strip`` list) before or after the number. Numbers (JSON) and
    text get the same checks: finite, at most ``decimals`` decimal digits, not negative (``-0``
    included), not zero unless ``price_format.allow_zero``, not above the market's ``max_price`` (or
    ``price_format.max``). Raises ``PriceProblem`` with the quarantine reason and a message naming the
    value."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise PriceProblem(Reason.BAD_PRICE, f"{value!r} is not a price")
    currency, cap = _market_terms(fmt, market)
    if isinstance(value, (int, float)):
        number, negative = _number(value)
    else:
        number, negative = _text_price(str(value), fmt, currency)
    shown = _shown(value)
    decimals = -number.as_tuple().exponent if number.is_finite() else 0
    if isinstance(decimals, int) and decimals > max(fmt.decimals, 0) and number != number.to_integral_value():
        raise PriceProblem(Reason.BAD_PRICE, f"{shown} has more than {fmt.decimals} decimal digit(s)")
    if negative:
        raise PriceProblem(Reason.NEGATIVE_PRICE, f"{shown} is negative (a price cannot be below zero, -0 included)")
    if number == 0 and not fmt.allow_zero:
        raise PriceProblem(Reason.PRICE_OUT_OF_RANGE, f"{shown} is zero (set price_format.allow_zero for free items)")
    if cap is not None and number > cap:
        raise PriceProblem(
            Reason.PRICE_OUT_OF_RANGE, f"{shown} is above the most a price can be ({cap:,.0f} {currency})"
        )
    return float(number)


def _shown(value: object) -> str:
    """A value as messages show it: its repr, cut short (a 5 MB field is not copied into the quarantine)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _market_terms(fmt: PriceFormat, market: str | None) -> tuple[str | None, float | None]:
    if market is None:
        return None, fmt.max
    from looksync.catalog.taxonomy import get_taxonomy

    info = get_taxonomy().markets[market]
    return info.currency, fmt.max if fmt.max is not None else info.max_price


def _number(value: int | float) -> tuple[Decimal, bool]:
    if isinstance(value, float) and not math.isfinite(value):
        raise PriceProblem(Reason.BAD_PRICE, f"{value!r} is not a finite price")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return abs(number), math.copysign(1, value) < 0 if isinstance(value, float) else value < 0


def _text_price(raw: str, fmt: PriceFormat, currency: str | None) -> tuple[Decimal, bool]:
    text = " ".join(unicodedata.normalize("NFKC", raw[:200]).split()) if len(raw) <= 200 else "\x00"
    if not text:
        raise PriceProblem(Reason.BAD_PRICE, "price is empty")
    marks = _marks(fmt, currency)
    text = _strip_marks(text, marks)
    negative = False
    if text.startswith("(") and text.endswith(")"):  # accounting style: (499.00)
        text, negative = text[1:-1].strip(), True
    for minus in _MINUS:
        if text.startswith(minus) or text.endswith(minus):
            text, negative = text.strip(minus).strip(), True
            break
    text = _strip_marks(text, marks)  # "-₹499" and "₹-499" alike
    match = _price_pattern(fmt).fullmatch(text)
    if not match:
        raise PriceProblem(Reason.BAD_PRICE, _unreadable(raw, text, fmt, currency))
    groups = re.split(r"[^0-9]", match["int"])
    if len(groups) > 1 and not all(len(g) in (2, 3) for g in groups[1:]) or len(groups) > 1 and len(groups[-1]) != 3:
        raise PriceProblem(
            Reason.BAD_PRICE, f"cannot read {_shown(raw)} as a price: digit groups {groups} are not thousands"
        )
    number = Decimal(f"{''.join(groups)}.{match['frac'] or 0}")
    return number, negative


@lru_cache(maxsize=64)
def _marks(fmt: PriceFormat, currency: str | None) -> tuple[str, ...]:
    """The marks a price of this vendor may carry, longest first, as text is compared after NFKC."""
    marks = sorted({*fmt.strip, *(CURRENCY_MARKS.get(currency or "", ()))}, key=len, reverse=True)
    return tuple(unicodedata.normalize("NFKC", m) for m in marks)


def _strip_marks(text: str, marks: tuple[str, ...]) -> str:
    for mark in marks:
        if text.startswith(mark):
            return text[len(mark) :].strip()
        if text.endswith(mark):
            return text[: -len(mark)].strip()
    return text


def _unreadable(raw: str, text: str, fmt: PriceFormat, currency: str | None) -> str:
    expected = f"expected e.g. {format_price(1299, fmt)}"
    for other, marks in CURRENCY_MARKS.items():
        if (
            other != currency
            and any(m in text for m in marks)
            and not any(m in text for m in CURRENCY_MARKS.get(currency or "", ()))
        ):
            return f"{_shown(raw)} is in another currency ({other}), not {currency or 'the market currency'}"
    swapped = PriceFormat(thousands=fmt.decimal, decimal=fmt.thousands or ",", decimals=fmt.decimals)
    if fmt.thousands and "," in text and "." in text and _price_pattern(swapped).fullmatch(text):
        return (
            f"{_shown(raw)} uses {fmt.thousands!r} as its decimal mark, but this vendor writes {fmt.decimal!r} "
            f"(price_format.decimal); {expected}"
        )
    if re.search(r"\d[eE][+-]?\d", text):
        return f"{_shown(raw)} is in scientific notation, not a price; {expected}"
    return f"cannot read {_shown(raw)} as a price ({expected})"


def format_price(price: float, fmt: PriceFormat, *, grouped: bool = True) -> str:
    """The inverse of ``parse_price``: how this vendor writes a price."""
    text = f"{abs(price):,.{fmt.decimals}f}" if grouped and fmt.thousands else f"{abs(price):.{fmt.decimals}f}"
    text = text.replace(",", "\x00").replace(".", fmt.decimal).replace("\x00", fmt.thousands or "")
    return ("-" if price < 0 else "") + text


@lru_cache(maxsize=64)
def _price_pattern(fmt: PriceFormat) -> re.Pattern[str]:
    # Grouping marks may sit between any digits here (Indian lakh grouping writes 1,29,999.00); the
    # group sizes are checked after the match. A space groups digits for every vendor (1 299,00).
    marks = re.escape(fmt.thousands or "") + " " if fmt.thousands else " "
    digits = rf"\d+(?:[{marks}]\d+)*"
    frac = rf"(?:{re.escape(fmt.decimal)}(?P<frac>\d+))?"
    return re.compile(rf"(?P<int>{digits}){frac}", re.ASCII)


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
