"""The embedded catalog index: LanceDB tables in a local directory, no server, partitioned.

Each index version is a directory ``<path>/<version>/`` (``v<UTC timestamp>-<model>``) holding one
LanceDB table per (layer, market) partition (see ``lance_partitions``); ``versions.json`` beside them
(see ``lance_registry``) records each version's model id and size and which one is live. Every look
query filters by layer and market, so a search only opens the partitions its filters can match (the
layers named, or implied by the categories named; the market named) and runs the remaining filters
inside them, *before* the neighbour search, so a rare filter still yields k hits; hits from several
partitions are merged by score. A product whose layer or market changes moves partition.

LanceDB is the store of record (versions, writes, snapshots). Searches go, by default
(``search="faiss"``), through an in-memory *search view* per partition (``faiss_view``): the product
columns in memory, the partition's saved FAISS HNSW graph (``faiss_graph``, built by
``build_ann_index`` for partitions holding at least ``ann_min_rows`` rows and saved in the version
directory), and exact scores for the rows whose vectors the graph lacks (the write journal,
``write_journal``, names them; a partition without a graph is scored exactly). A view is re-checked at
most every ``refresh_s`` seconds and rebuilt when the table version moved. ``search="lance"`` keeps
LanceDB's own search (HNSW-SQ and scalar indexes per partition, prefiltered), for comparison.

Several ``EmbeddedIndex`` objects, in one process or several, may share a directory: a reader sees
every committed write (LanceDB re-checks a table's latest version on each read; the FAISS views and the
list of partitions are re-checked at most every ``refresh_s``, and at once after the handle's own
writes) and follows the live version as soon as a writer swaps it (the registry is re-read when its file
changes).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import Bitmap, BTree, HnswSq, LabelList

from looksync.catalog.object_store import LocalStore, ObjectStore
from looksync.catalog.schema import Product
from looksync.index import faiss_graph, faiss_view, lance_partitions, lance_snapshots, write_journal
from looksync.index.base import (
    BulkResult,
    CatalogIndex,
    Hit,
    IndexBackendError,
    SearchFilters,
    SnapshotInfo,
    VersionInfo,
)
from looksync.index.lance_filters import check_filters, filter_sql, sql_in, sql_string
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRecord, VersionRegistry
from looksync.index.lance_schema import (
    PRODUCT_COLUMNS,
    VECTOR_COLUMN,
    metadata_table,
    products_table,
    row_to_product,
    table_schema,
)
from looksync.index.vectors import NORM_TOLERANCE, query_vector, vector_problems
from looksync.index.write_journal import WriteJournal

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ID_CHUNK = 1000  # product ids per IN (...) predicate
_SETTLED_NS = 1_000_000_000  # a directory unchanged for this long has a stamp every later change moves

# Scalar indexes on the filter columns inside a partition (layer and market are the partition's, so
# constant there): bitmaps for few distinct values, btrees for many, a label list for the sizes list
# (it serves array_has_any).
_SCALAR_INDEXES = (
    ("product_id", BTree),
    ("category", Bitmap),
    ("gender", Bitmap),
    ("in_stock", Bitmap),
    ("brand", BTree),
    ("price", BTree),
    ("sizes", LabelList),
)


def _model_slug(model_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")[:40] or "model"


class EmbeddedIndex(CatalogIndex):
    """``CatalogIndex`` on LanceDB tables under ``path``, one table per (layer, market) per version.

    ``ann_min_rows``: ``build_ann_index`` leaves smaller partitions to exact search.
    ``candidates_per_k``: ANN candidates examined per requested hit when ``num_candidates`` is not given.
    ``read_consistency``: how stale a read may be (0 = always the last commit; None = never re-check,
    the fastest, for a read-only snapshot).
    ``snapshot_store``: where ``snapshot`` copies versions to and ``restore`` reads them from (an
    ``ObjectStore``, or a function making one on first use); default ``<path>/../snapshots``.

    ``search``: ``"faiss"`` (in-memory views over saved FAISS graphs) or ``"lance"`` (LanceDB's search).
    ``refresh_s``: how often (seconds) a view re-checks its table for newer commits; 0 = every search.
    A handle's own writes are seen by its next search whatever this is.
    ``hnsw_m`` / ``hnsw_ef_construction``: the FAISS graphs' build parameters; ``hnsw_ef_search``: the
    search beam when a search names no ``num_candidates`` (which is the beam when given). ``exact_max_rows``: when at most this many graph
    rows pass a filter they are scored exactly instead of walking the graph.
    ``search_threads``: a LanceDB search spanning several partitions queries up to this many at once.
    ``partition_searches`` counts, for this handle, the partitions each search opened
    (``(version, layer, market)`` -> searches); ``last_search_partitions`` lists the last search's.
    """

    def __init__(
        self,
        path: Path,
        *,
        ann_min_rows: int = 50_000,
        candidates_per_k: int = 10,
        rows_per_ann_partition: int = 1_000_000,
        norm_tolerance: float = NORM_TOLERANCE,
        read_consistency: timedelta | None = timedelta(0),
        snapshot_store: ObjectStore | Callable[[], ObjectStore] | None = None,
        search_threads: int = 4,
        search: str = "faiss",
        refresh_s: float = 1.0,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 64,
        exact_max_rows: int = 2048,
        graph_memory: str = "mmap",
    ):
        if search not in ("faiss", "lance"):
            raise IndexBackendError(f"embedded index search {search!r}: known: faiss, lance")
        if graph_memory not in faiss_graph.MEMORY_MODES:
            raise IndexBackendError(f"embedded index graph_memory {graph_memory!r}: known: {', '.join(faiss_graph.MEMORY_MODES)}")
        self.graph_memory = graph_memory
        self.path = Path(path)
        self.search_mode = search
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self.exact_max_rows = exact_max_rows
        self.views = faiss_view.ViewCache(refresh_s)
        self._listed: dict[str, tuple[list[Key], float]] = {}  # version -> (partitions, when listed)
        # (version, partition) -> (stamp of its _versions directory, table version read, stamp settled)
        self._table_versions: dict[tuple[str, Key], tuple[Any, int, bool]] = {}
        self.ann_min_rows = ann_min_rows
        self.candidates_per_k = candidates_per_k
        self.rows_per_ann_partition = rows_per_ann_partition
        self.norm_tolerance = norm_tolerance
        self.read_consistency = read_consistency
        self.search_threads = search_threads
        self._pool: ThreadPoolExecutor | None = None
        self.path.mkdir(parents=True, exist_ok=True)
        self._registry = VersionRegistry(self.path)
        self._dbs: dict[str, Any] = {}  # version -> LanceDB connection on its directory
        self._tables: dict[tuple[str, Key], Any] = {}  # (version, partition) -> open table
        self._snapshot_store = snapshot_store
        self.partition_searches: Counter[tuple[str, str, str]] = Counter()
        self.last_search_partitions: list[Key] = []

    def __repr__(self) -> str:
        return f"EmbeddedIndex({str(self.path)!r})"

    # ---- versions -------------------------------------------------------------------------------

    def create_version(self, model_id: str, dim: int, name: str | None = None) -> str:
        if not model_id:
            raise IndexBackendError("create_version: model_id is required")
        if not isinstance(dim, int) or dim < 1:
            raise IndexBackendError(f"create_version: dim must be a positive integer, got {dim!r}")
        if name is not None and not _VERSION_NAME.match(name):
            raise IndexBackendError(f"version name {name!r}: use letters, digits, '.', '_' or '-' (max 128)")
        now = datetime.now(UTC)
        with self._registry.edit() as state:
            if name is None:
                name = f"v{now:%Y%m%dT%H%M%S%f}Z-{_model_slug(model_id)}"
                suffix = 1
                while name in state.versions:
                    name, suffix = f"{name.rsplit('~', 1)[0]}~{suffix}", suffix + 1
            elif name in state.versions:
                raise IndexBackendError(f"{self.path}: version {name!r} already exists")
            if self._version_dir(name).exists():
                raise IndexBackendError(f"{self._version_dir(name)}: already exists; not a registered version")
            with self._backend_errors(f"create version {name!r}"):
                self._version_dir(name).mkdir()
            state.versions[name] = VersionRecord(
                name=name, model_id=model_id, dim=dim, created_at=now.isoformat(timespec="microseconds")
            )
        log.info("index version created", extra={"version": name, "model_id": model_id, "dim": dim})
        return name

    def set_live(self, version: str) -> None:
        with self._registry.edit() as state:
            if version not in state.versions:
                raise IndexBackendError(
                    f"{self.path}: cannot make {version!r} live: no such version; known: {sorted(state.versions)}"
                )
            previous, state.live = state.live, version
            if state.shadow == version:  # promoted: in the same atomic registry write
                state.shadow = None
        log.info("index live version swapped", extra={"version": version, "previous": previous})

    def set_shadow(self, version: str | None) -> None:
        with self._registry.edit() as state:
            if version is not None and version not in state.versions:
                raise IndexBackendError(f"{self.path}: cannot shadow {version!r}: no such version; known: {sorted(state.versions)}")
            if version is not None and version == state.live:
                raise IndexBackendError(f"{self.path}: {version} is live; a shadow version is a candidate beside live")
            previous, state.shadow = state.shadow, version
        log.info("index shadow version set", extra={"version": version, "previous": previous})

    def shadow_version(self) -> str | None:
        return self._registry.read().shadow

    def live_version(self) -> str | None:
        return self._registry.read().live

    def list_versions(self) -> list[VersionInfo]:
        state = self._registry.read()
        return [
            VersionInfo(
                name=r.name,
                model_id=r.model_id,
                dim=r.dim,
                count=self._count_rows(r.name),
                live=r.name == state.live,
                created_at=r.created_at,
                shadow=r.name == state.shadow,
            )
            for r in sorted(state.versions.values(), key=lambda r: (r.created_at, r.name))
        ]

    def prune(self, keep: int) -> list[str]:
        if keep < 0:
            raise IndexBackendError(f"prune: keep must be >= 0, got {keep}")
        with self._registry.edit() as state:
            newest = state.newest_first()
            kept = {r.name for r in newest[:keep]} | {state.live, state.shadow}
            dropped = [r.name for r in reversed(newest) if r.name not in kept]
            for name in dropped:
                del state.versions[name]
        self._remove(dropped)
        if dropped:
            log.info("index versions pruned", extra={"dropped": dropped, "keep": keep})
        return dropped

    def drop_version(self, version: str) -> None:
        with self._registry.edit() as state:
            if version == state.live:
                raise IndexBackendError(f"drop version: {version} is live; make another version live first")
            if version not in state.versions:
                raise IndexBackendError(f"drop version: no version {version!r}")
            del state.versions[version]
            if state.shadow == version:
                state.shadow = None
        self._remove([version])
        log.info("index version dropped", extra={"version": version})

    def _remove(self, dropped: list[str]) -> None:
        # The registry no longer names them, so no reader opens them from here on.
        for name in dropped:
            self._forget(name)
            directory = self._version_dir(name)
            if directory.exists():
                with self._backend_errors(f"drop version {name!r}"):
                    shutil.rmtree(directory)

    # ---- writes ---------------------------------------------------------------------------------

    def upsert(self, version: str, products: Sequence[Product], vectors: np.ndarray) -> BulkResult:
        record = self._record(version)
        if len(vectors) != len(products):
            raise IndexBackendError(f"{version}: {len(products)} products but {len(vectors)} vectors")
        result = BulkResult()
        problems = vector_problems(vectors, record.dim, self.norm_tolerance)  # one pass over the matrix
        rows: dict[str, tuple[Product, int, Key]] = {}  # product id -> (product, its row in ``vectors``, partition)
        for i, (product, reason) in enumerate(zip(products, problems, strict=True)):
            fields = product.__dict__  # the field values, without an attribute lookup each (100k products a batch)
            model_id, key = fields["model_id"], (fields["layer"], fields["market"])
            if reason is None and model_id and model_id != record.model_id:
                reason = f"vector of model {model_id!r}; version {version} holds {record.model_id!r}"
            if reason is None and not (key[0] and key[1]):
                reason = f"no layer/market to partition by (layer {key[0]!r}, market {key[1]!r})"
            if reason is not None:
                result.failures.append((product.product_id, reason))
                continue
            rows.pop(product.product_id, None)  # a product twice in one batch: the last row wins
            rows[product.product_id] = (product, i, key)
        if not rows:
            return result
        where_now = self._stored_in(record, list(rows))
        groups: dict[Key, list[tuple[Product, int]]] = {}
        for product, i, key in rows.values():
            groups.setdefault(key, []).append((product, i))
        try:
            for key, items in sorted(groups.items()):
                matrix = _rows_of(vectors, [i for _, i in items])
                data = products_table([p for p, _ in items], matrix, record.model_id, record.dim)
                result.written += self._write_vectors(record, key, data, f"upsert {len(items)} products into")
            # products whose layer or market changed: the new row is in; drop the old one
            moved = [(pid, old) for pid, old in where_now if old != rows[pid][2]]
            self._delete_from(record, moved)
        finally:
            self.views.touch(record.name)
        return result

    def update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        try:
            return self._update_metadata(version, products)
        finally:
            self.views.touch(version)  # this handle's next search sees its own write

    def _update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        record = self._record(version)
        latest = {p.product_id: p for p in products}  # the last row of a product wins
        stored = self._locate(record.name, list(latest), ["product_id", "image_hash"])
        result = BulkResult()
        staying: dict[Key, list[Product]] = {}
        moving: list[tuple[Key, Product]] = []
        for product_id, product in latest.items():
            old_key, old = stored.get(product_id, (None, None))
            if old is None:
                reason = f"not in version {version}"
            elif product.model_id and product.model_id != record.model_id:
                reason = f"model {product.model_id!r} differs from the version's {record.model_id!r}"
            elif product.image_hash and old["image_hash"] and product.image_hash != old["image_hash"]:
                reason = (
                    f"image changed ({old['image_hash'][:12]} -> {product.image_hash[:12]}): "
                    "re-embed it and upsert instead"
                )
            elif not (product.layer and product.market):
                reason = f"no layer/market to partition by (layer {product.layer!r}, market {product.market!r})"
            else:
                # the vector stays, so the hash of the image it came from stays too
                kept = product.model_copy(update={"image_hash": product.image_hash or old["image_hash"]})
                if (kept.layer, kept.market) == old_key:
                    staying.setdefault(old_key, []).append(kept)
                else:
                    moving.append((old_key, kept))
                continue
            result.failures.append((product_id, reason))
        for key, group in sorted(staying.items()):
            table = self._partition(record, key)
            with self._backend_errors(f"update metadata of {len(group)} products in {version} partition {key}"):
                merged = table.merge_insert("product_id").when_matched_update_all().execute(metadata_table(group))
            result.written += merged.num_updated_rows
        if moving:
            # a changed layer or market moves the product, with its stored vector, to its new partition
            old_vectors = self.vectors([p.product_id for _, p in moving], version=record.name)
            moved = [(old_key, p) for old_key, p in moving if p.product_id in old_vectors]
            by_key: dict[Key, list[Product]] = {}
            for _, p in moved:
                by_key.setdefault((p.layer, p.market), []).append(p)
            for key, group in sorted(by_key.items()):
                matrix = np.stack([old_vectors[p.product_id] for p in group])
                data = products_table(group, matrix, record.model_id, record.dim)
                result.written += self._write_vectors(record, key, data, f"move {len(group)} products into")
            self._delete_from(record, [(p.product_id, old_key) for old_key, p in moved])
            for _, p in moving:
                if p.product_id not in old_vectors:
                    result.failures.append((p.product_id, f"deleted from version {version} during the update"))
        return result

    def delete(self, version: str, product_ids: Sequence[str]) -> int:
        try:
            return self._delete(version, product_ids)
        finally:
            self.views.touch(version)

    def _delete(self, version: str, product_ids: Sequence[str]) -> int:
        record = self._record(version)
        ids = list(dict.fromkeys(product_ids))
        deleted = 0
        if not ids:
            return 0
        for key in self._partition_keys(record.name):
            table = self._partition(record, key)
            with self._backend_errors(f"delete {len(ids)} products from {version} partition {key}"):
                for start in range(0, len(ids), _ID_CHUNK):
                    deleted += table.delete(sql_in("product_id", ids[start : start + _ID_CHUNK])).num_deleted_rows
        return deleted

    # ---- reads ----------------------------------------------------------------------------------

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
            scores, rows = view.search(query, k, filters, ef, self.exact_max_rows)
            self.partition_searches[(record.name, *keys[0])] += 1
            self.last_search_partitions = keys
            top = sorted(zip(scores.tolist(), view.ids(rows), rows.tolist(), strict=True), key=lambda b: (-b[0], b[1]))
            products = view.products([b[2] for b in top])
            return [Hit(product_id=pid, score=score, product=p) for (score, pid, _), p in zip(top, products, strict=True)]
        best: dict[str, tuple[float, str, faiss_view.PartitionView, int]] = {}
        for key in keys:
            view = self._view(record, key)
            scores, rows = view.search(query, k, filters, ef, self.exact_max_rows)
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

    def stats(self) -> dict[str, Any]:
        state = self._registry.read()
        versions = []
        for info in self.list_versions():
            record = state.versions[info.name]
            partitions, indexes = [], []
            total_bytes = fragments = 0
            for key in self._partition_keys(info.name):
                table = self._partition(record, key)
                with self._backend_errors(f"stats of {info.name} partition {key}"):
                    own = [
                        {"name": i.name, "type": i.index_type, "columns": list(i.columns), "partition": list(key)}
                        for i in table.list_indices()
                    ]
                    table_stats = table.stats()
                    rows = table.count_rows()
                total_bytes += table_stats["total_bytes"]
                fragments += table_stats["fragment_stats"]["num_fragments"]
                indexes += own
                graph = faiss_graph.read_meta(self._search_dir(info.name, key))
                view = self.views.cached((info.name, key))
                lance_ann = any(i["columns"] == [VECTOR_COLUMN] for i in own)
                partitions.append(
                    {
                        "layer": key[0],
                        "market": key[1],
                        "count": rows,
                        "table_version": table.version,
                        "ann": graph is not None if self.search_mode == "faiss" else lance_ann,
                        "lance_ann": lance_ann,
                        "graph": None if graph is None else asdict(graph),
                        "view": None if view is None else asdict(view.stats()),
                        "searches": self.partition_searches[(info.name, *key)],
                    }
                )
            versions.append(
                {
                    **asdict(info),
                    "bytes": total_bytes,
                    "fragments": fragments,
                    "indexes": indexes,
                    "ann": any(p["ann"] for p in partitions),
                    "partitions": partitions,
                }
            )
        return {
            "backend": "embedded",
            "search": self.search_mode,
            "path": str(self.path),
            "live": state.live,
            "versions": versions,
        }

    # ---- snapshots ------------------------------------------------------------------------------

    @property
    def snapshot_store(self) -> ObjectStore:
        if self._snapshot_store is None:
            self._snapshot_store = LocalStore(self.path.parent / "snapshots")
        elif callable(self._snapshot_store):
            self._snapshot_store = self._snapshot_store()
        return self._snapshot_store  # type: ignore[return-value]

    def snapshot(self, version: str | None = None, name: str | None = None) -> SnapshotInfo:
        record = self._record(version)
        now = datetime.now(UTC)
        name = lance_snapshots.check_snapshot_name(name or f"{record.name}~{now:%Y%m%dT%H%M%S%f}Z")
        tables: dict[str, int] = {}
        extra: list[tuple[str, Path | bytes]] = []
        count = 0
        for key in self._partition_keys(record.name):
            table_name = lance_partitions.table_name(*key)
            search_dir = self._search_dir(record.name, key)
            rel = search_dir.relative_to(self._version_dir(record.name)).as_posix()
            graph = faiss_graph.read_meta(search_dir)  # read before the pin: the graph is of a version <= it
            with self._backend_errors(f"pin partition {key} of {record.name} for a snapshot"):
                table = self._db(record.name).open_table(table_name)  # a handle of our own: checkout pins it
                tables[table_name] = table.version
                table.checkout(table.version)
                count += table.count_rows()
            if graph is not None:
                # the graph files are immutable; the meta goes as read; the journal as it is now, after
                # the pin, so it names every vector written up to the pinned version (later lines are harmless)
                extra += [
                    (f"{rel}/{faiss_graph.META_FILE}", json.dumps(asdict(graph), indent=2).encode()),
                    (f"{rel}/{graph.graph_file}", search_dir / graph.graph_file),
                    (f"{rel}/{graph.ids_file}", search_dir / graph.ids_file),
                    (f"{rel}/{write_journal.JOURNAL_FILE}", WriteJournal(search_dir).read_bytes()),
                ]
        manifest = lance_snapshots.SnapshotManifest(
            snapshot=name,
            version=record.name,
            model_id=record.model_id,
            dim=record.dim,
            count=count,
            tables=tables,
            created_at=now.isoformat(timespec="microseconds"),
        )
        location = lance_snapshots.upload(self._version_dir(record.name), manifest, self.snapshot_store, extra)
        log.info("index snapshot written", extra={"version": record.name, "snapshot": name, "location": location})
        return self._snapshot_info(manifest, location)

    def restore(self, snapshot: str, as_version: str | None = None) -> str:
        store = self.snapshot_store
        manifest = lance_snapshots.read_manifest(store, snapshot)
        name = as_version or manifest.version
        if not _VERSION_NAME.match(name):
            raise IndexBackendError(f"version name {name!r}: use letters, digits, '.', '_' or '-' (max 128)")
        if name in self._registry.read().versions or self._version_dir(name).exists():
            raise IndexBackendError(f"{self.path}: version {name!r} already exists; restore under another name")
        lance_snapshots.download(store, manifest, self._version_dir(name))
        try:
            self._forget(name)
            count = self._count_rows(name)
            if count != manifest.count:
                raise IndexBackendError(f"restored {name!r} holds {count} rows; snapshot {snapshot} says {manifest.count}")
            with self._registry.edit() as state:
                if name in state.versions:
                    raise IndexBackendError(f"{self.path}: version {name!r} was created during the restore")
                state.versions[name] = VersionRecord(
                    name=name,
                    model_id=manifest.model_id,
                    dim=manifest.dim,
                    created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                )
        except BaseException:
            self._forget(name)
            shutil.rmtree(self._version_dir(name), ignore_errors=True)
            raise
        log.info("index snapshot restored", extra={"snapshot": snapshot, "version": name, "count": count})
        return name

    def list_snapshots(self) -> list[SnapshotInfo]:
        store = self.snapshot_store
        infos = [
            self._snapshot_info(lance_snapshots.read_manifest(store, n), f"{store.uri}/{n}")
            for n in lance_snapshots.list_names(store)
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.name))

    @staticmethod
    def _snapshot_info(manifest: lance_snapshots.SnapshotManifest, location: str) -> SnapshotInfo:
        return SnapshotInfo(
            name=manifest.snapshot,
            version=manifest.version,
            model_id=manifest.model_id,
            dim=manifest.dim,
            count=manifest.count,
            created_at=manifest.created_at,
            location=location,
            checksum=manifest.checksum,
        )

    # ---- ANN ------------------------------------------------------------------------------------

    def end_bulk_load(self, version: str) -> None:
        """A loaded version gets its ANN and filter indexes (on the partitions large enough)."""
        self.build_ann_index(version)

    def build_ann_index(self, version: str | None = None, min_rows: int | None = None) -> bool:
        """Give each partition of a version holding at least ``min_rows`` (default ``ann_min_rows``)
        products its own ANN structure for this handle's search mode: a FAISS HNSW graph saved in the
        version directory (``faiss``, plus a btree on product_id for lookups), or LanceDB's cosine
        HNSW-SQ index and scalar filter indexes (``lance``). Smaller partitions stay on exact search.
        Returns whether any partition has one now. Rows written afterwards are still found (scored
        exactly) until the next build."""
        record = self._record(version)
        threshold = max(self.ann_min_rows if min_rows is None else min_rows, 1)
        built = []
        try:
            for key in self._partition_keys(record.name):
                table = self._partition(record, key)
                with self._backend_errors(f"count partition {key} of {record.name}"):
                    rows = table.count_rows()
                if rows < threshold:
                    continue
                if self.search_mode == "faiss":
                    self._build_graph(record, key)
                    with self._backend_errors(f"index product ids of {record.name} partition {key}"):
                        table.create_index("product_id", config=BTree(), replace=True)
                else:
                    self._build_lance_index(record, key, table, rows)
                built.append(key)
        finally:
            self.views.touch(record.name)
        log.info(
            "ann indexes built" if built else "ann index skipped",
            extra={
                "version": record.name, "partitions": [list(k) for k in built], "threshold": threshold,
                "search": self.search_mode,
            },
        )  # fmt: skip
        return bool(built)

    def _build_graph(self, record: VersionRecord, key: Key) -> faiss_graph.GraphMeta:
        """Build and save the partition's FAISS graph from its latest table version. The version and the
        journal offset are read under the journal's lock, so every vector write is either in that table
        version or journalled at or after the offset (see ``write_journal``)."""
        search_dir = self._search_dir(record.name, key)
        table_name = lance_partitions.table_name(*key)
        journal = WriteJournal(search_dir)
        started = time.perf_counter()
        with faiss_graph.building(search_dir):
            with journal.locked(), self._backend_errors(f"pin {record.name} partition {key} for a graph build"):
                pinned = self._db(record.name).open_table(table_name)  # a handle of our own, at the latest commit
                table_version = pinned.version
                offset = journal.size()
            with self._backend_errors(f"read the vectors of {record.name} partition {key}"):
                pinned.checkout(table_version)
                data = pinned.search().select(["product_id", VECTOR_COLUMN]).limit(None).to_arrow()
            matrix = faiss_view._vectors_of(data.column(VECTOR_COLUMN), record.dim)
            graph = faiss_graph.build(matrix, self.hnsw_m, self.hnsw_ef_construction)
            meta = faiss_graph.save(
                search_dir,
                graph,
                data.column("product_id").to_pylist(),
                faiss_graph.GraphMeta(
                    table_version=table_version, journal_offset=offset, rows=len(matrix), dim=record.dim,
                    m=self.hnsw_m, ef_construction=self.hnsw_ef_construction, graph_file="", ids_file="",
                    built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )  # fmt: skip
        log.info(
            "search graph built",
            extra={
                "version": record.name, "partition": list(key), "rows": meta.rows, "table_version": table_version,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )  # fmt: skip
        return meta

    def _build_lance_index(self, record: VersionRecord, key: Key, table: Any, rows: int) -> None:
        partitions = max(1, math.ceil(rows / self.rows_per_ann_partition))
        with self._backend_errors(f"build the ANN index of {record.name} partition {key} ({rows} rows)"):
            table.create_index(VECTOR_COLUMN, config=HnswSq(distance_type="cosine", num_partitions=partitions), replace=True)
            for column, config in _SCALAR_INDEXES:
                table.create_index(column, config=config(), replace=True)

    # ---- internals ------------------------------------------------------------------------------

    def _record(self, version: str | None) -> VersionRecord:
        state = self._registry.read()
        name = version if version is not None else state.live
        if name is None:
            raise IndexBackendError(f"{self.path}: no live index version; create one and call set_live")
        record = state.versions.get(name)
        if record is None:
            raise IndexBackendError(f"{self.path}: no index version {name!r}; known: {sorted(state.versions)}")
        return record

    def _search_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made on first use, so a forked worker makes its own
            self._pool = ThreadPoolExecutor(max_workers=self.search_threads, thread_name_prefix="looksync-index")
        return self._pool

    def _version_dir(self, name: str) -> Path:
        return self.path / name

    def _db(self, name: str) -> Any:
        db = self._dbs.get(name)
        if db is None:
            directory = self._version_dir(name)
            if not directory.is_dir():
                if (self.path / f"{name}.lance").exists():
                    raise IndexBackendError(
                        f"{self.path}: version {name!r} is in the one-table layout written before partitioning; "
                        "rebuild it (looksync reindex)"
                    )
                raise IndexBackendError(f"{directory}: the directory of version {name!r} is missing")
            with self._backend_errors(f"open version {name!r}"):
                db = lancedb.connect(directory, read_consistency_interval=self.read_consistency)
            self._dbs[name] = db
        return db

    def _forget(self, name: str) -> None:
        self._dbs.pop(name, None)
        self._listed.pop(name, None)
        for ident in [i for i in self._table_versions if i[0] == name]:
            del self._table_versions[ident]
        self.views.forget(name)
        for cached in [c for c in self._tables if c[0] == name]:
            del self._tables[cached]

    def _partition_keys(self, name: str) -> list[Key]:
        """The partitions of a version, read from its directory each time (a writer may add one). A table
        directory without a committed manifest (being created right now) is not one yet."""
        directory = self._version_dir(name)
        self._db(name)  # a clear error for a missing or old-layout version
        try:
            entries = os.listdir(directory)
        except OSError as exc:
            raise IndexBackendError(f"{directory}: cannot list the partitions: {exc}") from exc
        keys = []
        for entry in entries:
            if not entry.endswith(".lance"):
                continue
            key = lance_partitions.key_of(entry[: -len(".lance")])
            if key is not None and ((name, key) in self._tables or _has_manifest(directory / entry)):
                keys.append(key)
        return sorted(keys)

    def _partition(self, record: VersionRecord, key: Key, create: bool = False) -> Any:
        table = self._tables.get((record.name, key))
        if table is None:
            table_name = lance_partitions.table_name(*key)
            db = self._db(record.name)
            with self._backend_errors(f"open partition {key} of {record.name}"):
                if create:
                    table = db.create_table(table_name, schema=table_schema(record.dim), exist_ok=True)
                else:
                    table = db.open_table(table_name)
            self._tables[(record.name, key)] = table
        return table

    def _count_rows(self, name: str) -> int:
        record = self._registry.read().versions.get(name) or VersionRecord(name, "", 0, "")  # restores count first
        total = 0
        for key in self._partition_keys(name):
            with self._backend_errors(f"count {name} partition {key}"):
                total += self._partition(record, key).count_rows()
        return total

    def _stored_in(self, record: VersionRecord, product_ids: list[str]) -> list[tuple[str, Key]]:
        """(product id, partition) of every stored row of these products: one scan of each partition's
        id column (a product moving partition may briefly be in two)."""
        wanted = pa.array(product_ids, type=pa.string())
        found: list[tuple[str, Key]] = []
        for key in self._partition_keys(record.name):
            ids = self._ids_of(self._partition(record, key), wanted)
            found.extend((pid, key) for pid in ids)
        return found

    def _ids_of(self, table: Any, wanted: pa.Array) -> list[str]:
        """Which of ``wanted`` are rows of ``table``."""
        with self._backend_errors(f"read the product ids of {table.name}"):
            if not table.count_rows():
                return []
            ids = table.search().select(["product_id"]).limit(None).to_arrow().column("product_id")
        return ids.filter(pc.is_in(ids, value_set=wanted)).to_pylist()

    def _locate(self, name: str, product_ids: list[str], columns: list[str]) -> dict[str, tuple[Key, dict[str, Any]]]:
        """Where each of ``product_ids`` is stored (partition, and the ``columns`` of its row)."""
        record = self._record(name)
        found: dict[str, tuple[Key, dict[str, Any]]] = {}
        for key in self._partition_keys(name):
            table = self._partition(record, key)
            for pid, row in self._fetch(table, product_ids, columns).items():
                found[pid] = (key, row)
        return found

    def _delete_from(self, record: VersionRecord, where: list[tuple[str, Key]]) -> None:
        by_key: dict[Key, list[str]] = {}
        for pid, key in where:
            by_key.setdefault(key, []).append(pid)
        for key, ids in sorted(by_key.items()):
            table = self._partition(record, key)
            with self._backend_errors(f"delete {len(ids)} moved products from {record.name} partition {key}"):
                for start in range(0, len(ids), _ID_CHUNK):
                    table.delete(sql_in("product_id", ids[start : start + _ID_CHUNK]))

    def _search_dir(self, name: str, key: Key) -> Path:
        return faiss_graph.partition_dir(self._version_dir(name), lance_partitions.table_name(*key))

    def _write_vectors(self, record: VersionRecord, key: Key, data: Any, what: str) -> int:
        """Merge rows carrying vectors into a partition: their ids go to the partition's write journal
        first, then LanceDB commits, under the journal's lock (see ``write_journal``)."""
        table = self._partition(record, key, create=True)
        journal = WriteJournal(self._search_dir(record.name, key))
        with journal.locked():
            ids = data.column("product_id")
            journal.record(ids.to_pylist())
            # every vector write to the partition holds this lock, so what is not stored now is not
            # stored by anyone before the commit: rows all new are appended (no join), else merged
            stored = self._ids_of(table, ids.combine_chunks())
            with self._backend_errors(f"{what} {record.name} partition {key}"):
                if not stored:
                    table.add(data)
                    return data.num_rows
                merged = (
                    table.merge_insert("product_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
                )
        return merged.num_inserted_rows + merged.num_updated_rows

    def _fetch(self, table: Any, product_ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if len(product_ids) > _ID_CHUNK:  # many ids: one scan of the columns beats a query per chunk of ids
            with self._backend_errors(f"read {len(product_ids)} products from {table.name}"):
                data = table.search().select(list(dict.fromkeys(["product_id", *columns]))).limit(None).to_arrow()
            data = data.filter(pc.is_in(data.column("product_id"), value_set=pa.array(product_ids, type=pa.string())))
            return {row["product_id"]: row for row in data.to_pylist()}
        with self._backend_errors(f"read {len(product_ids)} products from {table.name}"):
            for start in range(0, len(product_ids), _ID_CHUNK):
                chunk = product_ids[start : start + _ID_CHUNK]
                where = sql_in("product_id", chunk) if len(chunk) > 1 else f"product_id = {sql_string(chunk[0])}"
                for row in table.search().where(where).select(columns).limit(len(chunk)).to_list():
                    found[row["product_id"]] = row
        return found

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

    @contextmanager
    def _backend_errors(self, what: str) -> Iterator[None]:
        """LanceDB raises ValueError/OSError/RuntimeError of its own; callers get one error type that
        says what was being done."""
        try:
            yield
        except IndexBackendError:
            raise
        except Exception as exc:
            raise IndexBackendError(f"{self.path}: cannot {what}: {exc}") from exc


def _rows_of(vectors: Any, rows: list[int]) -> np.ndarray:
    """These rows of ``vectors`` (a matrix, or a sequence of vectors) as one float32 matrix."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        return np.ascontiguousarray(vectors[rows], dtype=np.float32)
    return np.stack([np.asarray(vectors[i], dtype=np.float32) for i in rows])


def _has_manifest(table_dir: Path) -> bool:
    try:
        return any(e.endswith(".manifest") for e in os.listdir(table_dir / "_versions"))
    except OSError:
        return False
