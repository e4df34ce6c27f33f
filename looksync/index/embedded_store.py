"""The embedded index's storage underneath every other part: a version's directory, its LanceDB
connection, its (layer, market) partition tables and their listing, the rows of given products, and
the one error type for LanceDB's failures.

``EmbeddedIndex`` (``embedded``) is this class plus one mixin per concern (``embedded_versions``,
``embedded_writes``, ``embedded_search``, ``embedded_snapshots``, ``embedded_graphs``); they all build on
the helpers here and on the handle state that ``EmbeddedIndex.__init__`` sets up (annotated below).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pyarrow.compute as pc

from looksync.index import faiss_graph, faiss_view, lance_partitions
from looksync.index.base import IndexBackendError
from looksync.index.lance_filters import sql_in, sql_string
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRecord, VersionRegistry
from looksync.index.lance_schema import table_schema

# One logger for the whole embedded backend, named as before it was split into modules.
log = logging.getLogger("looksync.index.embedded")

ID_CHUNK = 1000  # product ids per IN (...) predicate


class PartitionStore:
    """Opens and caches a handle's versions and partitions; finds products' stored rows."""

    path: Path
    read_consistency: timedelta | None
    views: faiss_view.ViewCache
    _registry: VersionRegistry
    _dbs: dict[str, Any]  # version -> LanceDB connection on its directory
    _tables: dict[tuple[str, Key], Any]  # (version, partition) -> open table
    _listed: dict[str, tuple[list[Key], float]]  # version -> (partitions, when listed)
    # (version, partition) -> (stamp of its _versions directory, table version read, stamp settled)
    _table_versions: dict[tuple[str, Key], tuple[Any, int, bool]]

    def _record(self, version: str | None) -> VersionRecord:
        state = self._registry.read()
        name = version if version is not None else state.live
        if name is None:
            raise IndexBackendError(f"{self.path}: no live index version; create one and call set_live")
        record = state.versions.get(name)
        if record is None:
            raise IndexBackendError(f"{self.path}: no index version {name!r}; known: {sorted(state.versions)}")
        return record

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

    def _search_dir(self, name: str, key: Key) -> Path:
        return faiss_graph.partition_dir(self._version_dir(name), lance_partitions.table_name(*key))

    def _fetch(self, table: Any, product_ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if len(product_ids) > ID_CHUNK:  # many ids: one scan of the columns beats a query per chunk of ids
            with self._backend_errors(f"read {len(product_ids)} products from {table.name}"):
                data = table.search().select(list(dict.fromkeys(["product_id", *columns]))).limit(None).to_arrow()
            data = data.filter(pc.is_in(data.column("product_id"), value_set=pa.array(product_ids, type=pa.string())))
            return {row["product_id"]: row for row in data.to_pylist()}
        with self._backend_errors(f"read {len(product_ids)} products from {table.name}"):
            for start in range(0, len(product_ids), ID_CHUNK):
                chunk = product_ids[start : start + ID_CHUNK]
                where = sql_in("product_id", chunk) if len(chunk) > 1 else f"product_id = {sql_string(chunk[0])}"
                for row in table.search().where(where).select(columns).limit(len(chunk)).to_list():
                    found[row["product_id"]] = row
        return found

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


def _has_manifest(table_dir: Path) -> bool:
    try:
        return any(e.endswith(".manifest") for e in os.listdir(table_dir / "_versions"))
    except OSError:
        return False
