"""The filter side of a partition's search view: its filter columns, and the rows a filter lets through.

The filter columns are kept as numpy arrays (layer, market, category, gender, brand and each row's sizes
as integer codes; price; in stock). ``FilterColumns.mask`` is the rows passing a ``SearchFilters``, with the
semantics of ``SearchFilters.matches``.

Look queries repeat their filters: every look in a market asks for the same few categories and genders.
``AllowedSets`` keeps, per view, what such a filter lets through in the form the search needs (a packed
bitmap over the graph's labels for FAISS's ``IDSelectorBitmap``, a boolean mask over the exactly scored
rows, and their counts), keyed by the filter's *repeating* part (every constraint but the price bounds
and excluded ids, which vary per request and are applied on top). A repeated filter then costs no pass
over the partition's rows. The cache is bounded (least recently used out) and belongs to one immutable
view, so a write, which makes a new view, starts a new one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from looksync.index.base import SearchFilters

CODED = ("layer", "market", "category", "gender", "brand")
_PER_REQUEST = {"price_min": None, "price_max": None, "exclude_ids": None}  # not part of a cache key


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, dict[str, int]]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, {v: i for i, v in enumerate(encoded.dictionary.to_pylist())}


def _lookup(codes: np.ndarray, vocab: dict[str, int], values: list[str]) -> np.ndarray:
    """Rows whose code is one of ``values`` (a lookup table indexed by code + 1; -1 is null)."""
    table = np.zeros(len(vocab) + 1, dtype=bool)
    for value in values:
        code = vocab.get(value)
        if code is not None:
            table[code + 1] = True
    return table[codes + 1]


class FilterColumns:
    """The filter columns of one view's rows (``columns``: the view's product columns, one chunk each)."""

    def __init__(self, columns: pa.Table):
        self.n = columns.num_rows
        self.codes: dict[str, np.ndarray] = {}
        self.vocab: dict[str, dict[str, int]] = {}
        for name in CODED:
            self.codes[name], self.vocab[name] = _codes(columns.column(name))
        self.price = columns.column("price").combine_chunks().fill_null(np.nan).to_numpy(zero_copy_only=False)
        self.in_stock = columns.column("in_stock").combine_chunks().fill_null(False).to_numpy(zero_copy_only=False)
        sizes = columns.column("sizes").combine_chunks().fill_null([])
        lengths = pc.list_value_length(sizes).to_numpy(zero_copy_only=False)
        self.size_rows = np.repeat(np.arange(self.n, dtype=np.int64), lengths)
        self.size_codes, self.vocab["sizes"] = _codes(pc.list_flatten(sizes))
        self.row_of_id: dict[str, int] | None = None  # set by the view on first use

    @property
    def nbytes(self) -> int:
        return (
            sum(c.nbytes for c in self.codes.values()) + self.price.nbytes + self.in_stock.nbytes
            + self.size_rows.nbytes + self.size_codes.nbytes
        )  # fmt: skip

    def _in(self, name: str, values: list[str]) -> np.ndarray:
        return _lookup(self.codes[name], self.vocab[name], values)

    def mask(self, filters: SearchFilters | None, row_of_id: dict[str, int] | None = None) -> np.ndarray | None:
        """Rows passing ``filters`` (None: every row). ``row_of_id`` maps product ids to rows; it is
        needed only for ``exclude_ids``."""
        if filters is None:
            return None
        mask: np.ndarray | None = None

        def both(part: np.ndarray) -> None:
            nonlocal mask
            mask = part if mask is None else mask & part

        if filters.layers:
            both(
                pc.is_in(self.columns.column("layer"), pa.array(filters.layers, pa.string())).to_numpy(
                    zero_copy_only=False
                )
            )
        if filters.market:
            both(
                pc.equal(self.columns.column("market"), filters.market).fill_null(False).to_numpy(zero_copy_only=False)
            )
        if filters.categories:
            both(self._in("category", filters.categories))
        if filters.genders:
            both(self._in("gender", filters.genders))
        if filters.brands_include:
            both(self._in("brand", filters.brands_include))
        if filters.brands_exclude:
            both(~self._in("brand", filters.brands_exclude))
        if filters.price_min is not None:
            both(self.price >= float(filters.price_min))
        if filters.price_max is not None:
            both(self.price <= float(filters.price_max))
        if filters.sizes:
            has = np.zeros(self.n, dtype=bool)
            has[self.size_rows[_lookup(self.size_codes, self.vocab["sizes"], filters.sizes)]] = True
            both(has)
        if filters.in_stock is not None:
            both(self.in_stock == bool(filters.in_stock))
        if filters.exclude_ids:
            assert row_of_id is not None, "exclude_ids needs the view's rows by id"
            keep = np.ones(self.n, dtype=bool)
            keep[[row_of_id[pid] for pid in filters.exclude_ids if pid in row_of_id]] = False
            both(keep)
        return mask


@dataclass(frozen=True)
class Allowed:
    """What a filter lets through in one view. ``graph_bits`` is None when every clean graph label
    passes (no selector needed); ``exact`` is None when every exactly scored row passes."""

    graph_bits: np.ndarray | None  # packed (little-endian) bitmap over graph labels
    graph_count: int
    exact: np.ndarray | None  # bool per exactly scored row
    exact_count: int
    # FAISS search parameters (selector and HNSW beam or IVF probes) made for it, by that number: read-only
    # in a search, so shared
    params: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return (0 if self.graph_bits is None else self.graph_bits.nbytes) + (
            0 if self.exact is None else self.exact.nbytes
        )


def _key(filters: SearchFilters) -> tuple:
    """The repeating part of ``filters`` as a hashable key: lists as sorted tuples (their semantics are
    sets), empty lists as None (they constrain nothing)."""

    def norm(values: list[str] | None) -> tuple[str, ...] | None:
        return tuple(sorted(set(values))) if values else None

    return (
        norm(filters.layers), filters.market or None, norm(filters.categories), norm(filters.genders),
        norm(filters.brands_include), norm(filters.brands_exclude), norm(filters.sizes), filters.in_stock,
    )  # fmt: skip


class AllowedSets:
    """``Allowed`` per filter for one view, cached by the filter's repeating part (see the module)."""

    def __init__(
        self,
        columns: FilterColumns,
        clean: np.ndarray,
        label_rows: np.ndarray,
        exact_rows: np.ndarray,
        row_of_id: Any,
        capacity: int = 64,
    ):
        self.columns = columns
        self.clean = clean  # bool per graph label: its row still holds the label's vector
        self.safe_rows = np.where(clean, label_rows, 0)
        self.exact_rows = exact_rows
        self.row_of_id = row_of_id  # () -> {product id: row}, made on first use by the view
        self.capacity = capacity
        self._cache: OrderedDict[tuple, Allowed] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0  # entries computed (tests read it)
        clean_count = int(clean.sum())
        every = clean_count == len(clean)
        self._everything = Allowed(
            None if every else np.packbits(clean, bitorder="little"), clean_count, None, len(exact_rows)
        )

    def __call__(self, filters: SearchFilters | None) -> Allowed:
        if filters is None:
            return self._everything
        key = _key(filters)
        with self._lock:
            base = self._cache.get(key)
            if base is not None:
                self._cache.move_to_end(key)
        if base is None:
            repeating = replace(filters, **_PER_REQUEST)
            base = self._compute(self.columns.mask(repeating))
            with self._lock:
                self.misses += 1
                self._cache[key] = base
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        if filters.price_min is None and filters.price_max is None and not filters.exclude_ids:
            return base
        only = SearchFilters(price_min=filters.price_min, price_max=filters.price_max, exclude_ids=filters.exclude_ids)
        return self._narrow(base, self.columns.mask(only, self.row_of_id() if filters.exclude_ids else None))

    def _compute(self, mask: np.ndarray | None) -> Allowed:
        if mask is None:
            return self._everything
        return self._allowed(self.clean & mask[self.safe_rows], mask[self.exact_rows])

    def _allowed(self, graph: np.ndarray, exact: np.ndarray) -> Allowed:
        graph_count, exact_count = int(graph.sum()), int(exact.sum())
        return Allowed(
            None if graph_count == len(graph) else np.packbits(graph, bitorder="little"), graph_count,
            None if exact_count == len(exact) else exact, exact_count,
        )  # fmt: skip

    def _narrow(self, base: Allowed, mask: np.ndarray | None) -> Allowed:
        """``base`` ANDed with a per-request ``mask`` over rows."""
        if mask is None:
            return base
        graph = mask[self.safe_rows] & self.clean
        if base.graph_bits is not None:
            graph &= np.unpackbits(base.graph_bits, count=len(self.clean), bitorder="little").view(bool)
        exact = mask[self.exact_rows]
        if base.exact is not None:
            exact &= base.exact
        return self._allowed(graph, exact)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for a in self._cache.values()) + self.safe_rows.nbytes
