"""The write journal of one embedded-index partition: which products' vectors were (re)written.

A partition's saved FAISS graph (``faiss_graph``) holds the vectors of the table version it was built
from. Every later write that stores a vector for a product (an upsert, or a move into this partition)
first appends that product's id here, *then* commits to LanceDB, all under the journal's lock: a crash
between the two leaves the id marked (harmless, it is then scored exactly), never a changed vector
unmarked. A metadata-only update changes no vector and is not journalled; a delete removes the row
itself, which the reader sees in the table.

A graph build takes the same lock for the moment it reads the table version and the journal's size, so
every line before that offset belongs to a write already in that table version, and every write not in
it is at or after the offset. Readers read from the offset the graph recorded to the end of the file,
complete lines only (a line being appended belongs to a write not yet committed).

File: ``journal.jsonl``, one JSON list of product ids per write, append-only; ``.lock`` beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from looksync.index.base import IndexBackendError

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = ".lock"


class WriteJournal:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across threads and processes: held by a vector write (journal line + commit) and
        by a graph build while it reads the table version and the journal offset."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = open(self.directory / LOCK_FILE, "a+")  # noqa: SIM115 - closed below, after unlocking
        except OSError as exc:
            raise IndexBackendError(f"{self.directory}: cannot open the write-journal lock: {exc}") from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, product_ids: Sequence[str]) -> None:
        """Append one line naming ``product_ids``, flushed to disk before the caller commits the write.
        Call it under ``locked()``."""
        if not product_ids:
            return
        line = json.dumps(list(product_ids), ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise IndexBackendError(f"{self.path}: cannot record {len(product_ids)} written products: {exc}") from exc

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise IndexBackendError(f"{self.path}: cannot stat the write journal: {exc}") from exc

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise IndexBackendError(f"{self.path}: cannot read the write journal: {exc}") from exc

    def written_since(self, offset: int) -> set[str]:
        """Every product id journalled at or after byte ``offset`` (complete lines only)."""
        data = self.read_bytes()
        if offset > len(data):
            raise IndexBackendError(
                f"{self.path}: holds {len(data)} bytes but the search graph was built at offset {offset}; "
                "the journal was truncated: rebuild the partition's graph (build_ann_index)"
            )
        tail = data[offset:]
        end = tail.rfind(b"\n")
        ids: set[str] = set()
        for number, line in enumerate(tail[: end + 1].splitlines()):
            if not line.strip():
                continue
            try:
                ids.update(json.loads(line))
            except ValueError as exc:
                raise IndexBackendError(f"{self.path}: line {number + 1} after offset {offset} is not JSON: {exc}") from exc
        return ids
