"""The embedded catalog index: LanceDB tables in a local directory, no server.

Each index version is one LanceDB table (``v<UTC timestamp>-<model>``); ``versions.json`` beside them
(see ``lance_registry``) records each version's model id and size and which one is live. Searches are
cosine kNN with the filters applied *before* the neighbour search, so a rare filter still yields k hits.
Small tables are scanned exactly; ``build_ann_index`` adds an HNSW index (and scalar indexes on the
filter columns) once a table is large enough.

Several ``EmbeddedIndex`` objects, in one process or several, may share a directory: a reader sees
every committed write (LanceDB re-checks the table's latest version on each read) and follows the live
version as soon as a writer swaps it (the registry is re-read when its file changes).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
from lancedb.index import Bitmap, BTree, HnswSq, LabelList

from looksync.index import lance_snapshots
from looksync.index.base import (
    BulkResult,
    CatalogIndex,
    Hit,
    IndexBackendError,
    SearchFilters,
    SnapshotInfo,
    VersionInfo,
)
from looksync.index.lance_filters import filter_sql, sql_in, sql_string
from looksync.index.lance_registry import VersionRecord, VersionRegistry
from looksync.index.lance_schema import (
    PRODUCT_COLUMNS,
    VECTOR_COLUMN,
    metadata_table,
    products_table,
    row_to_product,
    table_schema,
)
from looksync.index.vectors import NORM_TOLERANCE, query_vector, vector_problem
from looksync.schema import Product
from looksync.storage import LocalStore, ObjectStore

log = logging.getLogger(__name__)

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ID_CHUNK = 1000  # product ids per IN (...) predicate

# Scalar indexes on the filter columns: bitmaps for few distinct values, btrees for many, a label list
# for the sizes list (it serves array_has_any).
_SCALAR_INDEXES = (
    ("product_id", BTree),
    ("layer", Bitmap),
    ("category", Bitmap),
    ("gender", Bitmap),
    ("market", Bitmap),
    ("in_stock", Bitmap),
    ("brand", BTree),
    ("price", BTree),
    ("sizes", LabelList),
)


def _model_slug(model_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")[:40] or "model"


class EmbeddedIndex(CatalogIndex):
    """``CatalogIndex`` on LanceDB tables under ``path``.

    ``ann_min_rows``: ``build_ann_index`` leaves smaller tables to exact search.
    ``candidates_per_k``: ANN candidates examined per requested hit when ``num_candidates`` is not given.
    ``read_consistency``: how stale a read may be (0 = always the last commit; None = never re-check,
    the fastest, for a read-only snapshot).
    ``snapshot_store``: where ``snapshot`` copies versions to and ``restore`` reads them from (an
    ``ObjectStore``, or a function making one on first use); default ``<path>/../snapshots``.
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
    ):
        self.path = Path(path)
        self.ann_min_rows = ann_min_rows
        self.candidates_per_k = candidates_per_k
        self.rows_per_ann_partition = rows_per_ann_partition
        self.norm_tolerance = norm_tolerance
        self.path.mkdir(parents=True, exist_ok=True)
        with self._backend_errors(f"open the embedded index at {self.path}"):
            self._db = lancedb.connect(self.path, read_consistency_interval=read_consistency)
        self._registry = VersionRegistry(self.path)
        self._tables: dict[str, Any] = {}
        self._snapshot_store = snapshot_store

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
            with self._backend_errors(f"create version {name!r}"):
                self._tables[name] = self._db.create_table(name, schema=table_schema(dim))
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
        log.info("index live version swapped", extra={"version": version, "previous": previous})

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
            )
            for r in sorted(state.versions.values(), key=lambda r: (r.created_at, r.name))
        ]

    def prune(self, keep: int) -> list[str]:
        if keep < 0:
            raise IndexBackendError(f"prune: keep must be >= 0, got {keep}")
        with self._registry.edit() as state:
            newest = state.newest_first()
            kept = {r.name for r in newest[:keep]} | {state.live}
            dropped = [r.name for r in reversed(newest) if r.name not in kept]
            for name in dropped:
                del state.versions[name]
        # The registry no longer names them, so no reader opens them from here on.
        for name in dropped:
            self._tables.pop(name, None)
            with self._backend_errors(f"drop version {name!r}"):
                self._db.drop_table(name, ignore_missing=True)
        if dropped:
            log.info("index versions pruned", extra={"dropped": dropped, "keep": keep})
        return dropped

    # ---- writes ---------------------------------------------------------------------------------

    def upsert(self, version: str, products: Sequence[Product], vectors: np.ndarray) -> BulkResult:
        record = self._record(version)
        if len(vectors) != len(products):
            raise IndexBackendError(f"{version}: {len(products)} products but {len(vectors)} vectors")
        result = BulkResult()
        rows: dict[str, tuple[Product, np.ndarray]] = {}
        for product, vector in zip(products, vectors, strict=True):
            reason = vector_problem(vector, record.dim, self.norm_tolerance)
            if reason is None and product.model_id and product.model_id != record.model_id:
                reason = f"vector of model {product.model_id!r}; version {version} holds {record.model_id!r}"
            if reason is not None:
                result.failures.append((product.product_id, reason))
                continue
            rows.pop(product.product_id, None)  # a product twice in one batch: the last row wins
            rows[product.product_id] = (product, np.asarray(vector, dtype=np.float32))
        if rows:
            kept = [p for p, _ in rows.values()]
            matrix = np.stack([v for _, v in rows.values()])
            data = products_table(kept, matrix, record.model_id, record.dim)
            with self._backend_errors(f"upsert {len(kept)} products into {version}"):
                merged = (
                    self._table(version)
                    .merge_insert("product_id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                )
            result.written = merged.num_inserted_rows + merged.num_updated_rows
        return result

    def update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        record = self._record(version)
        table = self._table(version)
        latest = {p.product_id: p for p in products}  # the last row of a product wins
        stored = self._fetch(table, list(latest), ["product_id", "image_hash"])
        result = BulkResult()
        valid = []
        for product_id, product in latest.items():
            old = stored.get(product_id)
            if old is None:
                reason = f"not in version {version}"
            elif product.model_id and product.model_id != record.model_id:
                reason = f"model {product.model_id!r} differs from the version's {record.model_id!r}"
            elif product.image_hash and old["image_hash"] and product.image_hash != old["image_hash"]:
                reason = (
                    f"image changed ({old['image_hash'][:12]} -> {product.image_hash[:12]}): "
                    "re-embed it and upsert instead"
                )
            else:
                # the vector stays, so the hash of the image it came from stays too
                valid.append(product.model_copy(update={"image_hash": product.image_hash or old["image_hash"]}))
                continue
            result.failures.append((product_id, reason))
        if valid:
            with self._backend_errors(f"update metadata of {len(valid)} products in {version}"):
                merged = table.merge_insert("product_id").when_matched_update_all().execute(metadata_table(valid))
            result.written = merged.num_updated_rows
        return result

    def delete(self, version: str, product_ids: Sequence[str]) -> int:
        self._record(version)
        table = self._table(version)
        ids = list(dict.fromkeys(product_ids))
        deleted = 0
        with self._backend_errors(f"delete {len(ids)} products from {version}"):
            for start in range(0, len(ids), _ID_CHUNK):
                deleted += table.delete(sql_in("product_id", ids[start : start + _ID_CHUNK])).num_deleted_rows
        return deleted

    # ---- reads ----------------------------------------------------------------------------------

    def get(self, product_id: str, version: str | None = None) -> dict[str, Any] | None:
        record = self._record(version)
        found = self._fetch(self._table(record.name), [product_id], list(PRODUCT_COLUMNS))
        row = found.get(product_id)
        return row_to_product(row) if row is not None else None

    def vectors(self, product_ids: Sequence[str], version: str | None = None) -> dict[str, np.ndarray]:
        record = self._record(version)
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        found = self._fetch(self._table(record.name), ids, ["product_id", VECTOR_COLUMN])
        return {pid: np.asarray(row[VECTOR_COLUMN], dtype=np.float32) for pid, row in found.items()}

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
        where = filter_sql(filters)
        table = self._table(record.name)
        candidates = max(num_candidates or self.candidates_per_k * k, k)
        with self._backend_errors(f"search {record.name} (k={k}, filter {where})"):
            rows = self._knn(table, query, k, where, candidates, exact=False)
            if len(rows) < k and table.count_rows(where) > len(rows):
                # The ANN graph can run dry under a very selective filter: the matches are few, so an
                # exact scan over them is cheap and returns every one of the k that exist.
                rows = self._knn(table, query, k, where, candidates, exact=True)
        return [
            Hit(product_id=r["product_id"], score=1.0 - float(r["_distance"]), product=row_to_product(r)) for r in rows
        ]

    def stats(self) -> dict[str, Any]:
        state = self._registry.read()
        versions = []
        for info in self.list_versions():
            table = self._table(info.name)
            with self._backend_errors(f"stats of {info.name}"):
                indexes = [
                    {"name": i.name, "type": i.index_type, "columns": list(i.columns)} for i in table.list_indices()
                ]
                table_stats = table.stats()
            versions.append(
                {
                    **asdict(info),
                    "table_version": table.version,
                    "bytes": table_stats["total_bytes"],
                    "fragments": table_stats["fragment_stats"]["num_fragments"],
                    "indexes": indexes,
                    "ann": any(i["columns"] == [VECTOR_COLUMN] for i in indexes),
                }
            )
        return {"backend": "embedded", "path": str(self.path), "live": state.live, "versions": versions}

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
        with self._backend_errors(f"pin the table of {record.name} for a snapshot"):
            table = self._db.open_table(record.name)  # a handle of our own: checkout pins it
            table_version = table.version
            table.checkout(table_version)
            count = table.count_rows()
        manifest = lance_snapshots.SnapshotManifest(
            snapshot=name,
            version=record.name,
            model_id=record.model_id,
            dim=record.dim,
            count=count,
            table_version=table_version,
            created_at=now.isoformat(timespec="microseconds"),
        )
        location = lance_snapshots.upload(self._table_dir(record.name), manifest, self.snapshot_store)
        log.info("index snapshot written", extra={"version": record.name, "snapshot": name, "location": location})
        return self._snapshot_info(manifest, location)

    def restore(self, snapshot: str, as_version: str | None = None) -> str:
        store = self.snapshot_store
        manifest = lance_snapshots.read_manifest(store, snapshot)
        name = as_version or manifest.version
        if not _VERSION_NAME.match(name):
            raise IndexBackendError(f"version name {name!r}: use letters, digits, '.', '_' or '-' (max 128)")
        if name in self._registry.read().versions or self._table_dir(name).exists():
            raise IndexBackendError(f"{self.path}: version {name!r} already exists; restore under another name")
        lance_snapshots.download(store, manifest, self._table_dir(name))
        try:
            with self._backend_errors(f"open restored version {name!r}"):
                table = self._db.open_table(name)
                count = table.count_rows()
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
            self._tables.pop(name, None)
            shutil.rmtree(self._table_dir(name), ignore_errors=True)
            raise
        self._tables[name] = table
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
        """A loaded version gets its ANN and filter indexes (when it is large enough)."""
        self.build_ann_index(version)

    def build_ann_index(self, version: str | None = None, min_rows: int | None = None) -> bool:
        """Build the cosine HNSW-SQ index and the scalar filter indexes on a version holding at least
        ``min_rows`` (default ``ann_min_rows``) products; smaller ones stay on exact search (returns False).
        Rows written afterwards are still found (scanned exactly) until the index is rebuilt."""
        record = self._record(version)
        table = self._table(record.name)
        rows = self._count_rows(record.name)
        threshold = self.ann_min_rows if min_rows is None else min_rows
        if rows < max(threshold, 1):
            log.info("ann index skipped", extra={"version": record.name, "rows": rows, "threshold": threshold})
            return False
        partitions = max(1, math.ceil(rows / self.rows_per_ann_partition))
        with self._backend_errors(f"build the ANN index of {record.name} ({rows} rows)"):
            table.create_index(
                VECTOR_COLUMN, config=HnswSq(distance_type="cosine", num_partitions=partitions), replace=True
            )
            for column, config in _SCALAR_INDEXES:
                table.create_index(column, config=config(), replace=True)
        log.info("ann index built", extra={"version": record.name, "rows": rows, "partitions": partitions})
        return True

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

    def _table_dir(self, name: str) -> Path:
        return self.path / f"{name}.lance"

    def _table(self, name: str) -> Any:
        table = self._tables.get(name)
        if table is None:
            with self._backend_errors(f"open version {name!r}"):
                table = self._db.open_table(name)
            self._tables[name] = table
        return table

    def _count_rows(self, name: str) -> int:
        with self._backend_errors(f"count {name}"):
            return self._table(name).count_rows()

    def _fetch(self, table: Any, product_ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
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
