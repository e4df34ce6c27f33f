"""Snapshots of the embedded index: copying a version (every partition pinned at one table version,
with its saved FAISS graph and write journal) to the snapshot store, restoring one as a new version,
and listing them. The upload, download and manifest format are ``lance_snapshots``'s.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from looksync.catalog.object_store import LocalStore, ObjectStore
from looksync.index import faiss_graph, lance_partitions, lance_snapshots, write_journal
from looksync.index.base import IndexBackendError, SnapshotInfo
from looksync.index.embedded_store import PartitionStore, log
from looksync.index.embedded_versions import VERSION_NAME
from looksync.index.lance_registry import VersionRecord
from looksync.index.write_journal import WriteJournal


class SnapshotsMixin(PartitionStore):
    """``snapshot``, ``restore``, ``list_snapshots`` and ``snapshot_store`` of ``EmbeddedIndex``."""

    _snapshot_store: ObjectStore | Callable[[], ObjectStore] | None

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
        if not VERSION_NAME.match(name):
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
