"""Per-vendor feed configs: format, market, where each canonical field lives, and term maps.

A vendor is described by one YAML file under ``looksync/catalog/vendors/configs/``; adding a vendor is adding
a file, not a code branch. Configs are validated on load against the taxonomy, so a synonym that maps
to a category that does not exist is an error naming the file and the term, not a silent miss later.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from looksync.catalog.taxonomy import get_taxonomy
from looksync.catalog.terms import get_category_synonyms, term_key

CONFIG_DIR = Path(__file__).parent / "configs"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there
FORMATS = ("csv", "jsonl", "xml")
REQUIRED_FIELDS = ("sku", "title", "brand", "category", "gender", "price", "stock", "image_urls")
OPTIONAL_FIELDS = ("description", "colour", "pattern", "material", "sizes", "product_url", "updated_at", "currency")
STOCK_KINDS = ("quantity", "boolean", "terms")
TOP_LEVEL_KEYS = {
    "vendor", "display_name", "format", "market", "currency", "encoding", "record_tag", "size_separator",
    "colour_separator", "price_format", "stock", "updated_at", "fields", "synonyms", "sku_case_sensitive",
}  # fmt: skip


class VendorConfigError(ValueError):
    """A vendor config is missing, unreadable or inconsistent; the message names the file."""


def sku_key(sku: object, case_sensitive: bool = False) -> str:
    """A SKU's identity: NFKC (full-width -> ASCII), invisible and control characters removed, trimmed,
    inner runs of white space made one space, and case-folded unless the vendor's SKUs are
    case-sensitive. The folded form is written in upper case, so a SKU written in upper case (as most
    are) is its own key and keeps the product id it always had; ``AB-1``, `` ab-1 `` and ``ＡＢ－１`` are one
    product. '' for a SKU with nothing left."""
    text = unicodedata.normalize("NFKC", str(sku))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch.isspace())
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold().upper()


def normalise_term(term: object) -> str:
    """The key vendor terms are matched on: NFKC (full-width -> ASCII), case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", str(term)).split()).casefold()


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field sits in a vendor record.

    ``path`` is a CSV header, an XML child element, or a dotted JSON path. ``split``/``index`` take one
    segment of a delimited value ("Women > Blouses"); ``each``/``where`` collect a key from a list of
    objects (``variants[].size``, ``media[type=image].url``).
    """

    path: str
    split: str | None = None
    index: int | None = None
    each: str | None = None
    where: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PriceFormat:
    thousands: str | None = ","
    decimal: str = "."
    decimals: int = 2  # most digits allowed after the decimal mark (0: whole units only)
    strip: tuple[str, ...] = ()  # currency marks removed before parsing (the market currency's own always are)
    allow_zero: bool = False  # a price of 0 is a real price of this vendor (samples, gifts)
    max: float | None = None  # the most a price can be; None: the market's max_price (taxonomy.yaml)


@dataclass(frozen=True)
class TimestampFormat:
    format: str = "iso"  # "iso" or a strptime pattern
    utc_offset: timezone = UTC  # applied to timestamps written without an offset


@dataclass(frozen=True)
class VendorConfig:
    name: str
    display_name: str
    format: str
    market: str
    currency: str
    fields: dict[str, FieldSpec]
    synonyms: dict[str, dict[str, Any]]  # kind -> vendor term (as written) -> standard id (or bool for stock)
    price_format: PriceFormat
    stock_kind: str
    updated_at: TimestampFormat
    encoding: str = "utf-8"
    record_tag: str | None = None
    size_separator: str | None = None
    colour_separator: str | None = None
    sku_case_sensitive: bool = False  # True: `ab-1` and `AB-1` are two products of this vendor
    source: Path | None = None
    _lookup: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    _loose: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def sku_key(self, sku: object) -> str:
        """This vendor's identity key of a SKU (see the module function ``sku_key``)."""
        return sku_key(sku, self.sku_case_sensitive)

    def standard(self, kind: str, term: object) -> Any:
        """The standard id a vendor term maps to, or None when the term is not in the map."""
        found = self.match(kind, term)
        return None if found is None else found[0]

    def match(self, kind: str, term: object) -> tuple[Any, str] | None:
        """(standard id, how it was found) for a vendor term, or None. Looked up in order: the vendor's
        map as written (``vendor``: case, width and spacing ignored), the vendor's map on the loose key
        (``vendor_key``: punctuation, hyphens and plurals ignored too, ``looksync.catalog.terms``), and for
        categories the shared synonyms in every language (``synonym``)."""
        exact = self._lookup.get(kind, {}).get(normalise_term(term))
        if exact is not None:
            return exact, "vendor"
        key = term_key(term)
        if not key:
            return None
        loose = self._loose.get(kind, {}).get(key)
        if loose is not None:
            return loose, "vendor_key"
        if kind == "category":
            shared = get_category_synonyms().category(term)
            if shared is not None:
                return shared, "synonym"
        return None

    def vendor_terms(self, kind: str, standard_id: Any) -> list[str]:
        """The vendor's own words for a standard id, in config order (used to write sample feeds)."""
        return [term for term, sid in self.synonyms.get(kind, {}).items() if sid == standard_id]


def list_vendors() -> list[str]:
    """Names of the packaged vendor configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_vendor_config(name_or_path: str | Path) -> VendorConfig:
    """Load a packaged config by vendor name, or any config file by path, and validate it."""
    path = _resolve(name_or_path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise VendorConfigError(f"{path}: cannot read vendor config: {exc}") from exc
    if not isinstance(raw, dict):
        raise VendorConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    problems: list[str] = []
    config = _build(raw, path, problems)
    if problems:
        raise VendorConfigError(f"{path}: invalid vendor config: " + "; ".join(problems))
    return config


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise VendorConfigError(f"{path}: vendor config file not found")
        return path
    path = CONFIG_DIR / f"{text}.yaml"
    if not path.is_file():
        raise VendorConfigError(f"{text!r}: no packaged vendor config ({path}); known: {', '.join(list_vendors())}")
    return path


def _build(raw: dict, path: Path, problems: list[str]) -> VendorConfig | None:
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {unknown}; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    taxonomy = get_taxonomy()
    name = str(raw.get("vendor") or path.stem)
    if not re.fullmatch(r"[a-z0-9_]+", name):
        problems.append(f"vendor {name!r} must be lower-case letters, digits and underscores")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        problems.append(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    market = raw.get("market")
    if market not in taxonomy.markets:
        problems.append(f"market {market!r} is not one of {', '.join(taxonomy.markets)}")
    currency = raw.get("currency")
    if market in taxonomy.markets and currency != taxonomy.currency_of(market):
        problems.append(f"currency {currency!r} does not match market {market} ({taxonomy.currency_of(market)})")
    record_tag = raw.get("record_tag")
    if fmt == "xml" and not (isinstance(record_tag, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", record_tag)):
        problems.append(f"xml feeds need a record_tag element name, got {record_tag!r}")
    fields = _fields(raw.get("fields"), problems)
    stock_kind = (raw.get("stock") or {}).get("kind") if isinstance(raw.get("stock"), dict) else None
    if stock_kind not in STOCK_KINDS:
        problems.append(f"stock.kind {stock_kind!r} is not one of {', '.join(STOCK_KINDS)}")
    synonyms = _synonyms(raw.get("synonyms"), fields, stock_kind, problems)
    price_format = _price_format(raw.get("price_format") or {}, problems)
    updated_at = _timestamp_format(raw.get("updated_at") or {}, problems)
    if not isinstance(raw.get("sku_case_sensitive", False), bool):
        problems.append(f"sku_case_sensitive must be true or false, got {raw.get('sku_case_sensitive')!r}")
    encoding = str(raw.get("encoding") or "utf-8")
    try:
        "".encode(encoding)
    except LookupError:
        problems.append(f"encoding {encoding!r} is not a known codec")
    if problems:
        return None
    return VendorConfig(
        name=name,
        display_name=str(raw.get("display_name") or name),
        format=fmt,
        market=market,
        currency=currency,
        fields=fields,
        synonyms=synonyms,
        price_format=price_format,
        stock_kind=stock_kind,
        updated_at=updated_at,
        encoding=encoding,
        record_tag=record_tag,
        size_separator=raw.get("size_separator"),
        colour_separator=raw.get("colour_separator"),
        sku_case_sensitive=bool(raw.get("sku_case_sensitive", False)),
        source=path,
        _lookup={kind: {normalise_term(t): sid for t, sid in terms.items()} for kind, terms in synonyms.items()},
        _loose={kind: _loose_map(terms) for kind, terms in synonyms.items()},
    )


def _loose_map(terms: dict[str, Any]) -> dict[str, Any]:
    """Vendor terms by loose key; a key two terms share with different meanings is left out (the terms
    still match as written)."""
    out: dict[str, Any] = {}
    clashes: set[str] = set()
    for term, sid in terms.items():
        key = term_key(term)
        if key in out and out[key] != sid:
            clashes.add(key)
        out.setdefault(key, sid)
    return {k: v for k, v in out.items() if k and k not in clashes}


def _fields(raw: object, problems: list[str]) -> dict[str, FieldSpec]:
    if not isinstance(raw, dict):
        problems.append(f"fields must map canonical fields to paths, got {raw!r}")
        return {}
    missing = [key for key in REQUIRED_FIELDS if key not in raw]
    if missing:
        problems.append(f"fields is missing required field(s) {missing}")
    unknown = sorted(set(raw) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        problems.append(f"fields has unknown field(s) {unknown}; known: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)}")
    specs = {}
    for key, spec in raw.items():
        parsed = _field_spec(spec)
        if parsed is None:
            problems.append(f"fields.{key}: expected a path or {{path, split, index, each, where}}, got {spec!r}")
        else:
            specs[key] = parsed
    return specs


def _field_spec(spec: object) -> FieldSpec | None:
    if isinstance(spec, str) and spec:
        return FieldSpec(path=spec)
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("path"), str)
        or set(spec) - {"path", "split", "index", "each", "where"}
    ):
        return None
    if ("split" in spec) != ("index" in spec) or not isinstance(spec.get("index", 0), int):
        return None
    where = spec.get("where") or {}
    if not isinstance(where, dict):
        return None
    return FieldSpec(
        path=spec["path"],
        split=spec.get("split"),
        index=spec.get("index"),
        each=spec.get("each"),
        where=tuple((str(k), str(v)) for k, v in where.items()),
    )


def _synonyms(raw: object, fields: dict, stock_kind: object, problems: list[str]) -> dict[str, dict[str, Any]]:
    taxonomy = get_taxonomy()
    standard_ids = {
        "category": set(taxonomy.categories),
        "gender": set(taxonomy.genders),
        "colour": set(taxonomy.colours),
        "pattern": set(taxonomy.patterns),
        "stock": {True, False},
    }
    if not isinstance(raw, dict):
        problems.append(f"synonyms must be a mapping of kind -> {{vendor term: standard id}}, got {raw!r}")
        return {}
    needed = ["category", "gender"] + [k for k in ("colour", "pattern") if k in fields]
    needed += ["stock"] if stock_kind == "terms" else []
    for kind in needed:
        if not raw.get(kind):
            problems.append(f"synonyms.{kind} is missing or empty")
    result: dict[str, dict[str, Any]] = {}
    for kind, terms in raw.items():
        if kind not in standard_ids:
            problems.append(f"synonyms.{kind}: unknown kind; known: {', '.join(standard_ids)}")
            continue
        if not isinstance(terms, dict):
            problems.append(f"synonyms.{kind} must map vendor terms to standard ids, got {terms!r}")
            continue
        for term, sid in terms.items():
            if sid not in standard_ids[kind]:
                known = ", ".join(sorted(map(str, standard_ids[kind])))
                problems.append(f"synonyms.{kind}: {term!r} maps to {sid!r}, which is not a standard {kind} ({known})")
        result[kind] = {str(term): sid for term, sid in terms.items()}
    return result


def _price_format(raw: dict, problems: list[str]) -> PriceFormat:
    try:
        fmt = PriceFormat(
            thousands=raw.get("thousands", ","),
            decimal=str(raw.get("decimal", ".")),
            decimals=int(raw.get("decimals", 2)),
            strip=tuple(str(s) for s in raw.get("strip", ())),
            allow_zero=bool(raw.get("allow_zero", False)),
            max=float(raw["max"]) if raw.get("max") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"price_format {raw!r}: {exc}")
        return PriceFormat()
    if fmt.thousands == fmt.decimal or fmt.decimals < 0:
        problems.append(f"price_format {raw!r}: thousands and decimal marks must differ and decimals be >= 0")
    if fmt.decimal not in (".", ",") or (fmt.thousands is not None and fmt.thousands not in (",", ".", "'", " ")):
        problems.append(f"price_format {raw!r}: decimal must be '.' or ',' and thousands one of , . ' or a space")
    if fmt.max is not None and not fmt.max > 0:
        problems.append(f"price_format {raw!r}: max must be a positive number")
    return fmt


def _timestamp_format(raw: dict, problems: list[str]) -> TimestampFormat:
    offset = str(raw.get("utc_offset", "+00:00"))
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", offset)
    if not match:
        problems.append(f"updated_at.utc_offset {offset!r} must look like +05:30")
        return TimestampFormat()
    sign = 1 if match[1] == "+" else -1
    delta = timedelta(hours=int(match[2]), minutes=int(match[3])) * sign
    return TimestampFormat(format=str(raw.get("format", "iso")), utc_offset=timezone(delta))
