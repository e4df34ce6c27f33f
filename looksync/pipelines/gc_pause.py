"""``gc_paused``: Python's cyclic garbage collector held off for one bulk pass of a pipeline stage.

A stage over a large feed allocates and keeps hundreds of thousands of small containers (the rows read,
their keys, the stored products' ids and records); each full collection walks every one of them, and
full collections come more often the more the stage keeps. In ``bench/bench_feed_confirm.py`` (100k rows,
10% repriced) that walking was about as much CPU as the stage's own work. Reference counting still frees
everything that is not in a reference cycle at once; what is (rare in these stages) waits until the
collector runs again, right after the stage.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (usable as a decorator); the collector's state after it is
    what it was before (a caller that disabled it keeps it disabled)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
