"""The embedded index's version registry: one small JSON file naming each version, the live one and the
shadow one (built beside live for comparison, serving nothing until promoted).

Writers serialise edits with an exclusive lock file and publish by writing a temp file and
``os.replace``-ing it, so a reader sees either the old or the new registry, never half of one; that
rename is what makes ``set_live`` atomic. Readers re-read the file only when its stat stamp changes.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from looksync.index.base import IndexBackendError

REGISTRY_FILE = "versions.json"
LOCK_FILE = ".versions.lock"
FORMAT = 1


@dataclass(frozen=True)
class VersionRecord:
    name: str
    model_id: str
    dim: int
    created_at: str  # ISO 8601 UTC with microseconds; sorts chronologically as a string


@dataclass
class RegistryState:
    live: str | None = None
    shadow: str | None = None  # a candidate mirrored queries compare with live; never the live one
    versions: dict[str, VersionRecord] = field(default_factory=dict)

    def newest_first(self) -> list[VersionRecord]:
        return sorted(self.versions.values(), key=lambda r: (r.created_at, r.name), reverse=True)


class VersionRegistry:
    def __init__(self, directory: Path):
        self.path = Path(directory) / REGISTRY_FILE
        self._lock_path = Path(directory) / LOCK_FILE
        self._stamp: tuple[int, int, int] | None = None
        self._state = RegistryState()

    def read(self) -> RegistryState:
        """The current registry, re-read from disk only when the file changed since the last read."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._state = None, RegistryState()
            return self._state
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._state = self._load()
            self._stamp = stamp
        return self._state

    @contextmanager
    def edit(self) -> Iterator[RegistryState]:
        """Lock, yield a fresh copy of the registry to change, then publish it atomically.
        Nothing is written if the block raises."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._stamp = None  # force a re-read under the lock
                state = copy.deepcopy(self.read())
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> RegistryState:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            versions = {v["name"]: VersionRecord(**v) for v in raw["versions"]}
            live = raw.get("live")
            shadow = raw.get("shadow")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexBackendError(f"{self.path}: cannot read the index registry: {exc!r}") from exc
        if live is not None and live not in versions:
            raise IndexBackendError(f"{self.path}: live version {live!r} is not among the versions {sorted(versions)}")
        if shadow is not None and shadow not in versions:
            raise IndexBackendError(f"{self.path}: shadow version {shadow!r} is not among the versions {sorted(versions)}")
        return RegistryState(live=live, shadow=shadow, versions=versions)

    def _write(self, state: RegistryState) -> None:
        payload = {
            "format": FORMAT,
            "live": state.live,
            "shadow": state.shadow,
            "versions": [asdict(r) for r in sorted(state.versions.values(), key=lambda r: r.created_at)],
        }
        fd, tmp = tempfile.mkstemp(prefix=".versions-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None
        self.read()
