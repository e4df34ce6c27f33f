"""Product groups: one item sold by several vendors or in several markets, as one canonical product with
its offers.

Whether two listings are the same item is decided in two parts. The pictures (near-duplicate image
vectors, ``looksync.pipelines.dedup``) say they look the same; ``listings_agree`` says nothing written
about them disagrees:

- brand: the same brand key (``terms.term_key``: NFKC, case-folded, punctuation dropped);
- attributes: the same category and gender, a shared colour, and the same pattern where both have one;
- titles, across languages: each title becomes a *signature*: the words every vendor config and the
  shared category synonyms know (English, Japanese, Hindi...) become the standard id they stand for
  (``colour:pink``, ``category:sweater``, ``gender:women``), the brand's words are dropped, and other
  words in scripts that separate words (model names, materials written in Latin) are kept as they are;
  unsegmented CJK that no term matched is dropped. Two titles agree when the Jaccard overlap of their
  signatures is at least ``title_min`` (``LOOKSYNC_DEDUP_TITLE_OVERLAP``). So "Roopa Women's Pink
  Striped Wool Sweater" and "Roopa ピンクボーダーウールニット" share colour, pattern and category: 3 of 5.

A group record holds the canonical product (the most complete record; the smallest product id on a
tie) and one offer per member (vendor, market, price, currency, stock, URL). Records are written as one
JSON object per catalog (``groups/groups.json`` in the configured object store) by the ingest run's
grouping step and read by the service (``ProductGroups``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from looksync.catalog.schema import Product
from looksync.catalog.terms import get_category_synonyms, term_key, term_words

log = logging.getLogger(__name__)

GROUPS_AREA = "groups"
GROUPS_KEY = "groups.json"
_ATTRIBUTE_KINDS = ("category", "colour", "pattern", "gender")
_MAX_TERM_WORDS = 4


@lru_cache(maxsize=1)
def title_lexicon() -> dict[str, frozenset[str]]:
    """Term key -> the standard ids it stands for (``kind:id``), from every packaged vendor config and
    the shared category synonyms."""
    from looksync.catalog.vendors import list_vendors, load_vendor_config

    lexicon: dict[str, set[str]] = {}
    for vendor in list_vendors():
        config = load_vendor_config(vendor)
        for kind in _ATTRIBUTE_KINDS:
            for term, standard in config.synonyms.get(kind, {}).items():
                if term_key(term):
                    lexicon.setdefault(term_key(term), set()).add(f"{kind}:{standard}")
    for key, category in get_category_synonyms().by_key.items():
        lexicon.setdefault(key, set()).add(f"category:{category}")
    return {key: frozenset(ids) for key, ids in lexicon.items()}


def _segmented(word: str) -> bool:
    """Whether a word's script separates words with spaces (so an unknown word is a word, not a run)."""
    return not any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in word)


@lru_cache(maxsize=65536)  # a listing's title is compared with every candidate of its block
def title_signature(title: str, brand: str = "") -> frozenset[str]:
    """The title as standard ids plus its other separable words, without the brand (module docstring)."""
    lexicon = title_lexicon()
    brand_words = set(term_words(brand))
    words = [w for w in term_words(title) if w not in brand_words]
    signature: set[str] = set()
    i = 0
    while i < len(words):  # longest run of words that is a known term, first
        for n in range(min(_MAX_TERM_WORDS, len(words) - i), 0, -1):
            ids = lexicon.get("".join(words[i : i + n]))
            if ids:
                signature |= ids
                i += n
                break
        else:
            word = words[i]
            if _segmented(word):
                signature.add(word)
            else:
                signature |= _unsegmented_terms(word, lexicon)
            i += 1
    return frozenset(signature)


@lru_cache(maxsize=1)
def _non_ascii_keys() -> tuple[str, ...]:
    return tuple(sorted((k for k in title_lexicon() if not k.isascii()), key=len, reverse=True))


def _unsegmented_terms(word: str, lexicon: dict[str, frozenset[str]]) -> set[str]:
    """Known terms inside a run of CJK text without spaces, longest first, each span used once."""
    found: set[str] = set()
    rest = word
    for key in _non_ascii_keys():
        if key in rest:
            found |= lexicon[key]
            rest = rest.replace(key, " ")
    return found


def title_agreement(a: Product, b: Product) -> float:
    sa, sb = title_signature(a.title, a.brand), title_signature(b.title, b.brand)
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def listings_agree(a: Product, b: Product, title_min: float) -> bool:
    """Nothing written about ``a`` and ``b`` says they are different items (module docstring)."""
    if term_key(a.brand) != term_key(b.brand) or a.category != b.category or a.gender != b.gender:
        return False
    if a.colours and b.colours and not set(a.colours) & set(b.colours):
        return False
    if a.pattern and b.pattern and a.pattern != b.pattern:
        return False
    return title_agreement(a, b) >= title_min


# ---- group records ------------------------------------------------------------------------------


def offer_of(product: Product) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "vendor": product.vendor,
        "market": product.market,
        "title": product.title,
        "price": product.price,
        "currency": product.currency,
        "in_stock": product.in_stock,
        "product_url": product.product_url,
    }


def _completeness(p: Product) -> int:
    return sum(bool(v) for v in (p.colours, p.pattern, p.material, p.sizes, p.description, p.product_url))


def canonical_product(members: Sequence[Product]) -> Product:
    """The group's canonical record: the most complete one, the smallest product id on a tie."""
    return min(members, key=lambda p: (-_completeness(p), p.product_id))


def group_records(products: Iterable[Product], groups: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Group id -> record (canonical product id, its title and brand, offers) for ``groups``
    (product id -> group id)."""
    members: dict[str, list[Product]] = {}
    for p in products:
        if groups.get(p.product_id):
            members.setdefault(groups[p.product_id], []).append(p)
    records = {}
    for gid, group in sorted(members.items()):
        canonical = canonical_product(group)
        records[gid] = {
            "group_id": gid,
            "canonical_product_id": canonical.product_id,
            "title": canonical.title,
            "brand": canonical.brand,
            "category": canonical.category,
            "markets": sorted({p.market for p in group}),
            "vendors": sorted({p.vendor for p in group}),
            "offers": [offer_of(p) for p in sorted(group, key=lambda p: p.product_id)],
        }
    return records


def order_offers(offers: Sequence[dict[str, Any]], market: str | None) -> list[dict[str, Any]]:
    """In-stock offers in the shopper's ``market`` first (cheapest first), then in-stock offers in other
    markets (by market, then price: prices in different currencies are not compared), then offers out
    of stock in the same order."""
    return sorted(offers, key=lambda o: (not o["in_stock"], o["market"] != market, o["market"], o["price"], o["product_id"]))


def write_group_records(settings, records: dict[str, dict[str, Any]]) -> str:
    """Store the catalog's group records (replacing the previous ones); returns the object's URI."""
    from looksync.catalog.object_store import default_store

    body = {"built_at": datetime.now(UTC).isoformat(timespec="seconds"), "groups": records}
    return default_store(settings, GROUPS_AREA).put_bytes(GROUPS_KEY, json.dumps(body, ensure_ascii=False).encode())


def read_group_records(settings) -> dict[str, dict[str, Any]]:
    """The stored group records ({} before the first grouping); StorageError when the store fails."""
    from looksync.catalog.object_store import default_store

    store = default_store(settings, GROUPS_AREA)
    if not store.exists(GROUPS_KEY):
        return {}
    return json.loads(store.get_bytes(GROUPS_KEY))["groups"]


class GroupsUnavailable(RuntimeError):
    """The group records could not be read; results are shown ungrouped."""


class ProductGroups:
    """The service's view of the group records: product id -> group, and a group's offers in the order
    a shopper in a market sees them. Re-read at most every ``refresh_s`` seconds (each ingest run
    rewrites them); a failed read keeps the last records and raises ``GroupsUnavailable`` for the
    caller's degraded note."""

    def __init__(self, settings, refresh_s: float = 60.0):
        self.settings = settings
        self.refresh_s = refresh_s
        self._records: dict[str, dict[str, Any]] = {}
        self._by_product: dict[str, str] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def _fresh(self) -> bool:
        return self._loaded_at is not None and time.monotonic() - self._loaded_at < self.refresh_s

    def load(self) -> None:
        if self._fresh():
            return
        with self._lock:  # one reader; the others wait for its records (the first time) or use the last ones
            if self._fresh():
                return
            try:
                records = read_group_records(self.settings)
                by_product = {o["product_id"]: gid for gid, r in records.items() for o in r["offers"]}
            except Exception as exc:  # any store failure or damaged file: results stay ungrouped, visibly
                self._loaded_at = time.monotonic()  # retried after refresh_s, not on every request
                raise GroupsUnavailable(f"product groups not read: {exc}") from exc
            self._records, self._by_product = records, by_product
            self._loaded_at = time.monotonic()

    def group_of(self, product_id: str) -> str | None:
        return self._by_product.get(product_id)

    def record(self, group_id: str) -> dict[str, Any] | None:
        return self._records.get(group_id)

    def offers(self, group_id: str, market: str | None) -> list[dict[str, Any]]:
        record = self._records.get(group_id)
        return order_offers(record["offers"], market) if record else []
