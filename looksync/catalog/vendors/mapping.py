"""One vendor record (a dict as read) -> a canonical ``Product``, or the reason it cannot be one.

Everything vendor-specific comes from the ``VendorConfig``: where each field is, how prices and
stock are written, and which vendor terms mean which standard category, gender, colour and pattern.
A category term none of those know may still be mapped by CLIP (``looksync.catalog.clip_terms``); the
product records how its category was found (``category_source``: ``rule``, ``synonym`` or ``clip``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import Product
from looksync.catalog.terms import term_key
from looksync.catalog.text import clean_display
from looksync.catalog.vendors.config import FieldSpec, VendorConfig
from looksync.catalog.vendors.values import (
    PriceProblem,
    ValueProblem,
    as_list,
    as_text,
    parse_price,
    parse_stock,
    parse_timestamp,
)

if TYPE_CHECKING:
    from looksync.catalog.clip_terms import ClipCategoryFallback

IMAGE_SCHEMES = ("http", "https", "s3", "file")  # what Product accepts; the fetch guard narrows it further
PAGE_SCHEMES = ("http", "https")  # a product page is linked from the service's pages: nothing else is safe


class RowRejected(ValueError):
    """A record cannot become a product; carries the quarantine reason."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def get_path(record: Any, path: str) -> Any:
    """The value at a CSV header / XML element name, or at a dotted path into nested dicts."""
    if not isinstance(record, dict):
        return None
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def extract(record: dict, spec: FieldSpec) -> Any:
    """Apply one field spec to a record (see ``FieldSpec``)."""
    value = get_path(record, spec.path)
    if spec.each:
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        where = dict(spec.where)
        return [
            item.get(spec.each)
            for item in items
            if isinstance(item, dict) and all(str(item.get(k)) == v for k, v in where.items())
        ]
    if spec.split and isinstance(value, str):
        parts = [part.strip() for part in value.split(spec.split)]
        try:
            return parts[spec.index or 0]
        except IndexError:
            return None
    return value


def record_sku(config: VendorConfig, record: dict) -> str:
    """The record's SKU as its identity key (``VendorConfig.sku_key``): what ``vendor_sku`` and the
    product id are made of, so two spellings of one SKU are one product."""
    sku = extract(record, config.fields["sku"])
    sku = "" if sku is None or isinstance(sku, (dict, list, bool)) else config.sku_key(sku)
    if not sku:
        raise RowRejected(Reason.MISSING_SKU, f"sku ({config.fields['sku'].path}) is missing or empty")
    return sku


def record_to_product(
    config: VendorConfig,
    record: dict,
    sku: str,
    cleaned: dict[str, list[str]] | None = None,
    category_fallback: ClipCategoryFallback | None = None,
) -> Product:
    """Map and validate one record; raises ``RowRejected`` with the first problem found. Display text
    (title, brand, description, material) is cleaned (``looksync.catalog.text``); what each field lost
    is put in ``cleaned`` when given. A category term the maps do not know goes to ``category_fallback``
    when given."""

    def display(key: str) -> str:
        text, changes = clean_display(key, _text(config, record, key))
        if changes and cleaned is not None:
            cleaned[key] = changes
        return text

    category, category_source = _category(config, record, category_fallback)
    offer = offer_values(config, record)
    values: dict[str, Any] = {
        "vendor": config.name,
        "vendor_sku": sku,
        "market": config.market,
        "category": category,
        "category_source": category_source,
        "gender": _standard(config, record, "gender", Reason.INVALID_FIELD),
        "title": display("title"),
        "brand": display("brand"),
        "description": display("description"),
        "colours": [
            _to_standard(config, "colour", term) for term in _list(config, record, "colour", config.colour_separator)
        ],
        "sizes": _list(config, record, "sizes", config.size_separator),
        "image_urls": _urls(config, _list(config, record, "image_urls", None), "image_urls", IMAGE_SCHEMES),
        "product_url": (
            _urls(config, [url], "product_url", PAGE_SCHEMES)[0]
            if (url := _text(config, record, "product_url"))
            else ""
        ),
    }
    pattern = _text(config, record, "pattern")
    values["pattern"] = _to_standard(config, "pattern", pattern) if pattern else None
    values["material"] = display("material") or None
    return _validated(values | offer)


def offer_values(config: VendorConfig, record: dict) -> dict[str, Any]:
    """The offer of a record: price (``parse_price``), currency, in stock and, when the vendor sends it,
    the update time: the fields a reprice or a restock changes (``fingerprint.OFFER_FIELDS``). Raises
    ``RowRejected`` as ``record_to_product`` does for these fields."""
    offer: dict[str, Any] = {
        "price": _price(config, record),
        "currency": _text(config, record, "currency") or config.currency,
        "in_stock": _field(config, record, "stock", lambda v: parse_stock(v, config)),
    }
    if "updated_at" in config.fields:
        offer["updated_at"] = _field(config, record, "updated_at", lambda v: parse_timestamp(v, config.updated_at))
    return offer


def with_offer(stored: dict[str, Any], offer: dict[str, Any]) -> Product:
    """A stored product (its record as a JSON object: ``ProductStore.records``), made from a row whose
    other cells the feed repeats, with a row's new offer (``offer_values``), validated as a mapped row is.
    Without an update time in the feed the product's is now, as for a mapped row. Raises ``RowRejected``."""
    return _validated({k: v for k, v in stored.items() if k != "updated_at"} | offer)


def _validated(values: dict[str, Any]) -> Product:
    try:
        return Product(**values)
    except ValidationError as exc:
        raise RowRejected(Reason.INVALID_FIELD, _describe(exc)) from None


def _urls(config: VendorConfig, urls: list[str], key: str, schemes: tuple[str, ...]) -> list[str]:
    for url in urls:
        scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
        if scheme not in schemes:
            shown = url if len(url) <= 80 else url[:77] + "..."
            what = f"has scheme {scheme + ':'!r}" if scheme else "has no scheme"
            raise RowRejected(
                Reason.URL_SCHEME,
                f"{key} ({config.fields[key].path}): {shown!r} {what}; allowed: {', '.join(s + ':' for s in schemes)}",
            )
    return urls


def _field(config: VendorConfig, record: dict, key: str, parse) -> Any:
    spec = config.fields.get(key)
    if spec is None:
        return None
    value = extract(record, spec)
    try:
        return parse(value)
    except ValueProblem as exc:
        raise RowRejected(Reason.INVALID_FIELD, f"{key} ({spec.path}): {exc}") from None


def _text(config: VendorConfig, record: dict, key: str) -> str:
    return _field(config, record, key, as_text) or ""


def _list(config: VendorConfig, record: dict, key: str, separator: str | None) -> list[str]:
    return _field(config, record, key, lambda v: as_list(v, separator)) or []


def _standard(config: VendorConfig, record: dict, kind: str, reason: Reason) -> str:
    term = _text(config, record, kind)
    return _to_standard(config, kind, term, reason)


def _category(config: VendorConfig, record: dict, fallback: ClipCategoryFallback | None) -> tuple[str, str]:
    """(standard category, source): the vendor's map (``rule``), the shared synonyms (``synonym``), or
    CLIP's nearest category at or above the threshold (``clip``)."""
    term = _text(config, record, "category")
    found = config.match("category", term) if term else None
    if found is not None:
        return found[0], "synonym" if found[1] == "synonym" else "rule"
    guess = fallback.guess(term) if term and fallback is not None else None
    if guess is not None and guess.accepted:
        return guess.category, "clip"
    clip = ""
    if guess is not None:
        clip = (f"; CLIP's nearest category {guess.category!r} at {guess.confidence:.2f} is below the threshold "
                f"{fallback.min_confidence:g} (category_clip_min_confidence)")  # fmt: skip
    elif fallback is not None and fallback.off:
        clip = f"; the CLIP fallback is off: {fallback.off}"
    raise RowRejected(Reason.UNKNOWN_CATEGORY, _unknown_term(config, "category", term) + clip)


def _to_standard(config: VendorConfig, kind: str, term: str, reason: Reason = Reason.INVALID_FIELD) -> str:
    standard = config.standard(kind, term) if term else None
    if standard is None:
        raise RowRejected(reason, _unknown_term(config, kind, term))
    return standard


def _unknown_term(config: VendorConfig, kind: str, term: str) -> str:
    where = f"{kind} ({config.fields[kind].path})"
    if not term:
        return f"{where}: value is empty; known: {_known(config, kind)}"
    shared = " nor in the shared category synonyms" if kind == "category" else ""
    return (
        f"{where}: vendor term {term!r} is not in the {config.name} {kind} map{shared} "
        f"(compared as {term_key(term)!r}, ignoring case, width, punctuation and plurals); "
        f"known: {_known(config, kind)}"
    )


def _known(config: VendorConfig, kind: str) -> str:
    terms = list(config.synonyms.get(kind, {}))
    return ", ".join(terms[:12]) + (", ..." if len(terms) > 12 else "")


def _price(config: VendorConfig, record: dict) -> float:
    spec = config.fields["price"]
    value = extract(record, spec)
    try:
        return parse_price(value, config.price_format, config.market)
    except PriceProblem as exc:
        raise RowRejected(exc.reason, f"price ({spec.path}): {exc}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "product"
        parts.append(f"{where}: {err['msg']} (got {err.get('input')!r})" if err["loc"] else f"{where}: {err['msg']}")
    return "; ".join(parts)
