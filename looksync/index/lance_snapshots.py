"""Snapshots of one embedded index version: its partition tables' files, copied to an object store.

A version is a directory of LanceDB tables (one per (layer, market) partition). A LanceDB table is a
directory of immutable files plus one manifest per table version (``_versions/<n>.manifest``). A snapshot
pins each partition at its current table version *n*, copies every file present when it starts and only
manifest *n*: files written later by a concurrent writer are ignored, and each restored table opens at
exactly version *n*. Layout in the store::

    <snapshot>/files/<table>.lance/<path inside the table directory>
    <snapshot>/files/_search/<table>/...   the partition's FAISS graph, its ids and meta, its write journal
    <snapshot>/manifest.json   written last: a snapshot without it is incomplete and is not listed

The manifest carries the version's model id, vector size, row count and each file's size and sha256;
a restore checks every file before the table is put in place and its row count after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looksync.catalog.object_store import ObjectStore, StorageError
from looksync.index.base import IndexBackendError

MANIFEST = "manifest.json"
FORMAT = 2  # 2: one table per partition (1 was one table per version)
_U64_MAX = 2**64 - 1
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")


@dataclass
class SnapshotManifest:
    snapshot: str
    version: str
    model_id: str
    dim: int
    count: int
    tables: dict[str, int]  # partition table name -> its pinned table version
    created_at: str
    files: list[dict[str, Any]] = field(default_factory=list)  # {"path", "bytes", "sha256"}
    format: int = FORMAT

    @property
    def checksum(self) -> str:
        """One digest over every file's path and digest, so two snapshots compare in one string."""
        lines = "".join(f"{f['path']}\t{f['sha256']}\n" for f in sorted(self.files, key=lambda f: f["path"]))
        return hashlib.sha256(lines.encode()).hexdigest()

    def to_json(self) -> bytes:
        return json.dumps({**self.__dict__, "checksum": self.checksum}, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> SnapshotManifest:
        try:
            raw = json.loads(data)
            declared = raw.pop("checksum")
            manifest = cls(**raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexBackendError(f"{where}: unreadable snapshot manifest: {exc!r}") from exc
        if manifest.format != FORMAT:
            raise IndexBackendError(f"{where}: snapshot format {manifest.format}; this code reads {FORMAT}")
        if declared != manifest.checksum:
            raise IndexBackendError(f"{where}: manifest checksum mismatch (declared {declared[:12]}, files give {manifest.checksum[:12]})")
        return manifest


def check_snapshot_name(name: str) -> str:
    if not _SNAPSHOT_NAME.match(name or ""):
        raise IndexBackendError(f"snapshot name {name!r}: use letters, digits, '.', '_', '~' or '-' (max 200)")
    return name


def _manifest_version(path: Path) -> int | None:
    """The table version a manifest file describes (LanceDB names them n, or u64::MAX - n in the V2 scheme)."""
    if path.suffix != ".manifest" or not path.stem.isdigit():
        return None
    number = int(path.stem)
    return _U64_MAX - number if number > 2**63 else number


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_files(table_dir: Path, table_version: int) -> list[Path]:
    """The files making up ``table_version`` of the table (plus unreferenced newer data, harmlessly)."""
    files, manifests = [], []
    for path in sorted(table_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(table_dir)
        if rel.parts[0] == "_versions":
            if _manifest_version(path) == table_version:
                manifests.append(path)
            continue  # other versions' manifests and the latest-version hint stay behind
        files.append(path)
    if not manifests:
        raise IndexBackendError(f"{table_dir}: no manifest for table version {table_version}")
    return files + manifests


def upload(
    version_dir: Path, manifest: SnapshotManifest, store: ObjectStore, extra: Sequence[tuple[str, Path | bytes]] = ()
) -> str:
    """Copy each partition table's files for its pinned version (``manifest.tables``) into ``store``,
    then ``extra`` (path inside the version directory -> a file, or the bytes to store there: the search
    graphs), manifest last, every file in the checksum; returns its URI."""
    prefix = check_snapshot_name(manifest.snapshot)
    if store.exists(f"{prefix}/{MANIFEST}"):
        raise IndexBackendError(f"{store.uri}/{prefix}: a snapshot of that name already exists")
    try:
        for table, table_version in sorted(manifest.tables.items()):
            for path in table_files(version_dir / f"{table}.lance", table_version):
                rel = path.relative_to(version_dir).as_posix()
                manifest.files.append({"path": rel, "bytes": path.stat().st_size, "sha256": _sha256(path)})
                store.put_file(f"{prefix}/files/{rel}", path)
        for rel, source in extra:
            if isinstance(source, bytes):
                digest, size = hashlib.sha256(source).hexdigest(), len(source)
                store.put_bytes(f"{prefix}/files/{rel}", source)
            else:
                digest, size = _sha256(source), source.stat().st_size
                store.put_file(f"{prefix}/files/{rel}", source)
            manifest.files.append({"path": rel, "bytes": size, "sha256": digest})
        store.put_bytes(f"{prefix}/{MANIFEST}", manifest.to_json())
    except (StorageError, OSError) as exc:
        raise IndexBackendError(f"snapshot {prefix} to {store.uri}: {exc}") from exc
    return f"{store.uri}/{prefix}"


def read_manifest(store: ObjectStore, snapshot: str) -> SnapshotManifest:
    prefix = check_snapshot_name(snapshot)
    key = f"{prefix}/{MANIFEST}"
    try:
        if not store.exists(key):
            raise IndexBackendError(f"{store.uri}/{prefix}: no such snapshot (no {MANIFEST}); known: {list_names(store)}")
        return SnapshotManifest.from_json(store.get_bytes(key), f"{store.uri}/{key}")
    except StorageError as exc:
        raise IndexBackendError(f"read snapshot {prefix}: {exc}") from exc


def list_names(store: ObjectStore) -> list[str]:
    try:
        return sorted(key.split("/")[0] for key in store.list() if key.count("/") == 1 and key.endswith(f"/{MANIFEST}"))
    except StorageError as exc:
        raise IndexBackendError(f"list snapshots in {store.uri}: {exc}") from exc


def download(store: ObjectStore, manifest: SnapshotManifest, target: Path) -> None:
    """Fetch every file into a hidden staging directory beside ``target``, check sizes and sha256,
    then move it to ``target`` in one rename (a failed restore leaves nothing behind)."""
    if target.exists():
        raise IndexBackendError(f"{target}: already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{uuid.uuid4().hex[:8]}-", dir=target.parent))
    try:
        for entry in manifest.files:
            rel = entry["path"]
            if rel.startswith("/") or ".." in rel.split("/"):
                raise IndexBackendError(f"snapshot {manifest.snapshot}: unsafe file path {rel!r} in the manifest")
            local = staging / rel
            store.get_file(f"{manifest.snapshot}/files/{rel}", local)
            size, digest = local.stat().st_size, _sha256(local)
            if (size, digest) != (entry["bytes"], entry["sha256"]):
                raise IndexBackendError(
                    f"{store.uri}/{manifest.snapshot}/files/{rel}: checksum mismatch "
                    f"(expected {entry['bytes']} bytes sha256 {entry['sha256'][:12]}..., got {size} bytes {digest[:12]}...)"
                )
        os.replace(staging, target)
    except StorageError as exc:
        raise IndexBackendError(f"restore snapshot {manifest.snapshot}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
