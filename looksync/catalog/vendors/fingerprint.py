"""What a row's mapping depends on, as one digest: so a stored product can say "I was made from this row".

A feed row becomes a product through the vendor's config, the taxonomy, the shared category synonyms
and the code of the readers, the mapping and the product schema. ``mapping_fingerprint`` hashes all of
them; ``row_key`` joins it with a row's digest (``RawRecord.digest``). Two rows with one key map to one
product, so a row whose key a stored product carries needs no mapping again; a change to any of those
inputs (an edited config, a new synonym, a code change) changes every key, and every row is mapped again
once.
"""

from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from pathlib import Path

from looksync.catalog.vendors.config import VendorConfig

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
    h = hashlib.blake2b(digest_size=16)
    for name in _MAPPING_MODULES:
        __import__(name)
        h.update(name.encode())
        h.update(Path(sys.modules[name].__file__).read_bytes())
    return h.digest()


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
