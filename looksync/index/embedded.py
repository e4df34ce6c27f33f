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
columns in memory, the partition's saved FAISS HNSW graph or IVF lists (``faiss_graph``, built by
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

The handle is put together from one module per concern: ``embedded_store`` (versions' directories,
connections and partition tables: what the rest builds on), ``embedded_versions`` (the registry, live
and shadow, ``stats``), ``embedded_writes``, ``embedded_search`` (and the other reads),
``embedded_snapshots`` and ``embedded_graphs`` (``build_ann_index``). This module holds the class and
its settings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from looksync.catalog.object_store import ObjectStore
from looksync.index import faiss_graph, faiss_view
from looksync.index.base import CatalogIndex, IndexBackendError
from looksync.index.embedded_graphs import GraphsMixin
from looksync.index.embedded_search import SearchMixin
from looksync.index.embedded_snapshots import SnapshotsMixin
from looksync.index.embedded_versions import VersionsMixin
from looksync.index.embedded_writes import WritesMixin
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRegistry
from looksync.index.vectors import NORM_TOLERANCE


class EmbeddedIndex(VersionsMixin, WritesMixin, SearchMixin, SnapshotsMixin, GraphsMixin, CatalogIndex):
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
    ``ann_structure``: what ``build_ann_index`` builds per partition, ``"ivf"`` (the default: IVF lists,
    ``ivf_nlist`` of them, 0 = 2 * sqrt(rows); far cheaper to build) or ``"hnsw"``. A search uses whatever each
    partition's saved meta names, so switching it takes effect at the next build. ``ivf_nprobe``: the IVF
    lists a search probes (more for selective filters).
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
        ann_structure: str = "ivf",
        ivf_nlist: int = 0,
        ivf_nprobe: int = 16,
    ):
        if search not in ("faiss", "lance"):
            raise IndexBackendError(f"embedded index search {search!r}: known: faiss, lance")
        if graph_memory not in faiss_graph.MEMORY_MODES:
            raise IndexBackendError(f"embedded index graph_memory {graph_memory!r}: known: {', '.join(faiss_graph.MEMORY_MODES)}")
        if ann_structure not in faiss_graph.STRUCTURES:
            raise IndexBackendError(f"embedded index ann_structure {ann_structure!r}: known: {', '.join(faiss_graph.STRUCTURES)}")
        self.graph_memory = graph_memory
        self.ann_structure = ann_structure
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
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
