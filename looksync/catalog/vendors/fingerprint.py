"""What a row's mapping depends on, as one digest: so a stored product can say "I was made from this row".

A feed row becomes a product through the vendor's config, the taxonomy, the shared category synonyms
and the code of the readers, the mapping and the product schema. ``mapping_fingerprint`` hashes all of
them; ``row_key`` joins it with a row's digest (``RawRecord.digest``). Two rows with one key map to one
product, so a row whose key a stored product carries needs no mapping again; a change to any of those
inputs (an edited config, a new synonym, a code change) changes every key, and every row is mapped again
once.

A row also has an *offer key* (``offer_key``): the same digest over the row without the cells its offer
is read from (``OFFER_FIELDS``: price, currency, stock, update time). A row whose offer key a stored
product carries differs from that product's row in its offer cells at most, so the product it maps to is
the stored one with the row's offer (``mapping.offer_values``, ``mapping.with_offer``): a reprice or a
restock is read without mapping the row. A vendor whose offer cells also feed another field (one cell
read by two fields) has no offer keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from looksync.catalog.vendors.config import VendorConfig
from looksync.code_digest import modules_digest

# the modules a row passes through on its way to a product; their source is part of the fingerprint
_MAPPING_MODULES = (
    "looksync.catalog.vendors.readers",
    "looksync.catalog.vendors.mapping",
    "looksync.catalog.vendors.values",
    "looksync.catalog.vendors.config",
    "looksync.catalog.vendors.feed",
    "looksync.catalog.vendors.fingerprint",
    "looksync.catalog.schema",
    "looksync.catalog.taxonomy",
    "looksync.catalog.terms",
    "looksync.catalog.text",
)


@lru_cache(maxsize=1)
def _code_digest() -> bytes:
    return modules_digest(_MAPPING_MODULES)


def mapping_fingerprint(config: VendorConfig, extra: bytes = b"") -> bytes:
    """A digest of everything that maps this vendor's rows (``extra``: what the caller's own later steps
    depend on, e.g. settings of standardisation)."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.catalog.terms import get_category_synonyms

    h = hashlib.blake2b(digest_size=16)
    h.update(_code_digest())
    if config.source is not None and Path(config.source).is_file():
        h.update(Path(config.source).read_bytes())
    for part in (repr(config), repr(get_taxonomy()), repr(get_category_synonyms())):
        h.update(part.encode("utf-8", "backslashreplace"))
        h.update(b"\x00")
    h.update(extra)
    return h.digest()


def row_key(fingerprint: bytes, digest: bytes) -> str:
    """The key a stored product carries for the row it was made from (hex, 32 characters)."""
    return hashlib.blake2b(fingerprint + digest, digest_size=16).hexdigest()


# the fields ``mapping.offer_values`` reads: what a reprice or a restock changes
OFFER_FIELDS = ("price", "currency", "stock", "updated_at")


def offer_roots(config: VendorConfig) -> frozenset[str] | None:
    """The record keys a row's offer is read from (a field's path, and the first key of a dotted path),
    or None when one of them is also read by another field: then no cell is the offer's alone."""

    def roots(wanted: bool) -> set[str]:
        specs = [spec for name, spec in config.fields.items() if (name in OFFER_FIELDS) == wanted]
        return {root for spec in specs for root in (spec.path, spec.path.split(".")[0])}

    offer = roots(True)
    return None if offer & roots(False) else frozenset(offer)


def offer_key(fingerprint: bytes, roots: frozenset[str], record: Mapping[str, Any]) -> str:
    """The key of a row read as ``record`` (a dict) without its offer cells (``offer_roots``)."""
    rest = repr([(k, v) for k, v in record.items() if k not in roots])
    digest = hashlib.blake2b(b"offer\x00" + rest.encode("utf-8", "surrogateescape"), digest_size=16).digest()
    return row_key(fingerprint, digest)
