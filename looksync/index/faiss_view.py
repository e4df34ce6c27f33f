"""The in-memory search view of one embedded-index partition at one LanceDB table version.

LanceDB stays the store of record; a search reads this view instead, so it costs no LanceDB call:

* every row's product fields (no vectors; ``view_rows``: strings with few distinct values as integer
  codes, the rest in Arrow), with the filter columns as numpy arrays (``view_filters``: layer, market,
  category, gender, brand as integer codes; price; in stock; sizes as codes per row);
* the partition's saved FAISS structure (``faiss_graph``: an HNSW graph or IVF lists; "graph" below
  means either), if it has one, with the row now holding each of its labels; a label is *clean* when its product is still in the table and was not rewritten since the
  build (not in the write journal from the graph's offset on);
* the current vectors of every other row (journalled, new, or all rows when there is no graph), scored
  exactly in FAISS's flat kernels.

A query: the rows its filter lets through (cached per view for filters that repeat, ``view_filters``);
the graph searched with them as an ``IDSelectorBitmap`` over its clean labels (HNSW: a beam of
``ef_search``; IVF: ``nprobe`` lists), both widened for a selective filter; when few labels pass, or the
search comes back short, the passing labels are scored exactly (HNSW: from the graph's own flat storage;
IVF: every list probed, the selector skipping the rest); the exact rows scored; the two merged by score. A view is immutable once built: a newer table version gets a new view, swapped in by
reference (``EmbeddedIndex``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from looksync.index import faiss_graph
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.lance_filters import sql_in
from looksync.index.lance_schema import PRODUCT_COLUMNS, VECTOR_COLUMN
from looksync.index.view_filters import Allowed, AllowedSets, FilterColumns
from looksync.index.view_rows import ProductRows
from looksync.index.write_journal import WriteJournal

_ID_CHUNK = 1000


@dataclass(frozen=True)
class ViewStats:
    rows: int
    graph_rows: int  # labels in the saved graph
    clean_labels: int  # graph labels still holding their row's current vector
    exact_rows: int  # rows scored exactly (journalled, new, or every row without a graph)
    table_version: int
    graph_table_version: int | None
    bytes: int  # in-process memory (columns, codes, exact vectors, graph links or IVF ids; not the mmapped vectors)
    mapped_bytes: int  # the graph's vectors, memory-mapped from the version directory (shared by processes)


def _vectors_of(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    values = array.values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(array), dim)


class PartitionView:
    """Immutable; safe to search from many threads at once."""

    def __init__(
        self,
        columns: pa.Table,
        table_version: int,
        exact_rows: np.ndarray,
        exact_vectors: np.ndarray,
        graph: Any = None,
        graph_meta: faiss_graph.GraphMeta | None = None,
        label_rows: np.ndarray | None = None,
        graph_memory: str = "mmap",
    ):
        columns = columns.combine_chunks()  # one chunk per column: takes and masks stay cheap
        self.table_version = table_version
        self.n = columns.num_rows
        self.id_list: list[str] = columns.column("product_id").to_pylist()  # ids of hits without an Arrow call
        self.rows = ProductRows(columns, self.id_list)
        self._row_of_id: dict[str, int] | None = None
        self._exact_pos: dict[int, int] | None = None  # row -> position among the exact rows
        self._label_of_row: dict[int, int] | None = None  # row -> graph label, for clean rows
        self.filters = FilterColumns(columns)
        self.exact_rows = exact_rows.astype(np.int64)
        # exact scoring runs in FAISS's flat kernels (single-threaded per query, only the rows a
        # selector lets through), not a numpy matrix product: no gather copy, no BLAS thread pool
        self.exact_index = _flat_index(exact_vectors)
        self.graph = graph
        self.graph_meta = graph_meta
        self.graph_memory = graph_memory  # how the graph's vectors are held (faiss_graph.load)
        self.structure = None if graph_meta is None else graph_meta.structure
        self.graph_storage = None
        if graph is not None:
            assert label_rows is not None
            self.label_rows = label_rows.astype(np.int64)  # row of each label, -1 when not clean
            self.clean = self.label_rows >= 0
            self.clean_count = int(self.clean.sum())
            if self.structure == "hnsw":
                self.graph_storage = faiss_graph.flat_storage(graph)
        else:
            self.label_rows = np.zeros(0, dtype=np.int64)
            self.clean = np.zeros(0, dtype=bool)
            self.clean_count = 0
        self.allowed = AllowedSets(self.filters, self.clean, self.label_rows, self.exact_rows, self._rows_by_id)

    # ---- filters --------------------------------------------------------------------------------

    def _rows_by_id(self) -> dict[str, int]:
        if self._row_of_id is None:  # made on first use; two threads racing build the same dict
            self._row_of_id = {pid: i for i, pid in enumerate(self.id_list)}
        return self._row_of_id

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Rows passing ``filters`` (None: every row). Same semantics as ``SearchFilters.matches``."""
        return self.filters.mask(filters, self._rows_by_id() if filters and filters.exclude_ids else None)

    # ---- search ---------------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        k: int,
        filters: SearchFilters | None,
        ef_search: int,
        exact_max_rows: int,
        nprobe: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the best ``k`` rows passing ``filters``, best first. ``ef_search`` is the
        HNSW beam, ``nprobe`` the IVF lists probed; each applies to its structure only."""
        allowed = self.allowed(filters)
        scores: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        if allowed.exact_count:
            exact_s, positions = _flat_search(self.exact_index, query, k, allowed.exact)
            scores.append(exact_s)
            rows.append(self.exact_rows[positions])
        if allowed.graph_count:
            if self.structure == "ivf":
                labels_s, labels = self._ivf_search(query, k, allowed, nprobe, exact_max_rows)
            else:
                labels_s, labels = self._graph_search(query, k, allowed, ef_search, exact_max_rows)
            scores.append(labels_s)
            rows.append(self.label_rows[labels])
        if not scores:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        if len(scores) == 1:  # both come out of FAISS best first
            return scores[0], rows[0]
        all_scores = np.concatenate(scores)
        all_rows = np.concatenate(rows)
        if len(all_scores) > k:
            top = np.argpartition(-all_scores, k - 1)[:k]
            all_scores, all_rows = all_scores[top], all_rows[top]
        order = np.argsort(-all_scores, kind="stable")
        return all_scores[order], all_rows[order]

    def _graph_search(
        self, query: np.ndarray, k: int, allowed: Allowed, ef_search: int, exact_max_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        count, labels_n = allowed.graph_count, len(self.label_rows)
        if count > exact_max_rows:
            # a selective filter leaves fewer passing nodes among those HNSW visits: widen the beam
            beam = max(ef_search, k, min(4 * ef_search, math.ceil(k * labels_n / count)))
            params = allowed.params.get(beam)
            if params is None:  # made once per allowed set and beam (each attribute set costs ~20 us)
                params = faiss.SearchParametersHNSW()
                params.efSearch = beam
                if allowed.graph_bits is not None:
                    params.sel = faiss.IDSelectorBitmap(len(allowed.graph_bits), faiss.swig_ptr(allowed.graph_bits))
                allowed.params[beam] = params
            distances, labels = self.graph.search(query[None], k, params=params)
            found = labels[0] >= 0
            if found.sum() >= min(k, count):
                return distances[0][found], labels[0][found]
            # the graph ran dry under the filter while more rows match: score them exactly
        return _flat_search(self.graph_storage, query, k, allowed.graph_bits, packed=True)

    def _ivf_search(
        self, query: np.ndarray, k: int, allowed: Allowed, nprobe: int, exact_max_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        count, labels_n, nlist = allowed.graph_count, len(self.label_rows), self.graph.nlist
        if count > exact_max_rows:
            # a selective filter leaves fewer passing rows in each list: probe more of them
            probes = min(nlist, max(nprobe, min(4 * nprobe, math.ceil(nprobe * labels_n / count))))
            distances, labels = self.graph.search(query[None], k, params=self._ivf_params(allowed, probes))
            found = labels[0] >= 0
            if found.sum() >= min(k, count) or probes == nlist:
                return distances[0][found], labels[0][found]
        # few rows pass, or the probed lists ran dry under the filter: every list, so every passing
        # label is scored (the selector skips the others before any distance is computed)
        distances, labels = self.graph.search(query[None], min(k, count), params=self._ivf_params(allowed, nlist))
        found = labels[0] >= 0
        return distances[0][found], labels[0][found]

    def _ivf_params(self, allowed: Allowed, probes: int) -> Any:
        import faiss

        params = allowed.params.get(probes)
        if params is None:  # made once per allowed set and probe count, as the HNSW ones
            params = faiss.SearchParametersIVF()
            params.nprobe = probes
            if allowed.graph_bits is not None:
                params.sel = faiss.IDSelectorBitmap(len(allowed.graph_bits), faiss.swig_ptr(allowed.graph_bits))
            allowed.params[probes] = params
        return params

    # ---- lookups by id ---------------------------------------------------------------------------

    def row_of(self, product_id: str) -> int | None:
        """The row of ``product_id`` in this view, or None."""
        return self._rows_by_id().get(product_id)

    def vector_of_row(self, row: int) -> np.ndarray | None:
        """The stored vector of a row: from the exact rows (journalled or new, their current vector) or
        from the graph (rows it holds unchanged: HNSW's flat storage, IVF's direct map). None if neither
        has it."""
        if self._exact_pos is None:
            self._exact_pos = {r: i for i, r in enumerate(self.exact_rows.tolist())}
        position = self._exact_pos.get(row)
        if position is not None:
            return self.exact_index.reconstruct(position)
        if self.graph is None:
            return None
        if self._label_of_row is None:
            clean = np.flatnonzero(self.clean)
            self._label_of_row = dict(zip(self.label_rows[clean].tolist(), clean.tolist(), strict=True))
        label = self._label_of_row.get(row)
        return None if label is None else self.graph.reconstruct(label)

    # ---- results --------------------------------------------------------------------------------

    def products(self, rows: list[int]) -> list[dict[str, Any]]:
        return self.rows.dicts(rows)

    def ids(self, rows: np.ndarray) -> list[str]:
        return [self.id_list[r] for r in rows.tolist()]

    def stats(self) -> ViewStats:
        own = self.rows.nbytes + self.filters.nbytes + self.allowed.nbytes
        own += sum(sys.getsizeof(pid) for pid in self.id_list) + 8 * len(self.id_list)
        own += self.exact_rows.nbytes + self.exact_index.ntotal * self.exact_index.d * 4
        mapped = 0
        if self.graph is not None:
            vectors = self.graph.ntotal * self.graph.d * 4
            if self.graph_memory == "mmap":
                mapped = vectors
            else:
                own += vectors
            if self.structure == "ivf":  # each list's ids, the direct map, the centroids
                own += self.graph.ntotal * 16 + self.graph.nlist * self.graph.d * 4
            else:
                hnsw = self.graph.hnsw
                own += hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
            own += self.label_rows.nbytes + self.clean.nbytes
        return ViewStats(
            rows=self.n,
            graph_rows=0 if self.graph is None else int(self.graph.ntotal),
            clean_labels=self.clean_count,
            exact_rows=len(self.exact_rows),
            table_version=self.table_version,
            graph_table_version=None if self.graph_meta is None else self.graph_meta.table_version,
            bytes=int(own),
            mapped_bytes=int(mapped),
        )


def _flat_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _flat_search(
    index: Any, query: np.ndarray, k: int, allowed: np.ndarray | None, packed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products over a flat index's rows (only the ``allowed`` ones: a bool per
    row, or with ``packed`` a little-endian bitmap of them; None: every row)."""
    import faiss

    params = None
    if allowed is not None:
        bitmap = allowed if packed else np.packbits(allowed, bitorder="little")
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    distances, labels = index.search(query[None], min(k, index.ntotal), params=params)
    found = labels[0] >= 0
    return distances[0][found], labels[0][found]


def load_view(
    table: Any, table_version: int, dim: int, search_dir: Path, use_graph: bool = True, memory: str = "mmap"
) -> PartitionView:
    """The view of ``table`` (a LanceDB table handle checked out at ``table_version``) with the graph and
    journal under ``search_dir`` (its vectors held as ``memory`` says, see ``faiss_graph.load``). One
    column scan; vectors are read only for rows the graph lacks."""
    meta = faiss_graph.read_meta(search_dir) if use_graph else None
    if meta is not None and (meta.table_version > table_version or meta.dim != dim):
        meta = None  # built from a version this reader does not see (or another model's): exact search
    graph = graph_ids = None
    for _ in range(3):
        if meta is None:
            break
        try:
            graph, graph_ids = faiss_graph.load(search_dir, meta, memory)
            break
        except FileNotFoundError:
            meta = faiss_graph.read_meta(search_dir)  # a newer build replaced the files meanwhile
            if meta is not None and meta.table_version > table_version:
                meta = None
    if meta is not None and graph is None:
        raise IndexBackendError(f"{search_dir}: the search graph kept changing while being loaded")

    if graph is None:
        data = table.search().select([*PRODUCT_COLUMNS, VECTOR_COLUMN]).limit(None).to_arrow()
        vectors = _vectors_of(data.column(VECTOR_COLUMN), dim)
        columns = data.select(list(PRODUCT_COLUMNS))
        return PartitionView(columns, table_version, np.arange(columns.num_rows), vectors)

    columns = table.search().select(list(PRODUCT_COLUMNS)).limit(None).to_arrow()
    row_of = {pid: i for i, pid in enumerate(columns.column("product_id").to_pylist())}
    dirty = WriteJournal(search_dir).written_since(meta.journal_offset)
    label_rows = np.fromiter(
        (-1 if pid in dirty else row_of.get(pid, -1) for pid in graph_ids), dtype=np.int64, count=len(graph_ids)
    )
    in_graph = np.zeros(columns.num_rows, dtype=bool)
    in_graph[label_rows[label_rows >= 0]] = True
    exact_rows = np.flatnonzero(~in_graph)
    exact_vectors = np.zeros((0, dim), dtype=np.float32)
    if len(exact_rows):
        wanted = columns.column("product_id").take(pa.array(exact_rows)).to_pylist()
        found: dict[str, np.ndarray] = {}
        if len(wanted) * 5 > columns.num_rows:  # many: one scan is cheaper than IN lists
            data = table.search().select(["product_id", VECTOR_COLUMN]).limit(None).to_arrow()
            chunks = [data]
        else:
            chunks = [
                table.search().where(sql_in("product_id", wanted[s : s + _ID_CHUNK])).select(["product_id", VECTOR_COLUMN])
                .limit(None).to_arrow()
                for s in range(0, len(wanted), _ID_CHUNK)
            ]  # fmt: skip
        need = set(wanted)
        for chunk in chunks:
            matrix = _vectors_of(chunk.column(VECTOR_COLUMN), dim)
            for i, pid in enumerate(chunk.column("product_id").to_pylist()):
                if pid in need:
                    found[pid] = matrix[i]
        missing = need - found.keys()
        if missing:
            raise IndexBackendError(f"{search_dir}: rows vanished from table version {table_version} while read: {sorted(missing)[:5]}")
        exact_vectors = np.stack([found[pid] for pid in wanted])
    return PartitionView(columns, table_version, exact_rows, exact_vectors, graph, meta, label_rows, memory)


@dataclass(frozen=True)
class _Entry:
    view: PartitionView
    stamp: Any  # (table version, graph meta stamp) the view was built for
    checked_at: float


class ViewCache:
    """The views of one ``EmbeddedIndex`` handle, keyed by (version, partition).

    A view is re-checked (one LanceDB version check and one stat of the graph meta) at most every
    ``refresh_s`` seconds (0: on every search) and rebuilt when the table version or the graph changed.
    A rebuild happens under a per-partition lock while other threads keep searching the old view, then
    the new one is swapped in by reference; a view in use is never changed."""

    def __init__(self, refresh_s: float):
        self.refresh_s = refresh_s
        self._entries: dict[tuple[str, Any], _Entry] = {}
        self._locks: dict[tuple[str, Any], threading.Lock] = {}
        self._guard = threading.Lock()
        self._touched: dict[str, float] = {}  # version -> when this handle last wrote to it
        self.builds = 0  # views built by this handle (tests and the benchmark read it)

    def _lock(self, ident: tuple[str, Any]) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(ident)
            if lock is None:
                lock = self._locks[ident] = threading.Lock()
            return lock

    def get(self, ident: tuple[str, Any], probe, load) -> PartitionView:
        """``probe()`` -> the stamp now (cheap); ``load(stamp)`` -> a fresh view for that stamp."""
        entry = self._entries.get(ident)
        if entry is not None and time.monotonic() - entry.checked_at < self.refresh_s:
            return entry.view
        lock = self._lock(ident)
        if entry is not None and not lock.acquire(blocking=False):
            return entry.view  # another thread is refreshing it; this search reads the current one
        if entry is None:
            lock.acquire()
        try:
            entry = self._entries.get(ident)
            if entry is not None and time.monotonic() - entry.checked_at < self.refresh_s:
                return entry.view
            checked_at = time.monotonic()
            stamp = probe()
            if entry is None or entry.stamp != stamp:
                entry = _Entry(load(stamp), stamp, checked_at)
                self.builds += 1
            else:
                entry = _Entry(entry.view, entry.stamp, checked_at)
            self._entries[ident] = entry
            return entry.view
        finally:
            lock.release()

    def cached(self, ident: tuple[str, Any]) -> PartitionView | None:
        entry = self._entries.get(ident)
        return None if entry is None else entry.view

    def touch(self, version: str) -> None:
        """This handle wrote to ``version``: re-check its views on the next search."""
        self._touched[version] = time.monotonic()
        for ident, entry in list(self._entries.items()):
            if ident[0] == version:
                self._entries[ident] = _Entry(entry.view, entry.stamp, -math.inf)

    def touched(self, version: str, since: float) -> bool:
        """Whether this handle wrote to ``version`` at or after ``since`` (a monotonic time)."""
        return self._touched.get(version, -math.inf) >= since

    def forget(self, version: str) -> None:
        for ident in [i for i in self._entries if i[0] == version]:
            self._entries.pop(ident, None)
