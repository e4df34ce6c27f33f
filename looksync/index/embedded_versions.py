"""The embedded index's version registry, as the ``CatalogIndex`` sees it: creating versions, the live
and shadow switches, listing, pruning and dropping versions, and ``stats`` over each version's
partitions. The registry file itself (``versions.json`` and its lock) is ``lance_registry``'s.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from looksync.index import faiss_graph
from looksync.index.base import IndexBackendError, VersionInfo
from looksync.index.embedded_store import PartitionStore, log
from looksync.index.lance_registry import VersionRecord
from looksync.index.lance_schema import VECTOR_COLUMN

VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # what a named (or restored) version may be called


def _model_slug(model_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")[:40] or "model"


class VersionsMixin(PartitionStore):
    """Version lifecycle and the live/shadow switches of ``EmbeddedIndex``."""

    search_mode: str
    partition_searches: Counter[tuple[str, str, str]]  # counted by embedded_search

    def create_version(self, model_id: str, dim: int, name: str | None = None) -> str:
        if not model_id:
            raise IndexBackendError("create_version: model_id is required")
        if not isinstance(dim, int) or dim < 1:
            raise IndexBackendError(f"create_version: dim must be a positive integer, got {dim!r}")
        if name is not None and not VERSION_NAME.match(name):
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
