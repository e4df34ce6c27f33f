"""Bulk loading the embedded index: products/s of ``upsert`` batches into a new version, then the end of the
bulk load (the FAISS structures), against raw writes of the same rows measured in the same run.

    python bench/bench_bulk_index.py --n 100000                 # 128-d (LookSync-Tiny), default ann_min_rows
    python bench/bench_bulk_index.py --n 100000 --dim 512 --graphs   # every partition gets its graph
    python bench/bench_bulk_index.py --n 100000 --graphs --structure hnsw  # HNSW graphs instead of IVF lists

The products and vectors are ``bench_index.py``'s synthetic catalog (18 layer x market partitions).
Timed, on the index: ``create_version`` + ``begin_bulk_load`` + ``upsert`` in batches of ``--batch``
(Arrow columns from the products, vector checks, partition routing, the write journal, LanceDB commits)
and ``end_bulk_load`` (a ``--structure`` per partition holding at least ``ann_min_rows`` rows; ``--graphs``: 1).
Then the same load again into a second version (the rows exist now only in the first: still appends),
and a reload of the same batches into the same version (every row exists: merges).
Anchors: LanceDB ``create_table`` of the same rows as ready-made Arrow tables, one per partition (the
bare write), and bare FAISS builds over each partition's vectors with the index's parameters:
``IndexHNSWFlat`` (M=32, efConstruction=64, on every core) and ``IndexIVFFlat`` (the index's list count,
k-means on the same sample size and iterations, on one thread as the index builds it).

The anchors run first, in a process of their own (``--part anchors``), then the index's loads in a fresh
one (``--part index``), as a bulk load runs in a task process of its own: in one process after the
anchors (200 MB written through LanceDB, HNSW builds on every core), the 512-d index load ran at 21,581
products/s against 25,750-26,937/s alone (docs/index.md). The work directory is removed at the end
(``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_index import make_data, products  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--graphs", action="store_true", help="ann_min_rows=1: every partition gets a FAISS graph")
    parser.add_argument("--structure", choices=["hnsw", "ivf"], default="ivf", help="what end_bulk_load builds (default: the index's)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--part", choices=["all", "anchors", "index"], default="all",
                        help="all: the anchors, then the index, each in a process of its own under a new work directory")  # fmt: skip
    args = parser.parse_args()

    if args.part == "anchors":
        anchors(args)
        return
    if args.part == "index":
        load_index(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-", dir=args.work))
    print(f"load average {os.getloadavg()[0]:.2f} at the start; {args.n} products, dim {args.dim}, under {work}", flush=True)
    own = [f"--n={args.n}", f"--dim={args.dim}", f"--batch={args.batch}", f"--structure={args.structure}", f"--work={work}"]
    try:
        for part in ("anchors", "index"):
            flags = [*own, *(["--graphs"] if args.graphs else []), f"--part={part}"]
            subprocess.run([sys.executable, __file__, *flags], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def catalog(args: argparse.Namespace) -> tuple[list, np.ndarray]:
    data = make_data(args.n, args.dim, 1, seed=2)
    return products(data, np.arange(args.n), "bench/synthetic"), data["matrix"]


def anchors(args: argparse.Namespace) -> None:
    """The bare LanceDB writes and FAISS builds of the same rows (under ``--work``/raw); the write's time
    goes to ``--work``/raw_s for the index's ``x raw`` column."""
    import faiss
    import lancedb

    from looksync.index import faiss_graph, lance_partitions
    from looksync.index.lance_schema import products_table

    rows, matrix = catalog(args)
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(rows):
        by_key.setdefault((p.layer, p.market), []).append(i)
    tables = {key: products_table([rows[i] for i in idx], matrix[idx], "bench/synthetic", args.dim) for key, idx in by_key.items()}
    t0 = time.perf_counter()
    db = lancedb.connect(args.work / "raw")
    for key, table in tables.items():
        db.create_table(lance_partitions.table_name(*key), data=table)
    raw_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    for idx in by_key.values():
        graph = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 64
        graph.add(np.ascontiguousarray(matrix[idx]))
    faiss_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for idx in by_key.values():
        nlist = faiss_graph.ivf_lists(len(idx))
        quantizer = faiss.IndexFlatIP(args.dim)
        ivf = faiss.IndexIVFFlat(quantizer, args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter, ivf.cp.max_points_per_centroid = faiss_graph.IVF_TRAIN_ITERATIONS, faiss_graph.IVF_TRAIN_ROWS_PER_LIST
        part = np.ascontiguousarray(matrix[idx])
        ivf.train(part[rng.choice(len(idx), min(len(idx), faiss_graph.IVF_TRAIN_ROWS_PER_LIST * nlist), replace=False)])
        ivf.add(part)
    ivf_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    print(f"anchor: LanceDB create_table of ready Arrow rows ({len(tables)} partitions) {raw_s:.2f}s = "
          f"{args.n / raw_s:,.0f}/s; FAISS HNSW builds {faiss_s:.2f}s = {args.n / faiss_s:,.0f}/s; "
          f"FAISS IVF builds {ivf_s:.2f}s = {args.n / ivf_s:,.0f}/s")  # fmt: skip
    (args.work / "raw_s").write_text(repr(raw_s))


def load_index(args: argparse.Namespace) -> None:
    """The index's bulk loads, timed (under ``--work``/index)."""
    from looksync.index.embedded import EmbeddedIndex

    rows, matrix = catalog(args)
    raw_s = float((args.work / "raw_s").read_text())
    index = EmbeddedIndex(args.work / "index", ann_min_rows=1 if args.graphs else 50_000, ann_structure=args.structure)

    def load(version: str | None) -> tuple[str, float, float]:
        t0 = time.perf_counter()
        version = version or index.create_version("bench/synthetic", args.dim)
        index.begin_bulk_load(version)
        for start in range(0, args.n, args.batch):
            result = index.upsert(version, rows[start : start + args.batch], matrix[start : start + args.batch])
            assert not result.failures, result.failures[:3]
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.end_bulk_load(version)
        return version, write_s, time.perf_counter() - t0

    print(f"end_bulk_load builds {args.structure} structures")
    print(f"{'load':<28} {'write s':>8} {'write/s':>9} {'x raw':>6} {'graphs s':>9} {'total/s':>9}")

    def report(name: str, version: str, write_s: float, graph_s: float) -> None:
        assert index.count(version) == args.n, (index.count(version), args.n)
        total = write_s + graph_s
        print(f"{name:<28} {write_s:8.2f} {args.n / write_s:9,.0f} {raw_s / write_s:6.2f} {graph_s:9.2f} {args.n / total:9,.0f}")

    first, write_s, graph_s = load(None)
    report("new version", first, write_s, graph_s)
    report("second new version", *load(None))
    report("same version again (merges)", *load(first))


if __name__ == "__main__":
    main()
