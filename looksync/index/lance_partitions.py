"""Partitions of an embedded index version: one LanceDB table per (layer, market).

Every look query filters by layer and market, so the embedded backend keeps each (layer, market) in a
table of its own (with its own ANN index once large enough) and a query only searches the partitions its
filters can match; the remaining filters run inside them. Table names encode the key reversibly:
``p-<layer>.<market>`` with every character outside ``[A-Za-z0-9_]`` written as ``-`` + 6 hex digits.
"""

from __future__ import annotations

import copy
import re

from looksync.index.base import SearchFilters

Key = tuple[str, str]  # (layer, market)

_PREFIX = "p-"
_ESCAPE = re.compile(r"-([0-9a-f]{6})")


def _encode(value: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c == "_" else f"-{ord(c):06x}" for c in value)


def _decode(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def table_name(layer: str, market: str) -> str:
    return f"{_PREFIX}{_encode(layer)}.{_encode(market)}"


def key_of(name: str) -> Key | None:
    """The (layer, market) a table name stands for, or None for a name that is not a partition's."""
    if not name.startswith(_PREFIX) or name.count(".") != 1:
        return None
    layer, market = name[len(_PREFIX) :].split(".")
    return _decode(layer), _decode(market)


def _layers_of_categories(categories: list[str]) -> set[str] | None:
    """The layers the categories belong to (a product's layer is its category's, the schema checks it),
    or None when one is not in the taxonomy (then categories narrow nothing here)."""
    from looksync.catalog.taxonomy import TaxonomyError, get_taxonomy

    taxonomy = get_taxonomy()
    try:
        return {taxonomy.layer_of(c) for c in categories}
    except TaxonomyError:
        return None


def wanted(filters: SearchFilters | None) -> tuple[set[str] | None, set[str] | None]:
    """The layers and markets a search with ``filters`` can match (None: any)."""
    if filters is None:
        return None, None
    layers = set(filters.layers) if filters.layers else None
    if filters.categories:
        implied = _layers_of_categories(filters.categories)
        if implied is not None:
            layers = implied if layers is None else layers & implied
    markets = {filters.market} if filters.market else None
    return layers, markets


def routed(keys: list[Key], filters: SearchFilters | None) -> list[Key]:
    """The partitions among ``keys`` a search with ``filters`` must look in, sorted."""
    layers, markets = wanted(filters)
    return sorted(k for k in keys if (layers is None or k[0] in layers) and (markets is None or k[1] in markets))


def inner_filters(filters: SearchFilters | None) -> SearchFilters | None:
    """``filters`` without the layer and market constraints, which the routing already applied (every
    row of a routed partition passes them)."""
    if filters is None:
        return None
    inner = copy.copy(filters)  # a shallow copy: ~5x cheaper than dataclasses.replace, on every search
    inner.layers = inner.market = None
    return inner
