"""Reads of the embedded index: ``search`` (through the partitions' in-memory FAISS search views, or
LanceDB's own search), ``get``, ``vectors`` and ``count``. A search opens only the partitions its
filters route to and merges their hits by score; the views, and the list of partitions a view search
uses, are re-checked at most every ``refresh_s`` (and at once after this handle's own writes).
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from looksync.index import faiss_graph, faiss_view, lance_partitions
from looksync.index.base import Hit, IndexBackendError, SearchFilters
from looksync.index.embedded_store import PartitionStore, log
from looksync.index.lance_filters import check_filters, filter_sql
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRecord
from looksync.index.lance_schema import PRODUCT_COLUMNS, VECTOR_COLUMN, row_to_product
from looksync.index.vectors import query_vector

_SETTLED_NS = 1_000_000_000  # a directory unchanged for this long has a stamp every later change moves


class SearchMixin(PartitionStore):
    """``search``, ``get``, ``vectors`` and ``count`` of ``EmbeddedIndex``."""

    search_mode: str
    candidates_per_k: int
    hnsw_ef_search: int
    ivf_nprobe: int
    exact_max_rows: int
    graph_memory: str
    search_threads: int
    _pool: ThreadPoolExecutor | None
    partition_searches: Counter[tuple[str, str, str]]
    last_search_partitions: list[Key]

    def get(self, product_id: str, version: str | None = None) -> dict[str, Any] | None:
        record = self._record(version)
        if self.search_mode == "faiss":  # the partitions' views hold every stored field: no LanceDB call
            for view, row in self._view_rows(record, [product_id]).values():
                return row_to_product(view.products([row])[0])
            return None
        found = self._locate(record.name, [product_id], list(PRODUCT_COLUMNS))
        return row_to_product(found[product_id][1]) if product_id in found else None

    def _view_rows(
        self, record: VersionRecord, product_ids: list[str]
    ) -> dict[str, tuple[faiss_view.PartitionView, int]]:
        """Where each id is in the version's views (as fresh as a search sees them, ``refresh_s``)."""
        found: dict[str, tuple[faiss_view.PartitionView, int]] = {}
        for key in self._partition_keys(record.name):
            view = self._view(record, key)
            for pid in product_ids:
                row = view.row_of(pid)
                if row is not None:
                    found[pid] = (view, row)
            if len(found) == len(product_ids):
                break
        return found

    def vectors(self, product_ids: Sequence[str], version: str | None = None) -> dict[str, np.ndarray]:
        record = self._record(version)
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        if self.search_mode == "faiss":
            located = self._view_rows(record, ids)
            out = {}
            for pid, (view, row) in located.items():
                vector = view.vector_of_row(row)
                if vector is not None:
                    out[pid] = np.asarray(vector, dtype=np.float32)
            if len(out) == len(located):
                return out  # else a row without a vector in its view: read them all from LanceDB
        found = self._locate(record.name, ids, ["product_id", VECTOR_COLUMN])
        return {pid: np.asarray(row[VECTOR_COLUMN], dtype=np.float32) for pid, (_, row) in found.items()}

    def count(self, version: str | None = None) -> int:
        return self._count_rows(self._record(version).name)

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: SearchFilters | None = None,
        num_candidates: int | None = None,
        version: str | None = None,
    ) -> list[Hit]:
        if k < 1:
            raise IndexBackendError(f"search: k must be >= 1, got {k}")
        record = self._record(version)
        query = query_vector(vector, record.dim)
        check_filters(filters)  # every value, the routed-away ones too
        if self.search_mode == "faiss":
            keys = lance_partitions.routed(self._search_keys(record.name), filters)
            # the HNSW beam: num_candidates when the caller names it, else the configured efSearch
            ef = max(num_candidates or self.hnsw_ef_search, k)
            return self._search_views(record, keys, query, k, lance_partitions.inner_filters(filters), ef)
        where = filter_sql(lance_partitions.inner_filters(filters))
        keys = lance_partitions.routed(self._partition_keys(record.name), filters)
        candidates = max(num_candidates or self.candidates_per_k * k, k)
        tables = [(key, self._partition(record, key)) for key in keys]

        def one(table: Any) -> list[dict[str, Any]]:
            rows = self._knn(table, query, k, where, candidates, exact=False)
            if len(rows) < k and table.count_rows(where) > len(rows):
                # The ANN graph can run dry under a very selective filter: the matches are few, so an
                # exact scan over them is cheap and returns every one of the k that exist.
                rows = self._knn(table, query, k, where, candidates, exact=True)
            return rows

        with self._backend_errors(f"search {record.name} partitions {keys} (k={k}, filter {where})"):
            if len(tables) > 1 and self.search_threads > 1:
                answers = list(self._search_pool().map(one, [t for _, t in tables]))
            else:
                answers = [one(t) for _, t in tables]
        best: dict[str, dict[str, Any]] = {}
        for key, rows in zip(keys, answers, strict=True):
            self.partition_searches[(record.name, *key)] += 1
            for r in rows:
                seen = best.get(r["product_id"])  # a product moving partition may briefly be in two
                if seen is None or r["_distance"] < seen["_distance"]:
                    best[r["product_id"]] = r
        self.last_search_partitions = keys
        merged = sorted(best.values(), key=lambda r: (r["_distance"], r["product_id"]))[:k]
        return [
            Hit(product_id=r["product_id"], score=1.0 - float(r["_distance"]), product=row_to_product(r)) for r in merged
        ]

    def _search_views(
        self, record: VersionRecord, keys: list[Key], query: np.ndarray, k: int, filters: SearchFilters | None, ef: int
    ) -> list[Hit]:
        if len(keys) == 1:  # a look query: one partition, no merge
            view = self._view(record, keys[0])
            scores, rows = view.search(query, k, filters, ef, self.exact_max_rows, self.ivf_nprobe)
            self.partition_searches[(record.name, *keys[0])] += 1
            self.last_search_partitions = keys
            top = sorted(zip(scores.tolist(), view.ids(rows), rows.tolist(), strict=True), key=lambda b: (-b[0], b[1]))
            products = view.products([b[2] for b in top])
            return [Hit(product_id=pid, score=score, product=p) for (score, pid, _), p in zip(top, products, strict=True)]
        best: dict[str, tuple[float, str, faiss_view.PartitionView, int]] = {}
        for key in keys:
            view = self._view(record, key)
            scores, rows = view.search(query, k, filters, ef, self.exact_max_rows, self.ivf_nprobe)
            self.partition_searches[(record.name, *key)] += 1
            for score, pid, row in zip(scores.tolist(), view.ids(rows), rows.tolist(), strict=True):
                seen = best.get(pid)  # a product moving partition may briefly be in two
                if seen is None or score > seen[0]:
                    best[pid] = (score, pid, view, row)
        self.last_search_partitions = keys
        top = sorted(best.values(), key=lambda b: (-b[0], b[1]))[:k]
        products: dict[tuple[int, int], dict[str, Any]] = {}
        for view in {id(b[2]): b[2] for b in top}.values():  # one Arrow take per partition
            rows = [b[3] for b in top if b[2] is view]
            products.update(zip([(id(view), r) for r in rows], view.products(rows), strict=True))
        return [Hit(product_id=pid, score=score, product=products[(id(view), row)]) for score, pid, view, row in top]

    def _search_keys(self, name: str) -> list[Key]:
        """The version's partitions for a view search: listed again at most every ``refresh_s`` (and
        after this handle's own writes), like the views themselves."""
        listed = self._listed.get(name)
        now = time.monotonic()
        if listed is None or now - listed[1] >= self.views.refresh_s or self.views.touched(name, listed[1]):
            listed = (self._partition_keys(name), now)
            self._listed[name] = listed
        return listed[0]

    def _view(self, record: VersionRecord, key: Key) -> faiss_view.PartitionView:
        """The partition's search view, re-checked at most every ``refresh_s`` (see ``ViewCache``)."""

        def probe() -> tuple[int, Any]:
            return self._table_version(record, key), faiss_graph.meta_stamp(self._search_dir(record.name, key))

        def load(stamp: tuple[int, Any]) -> faiss_view.PartitionView:
            started = time.perf_counter()
            search_dir = self._search_dir(record.name, key)
            with self._backend_errors(f"load the search view of {record.name} partition {key}"):
                pinned = self._db(record.name).open_table(lance_partitions.table_name(*key))
                pinned.checkout(stamp[0])
                view = faiss_view.load_view(pinned, stamp[0], record.dim, search_dir, memory=self.graph_memory)
            stats = view.stats()
            # one per (layer, market) partition: dozens per search process start, so DEBUG
            log.debug(
                "index search view loaded",
                extra={
                    "version": record.name, "partition": list(key), "table_version": stamp[0], "rows": stats.rows,
                    "graph_rows": stats.graph_rows, "exact_rows": stats.exact_rows,
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )  # fmt: skip
            return view

        return self.views.get((record.name, key), probe, load)

    def _table_version(self, record: VersionRecord, key: Key) -> int:
        """The partition's latest LanceDB table version. A commit adds a manifest to the table's
        ``_versions`` directory, so the version is read from LanceDB (a call through its event loop,
        ~0.2 ms and a thread hand-off) only when that directory changed since the last read, or when its
        last change is too recent to trust the file system's coarse timestamps (as git treats "racily
        clean" files): a change then may not have moved the stamp yet."""
        ident = (record.name, key)
        directory = self._version_dir(record.name) / f"{lance_partitions.table_name(*key)}.lance" / "_versions"
        now = time.time_ns()
        try:
            st = os.stat(directory)
            stamp: Any = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            stamp = None
        known = self._table_versions.get(ident)
        if stamp is not None and known is not None and known[2] and known[0] == stamp:
            return known[1]
        with self._backend_errors(f"check partition {key} of {record.name} for new commits"):
            version = self._partition(record, key).version
        self._table_versions[ident] = (stamp, version, stamp is not None and stamp[0] < now - _SETTLED_NS)
        return version

    def _search_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made on first use, so a forked worker makes its own
            self._pool = ThreadPoolExecutor(max_workers=self.search_threads, thread_name_prefix="looksync-index")
        return self._pool

    def _knn(
        self, table: Any, query: np.ndarray, k: int, where: str | None, candidates: int, exact: bool
    ) -> list[dict[str, Any]]:
        builder = (
            table.search(query, vector_column_name=VECTOR_COLUMN)
            .distance_type("cosine")
            .select([*PRODUCT_COLUMNS, "_distance"])
            .limit(k)
        )
        if where:
            builder = builder.where(where, prefilter=True)
        if exact:
            builder = builder.bypass_vector_index()
        else:
            # Only used when the table has an ANN index: HNSW examines `ef` candidates, and the best
            # k * refine_factor of them are re-scored on the full vectors.
            refine = max(1, math.ceil(candidates / k))
            builder = builder.ef(max(candidates, k * refine)).refine_factor(refine)
        return builder.to_list()
