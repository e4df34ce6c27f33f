"""The saved FAISS graph of one embedded-index partition, inside the version directory.

``<version>/_search/<table>/`` holds, besides the write journal (``write_journal``):

* ``graph-<table version>-<token>.faiss``: the partition's ANN structure over its vectors at that LanceDB
  table version, inner product on unit vectors (so scores are cosines): a FAISS ``IndexHNSWFlat``
  (``hnsw``) or an ``IndexIVFFlat`` with a flat quantizer and a direct map (``ivf``: far cheaper to
  build, k-means on a sample then one assignment pass);
* ``ids-<table version>-<token>.arrow``: the product ids in label order (label i = row i added);
* ``meta.json``: which two files are current, the table version and the journal offset they were built
  at, the structure and its parameters. Written last, by an atomic rename: a reader sees the old graph or the new one.

Graph and id files are immutable once written (a new build writes new names), so a snapshot can copy
the pair ``meta.json`` names. Files of older builds are removed after the new meta is in place; a
reader that raced with that removal re-reads the meta. Meta format 1 (before ``structure``) reads as
``hnsw``, which was then the only structure.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from looksync.index.base import IndexBackendError

SEARCH_DIR = "_search"
META_FILE = "meta.json"
BUILD_LOCK = ".build.lock"
FORMAT = 2  # 2: the structure and the IVF lists recorded (1: HNSW only)
READABLE_FORMATS = (1, 2)
MEMORY_MODES = ("mmap", "private")
STRUCTURES = ("hnsw", "ivf")
# IVF k-means: trained on at most this many sampled rows per list (FAISS's own floor) for a few
# iterations: on the benchmark's catalog, 10 iterations on 48 rows a list took 1.4x as long for no
# better recall at any nprobe (bench/bench_bulk_index.py, bench/bench_index.py)
IVF_TRAIN_ROWS_PER_LIST = 39
IVF_TRAIN_ITERATIONS = 6


@dataclass(frozen=True)
class GraphMeta:
    table_version: int  # the LanceDB table version the graph's vectors were read from
    journal_offset: int  # write-journal bytes before the build; lines from here on may differ from the graph
    rows: int
    dim: int
    m: int  # HNSW links per node (0 for ivf)
    ef_construction: int  # HNSW build beam (0 for ivf)
    graph_file: str
    ids_file: str
    built_at: str
    format: int = FORMAT
    structure: str = "hnsw"  # one of STRUCTURES
    nlist: int = 0  # IVF lists (0 for hnsw)


def partition_dir(version_dir: Path, table: str) -> Path:
    return Path(version_dir) / SEARCH_DIR / table


def read_meta(directory: Path) -> GraphMeta | None:
    path = Path(directory) / META_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IndexBackendError(f"{path}: cannot read the search graph's meta: {exc!r}") from exc
    try:
        meta = GraphMeta(**raw)
    except TypeError as exc:
        raise IndexBackendError(f"{path}: unexpected search graph meta {sorted(raw)}: {exc}") from exc
    if meta.format not in READABLE_FORMATS:
        raise IndexBackendError(
            f"{path}: search graph format {meta.format}; this code reads {', '.join(map(str, READABLE_FORMATS))} "
            "(rebuild it: looksync index build, or build_ann_index)"
        )
    if meta.structure not in STRUCTURES or (meta.format == 1 and meta.structure != "hnsw"):
        raise IndexBackendError(f"{path}: search structure {meta.structure!r} (format {meta.format}); known: {', '.join(STRUCTURES)}")
    return meta


def meta_stamp(directory: Path) -> tuple[int, int, int] | None:
    """Changes whenever a new graph is published (the meta file is replaced)."""
    try:
        st = os.stat(Path(directory) / META_FILE)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


@contextmanager
def building(directory: Path) -> Iterator[None]:
    """One graph build at a time per partition (across processes), so two builds never remove each
    other's files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / BUILD_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(vectors: np.ndarray, m: int, ef_construction: int) -> Any:
    """An ``IndexHNSWFlat`` over ``vectors`` (unit rows): label i is row i."""
    import faiss

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    graph = faiss.IndexHNSWFlat(matrix.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = ef_construction
    if len(matrix):
        graph.add(matrix)
    return graph


def ivf_lists(rows: int, nlist: int = 0) -> int:
    """The IVF lists for a partition of ``rows``: ``nlist`` when given, else 2 * sqrt(rows); at most one
    list per 39 rows (FAISS's floor for training k-means), at least 1."""
    wanted = nlist or round(2 * math.sqrt(rows))
    return max(1, min(wanted, rows // 39))


def build_ivf(vectors: np.ndarray, nlist: int, seed: int = 0) -> Any:
    """An ``IndexIVFFlat`` over ``vectors`` (unit rows; inner product, flat quantizer) with ``nlist``
    lists, k-means trained on a sample of the rows, and a direct map (label -> vector, for lookups by
    label): label i is row i. Built on one OpenMP thread: k-means and assignment over a partition are
    short enough that a second thread's start-up and barriers cost more than it gains, on a busy
    machine ten times more (measured)."""
    import faiss

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = matrix.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)  # keeps a reference to it
    if not len(matrix):
        return index
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        sample_size = min(len(matrix), IVF_TRAIN_ROWS_PER_LIST * nlist)
        sample = matrix
        if sample_size < len(matrix):
            picked = np.random.default_rng(seed).choice(len(matrix), sample_size, replace=False)
            sample = matrix[np.sort(picked)]
        index.cp.niter = IVF_TRAIN_ITERATIONS
        index.cp.max_points_per_centroid = IVF_TRAIN_ROWS_PER_LIST
        index.cp.seed = seed
        index.train(sample)
        index.add(matrix)
        index.make_direct_map()
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def save(directory: Path, graph: Any, product_ids: list[str], meta: GraphMeta) -> GraphMeta:
    """Write the graph and its ids under fresh names, then publish ``meta.json`` naming them; older
    builds' files are removed. Returns the meta as published."""
    import faiss

    directory = Path(directory)
    token = uuid.uuid4().hex[:10]
    graph_file = f"graph-{meta.table_version}-{token}.faiss"
    ids_file = f"ids-{meta.table_version}-{token}.arrow"
    published = GraphMeta(**{**asdict(meta), "graph_file": graph_file, "ids_file": ids_file})
    try:
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(graph, str(directory / f".{graph_file}.tmp"))
        os.replace(directory / f".{graph_file}.tmp", directory / graph_file)
        feather.write_feather(pa.table({"product_id": pa.array(product_ids, pa.string())}), str(directory / ids_file))
        fd, tmp = tempfile.mkstemp(prefix=".meta-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(published), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / META_FILE)
    except (OSError, RuntimeError) as exc:
        raise IndexBackendError(f"{directory}: cannot save the search graph: {exc}") from exc
    for entry in os.listdir(directory):
        if entry.startswith(("graph-", "ids-", ".graph-", ".meta-")) and entry not in (graph_file, ids_file):
            (directory / entry).unlink(missing_ok=True)
    return published


def load(directory: Path, meta: GraphMeta, memory: str = "mmap") -> tuple[Any, np.ndarray]:
    """The graph and its product ids in label order. FileNotFoundError when a newer build removed the
    files meanwhile. ``memory``: ``"mmap"`` maps the flat vector storage from the file, so worker
    processes share it through the page cache, and asks the kernel to read the file ahead (a search
    then does not wait on disk for the pages it touches first); ``"private"`` reads it into this process."""
    import faiss

    directory = Path(directory)
    graph_path = directory / meta.graph_file
    if not graph_path.exists():
        raise FileNotFoundError(graph_path)
    if memory not in MEMORY_MODES:
        raise IndexBackendError(f"graph memory {memory!r}: known: {', '.join(MEMORY_MODES)}")
    try:
        if memory == "mmap":
            _read_ahead(graph_path)
            graph = faiss.read_index(str(graph_path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        else:
            graph = faiss.read_index(str(graph_path))
        ids = feather.read_table(str(directory / meta.ids_file), memory_map=True).column("product_id")
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, pa.ArrowException) as exc:
        raise IndexBackendError(f"{directory}: cannot load the search graph {meta.graph_file}: {exc}") from exc
    if _structure_of(graph) != meta.structure:
        raise IndexBackendError(f"{directory}: search graph {meta.graph_file} is {type(graph).__name__}; meta says {meta.structure}")
    if graph.ntotal != meta.rows or len(ids) != meta.rows or graph.d != meta.dim:
        raise IndexBackendError(
            f"{directory}: search graph {meta.graph_file} holds {graph.ntotal} x {graph.d}, ids {len(ids)}; "
            f"meta says {meta.rows} x {meta.dim}"
        )
    return graph, np.asarray(ids.to_pylist(), dtype=object)


def _read_ahead(path: Path) -> None:
    """Start reading ``path`` into the page cache (asynchronous; a no-op where the OS lacks it)."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


def _structure_of(graph: Any) -> str | None:
    import faiss

    if isinstance(graph, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(graph, faiss.IndexIVFFlat):
        return "ivf"
    return None


def flat_storage(graph: Any) -> Any:
    """The HNSW graph's own flat index of its vectors (inner product): exact scoring of a small allowed
    set searches it directly, with no copy and no LanceDB call."""
    import faiss

    return faiss.downcast_index(graph.storage)
