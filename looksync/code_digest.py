"""A digest of some modules' source: for caches of results that the code computing them decides (row keys of
mapped feed rows, the demo's detection heads), so a code change makes them again instead of reusing stale ones."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable
from pathlib import Path


def modules_digest(names: Iterable[str]) -> bytes:
    """blake2b (16 bytes) over each named module's name and source file, in the order given."""
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        module = importlib.import_module(name)
        h.update(name.encode())
        h.update(Path(module.__file__).read_bytes())
    return h.digest()
