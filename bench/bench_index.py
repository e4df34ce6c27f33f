"""Catalog index benchmark: the embedded backend against exact search and FAISS HNSW, in one run.

Synthetic catalog: ``--n`` unit vectors of ``--dim`` values, clustered (as image embeddings are), with
realistic filter columns: 12 categories over 6 layers, 3 genders, 3 markets with their currencies and
price levels, 200 brands (Zipf-distributed). ``--queries`` queries are perturbed copies of random rows
and are filtered, as a look query is, by that row's category AND market. Ground truth is the exact
cosine top-k (numpy, blocked). Measured, single-threaded per query:

* embedded backend (``EmbeddedIndex``: one LanceDB table per (layer, market) as the store), searching
  through its default FAISS views (``search="faiss"``: per partition a saved ``IndexIVFFlat`` (the
  default structure), or with ``--structure hnsw`` an ``IndexHNSWFlat``, searched with an ``IDSelectorBitmap`` of the rows passing the
  filter; the HNSW beam swept by ``--candidates``, the IVF lists probed by ``--nprobes``): the look query
  (layer AND category AND market, routed to one partition, category filtered inside) and unfiltered
  (every partition, merged);
* the same version searched through LanceDB (``search="lance"``: HNSW-SQ + scalar indexes per
  partition, prefiltered), for comparison (``--no-lance`` skips it);
* FAISS ``IndexHNSWFlat`` unfiltered (the anchor), at the smallest efSearch reaching the target recall.

Prints recall@k, p50/p95 latency, the p95 ratio to FAISS, build times, the views' memory and peak RSS.

    python bench/bench_index.py --n 1000000      # the issue's size; --n 100000 fits ~10 minutes on 2 cores
    python bench/bench_index.py --n 100000 --no-lance --structure hnsw --reuse DIR   # HNSW graphs per partition

``--reuse DIR`` keeps what is slow to make in ``DIR`` and reads it back on the next run with the same
``--n/--dim/--queries/--k/--seed``: the queries, their keys and exact ground truth, the anchor graph
(read back into private memory, as built) and the embedded index version (``--rebuild-graphs`` rebuilds
only its FAISS graphs, after a change to how they are built; a reused version built with another
``--structure`` is rebuilt with the one asked for). The 1M build takes ~40 minutes on 2 cores;
a reused run measures the query paths in minutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CATEGORIES = {  # 12 categories over 6 layers, all in the project's taxonomy
    "t_shirt": "topwear", "shirt": "topwear", "jeans": "bottomwear", "trousers": "bottomwear",
    "dress": "one_piece", "jumpsuit": "one_piece", "sneakers": "footwear", "boots": "footwear",
    "jacket": "outer_topwear", "coat": "outer_topwear", "handbag": "bag", "backpack": "bag",
}  # fmt: skip
MARKETS = {"IN": ("INR", 2500.0), "US": ("USD", 45.0), "JP": ("JPY", 6000.0)}
GENDERS = ("women", "men", "unisex")


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def make_data(n: int, dim: int, n_queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((max(64, n // 500), dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    matrix = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # blocked to keep the float64 temporaries small
        m = min(100_000, n - start)
        block = centroids[rng.integers(0, len(centroids), m)] + rng.standard_normal((m, dim), dtype=np.float32) * (
            1.0 / np.sqrt(dim)
        )
        matrix[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    cats = np.array(list(CATEGORIES))
    markets = np.array(list(MARKETS))
    brand_p = 1.0 / np.arange(1, 201)
    columns = {
        "category": cats[rng.integers(0, len(cats), n)],
        "market": markets[rng.integers(0, 3, n)],
        "gender": np.array(GENDERS)[rng.integers(0, 3, n)],
        "brand": np.array([f"Brand {i:03d}" for i in range(200)])[rng.choice(200, n, p=brand_p / brand_p.sum())],
    }
    level = np.array([MARKETS[m][1] for m in columns["market"]])
    columns["price"] = np.round(level * rng.lognormal(0.0, 0.6, n), 2)
    source = rng.choice(n, n_queries, replace=False)
    noise = rng.standard_normal((n_queries, dim)).astype(np.float32) * (0.3 / np.sqrt(dim))
    queries = matrix[source] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return {"matrix": matrix, "columns": columns, "queries": queries, "source": source}


def exact_top_k(matrix: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    sub = matrix if rows is None else matrix[rows]
    scores = queries @ sub.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return top if rows is None else rows[top]


def ground_truth(data: dict, k: int) -> tuple[list[set], list[set], list[tuple[str, str]]]:
    matrix, cols, queries = data["matrix"], data["columns"], data["queries"]
    plain = []
    for start in range(0, len(queries), 100):
        plain += [set(r) for r in exact_top_k(matrix, queries[start : start + 100], k)]
    keys = [(cols["category"][s], cols["market"][s]) for s in data["source"]]
    filtered: list[set] = [set()] * len(queries)
    for key in set(keys):
        rows = np.flatnonzero((cols["category"] == key[0]) & (cols["market"] == key[1]))
        which = [i for i, kk in enumerate(keys) if kk == key]
        for i, top in zip(which, exact_top_k(matrix, queries[which], k, rows), strict=True):
            filtered[i] = set(top)
    return plain, filtered, keys


def products(data: dict, rows: np.ndarray, model_id: str) -> list:
    from looksync.catalog.schema import Product

    cols = data["columns"]
    out = []
    for r in rows:
        market = str(cols["market"][r])
        out.append(
            Product.model_construct(  # trusted synthetic rows: skip validation, as the bench measures the index
                product_id=f"p{r}", vendor="bench", vendor_sku=str(r), market=market, title=f"Item {r}",
                description="", brand=str(cols["brand"][r]), category=str(cols["category"][r]),
                layer=CATEGORIES[str(cols["category"][r])], gender=str(cols["gender"][r]), colours=[],
                pattern=None, material=None, sizes=["M"], price=float(cols["price"][r]),
                currency=MARKETS[market][0], in_stock=True, image_urls=[f"https://img.example/{r}.jpg"],
                product_url="", updated_at="2025-01-01T00:00:00Z", image_hash=None, model_id=model_id,
            )
        )  # fmt: skip
    return out


def direct_tables(data: dict, rows: np.ndarray, model_id: str) -> dict[tuple[str, str], Any]:
    """The rows as one Arrow table per (layer, market) partition, in the index's table schema, built
    from the columns directly (no ``Product`` objects): the bench's bulk path for a fresh version."""
    import pyarrow as pa

    from looksync.index.lance_schema import table_schema

    cols, dim = data["columns"], data["matrix"].shape[1]
    layer = np.array([CATEGORIES[c] for c in cols["category"][rows]])
    market = cols["market"][rows]
    tables = {}
    for key in sorted(set(zip(layer.tolist(), market.tolist(), strict=True))):
        part = rows[(layer == key[0]) & (market == key[1])]
        n = len(part)
        strings = lambda values: pa.array(values.tolist(), pa.string())  # noqa: E731
        fields = {
            "product_id": strings(np.char.add("p", part.astype(str))), "vendor": pa.array(["bench"] * n),
            "vendor_sku": strings(part.astype(str)), "market": pa.array([key[1]] * n),
            "title": strings(np.char.add("Item ", part.astype(str))), "description": pa.array([""] * n),
            "brand": strings(cols["brand"][part]), "category": strings(cols["category"][part]),
            "category_source": pa.nulls(n, pa.string()), "layer": pa.array([key[0]] * n),
            "gender": strings(cols["gender"][part]), "colours": pa.array([[]] * n, pa.list_(pa.string())),
            "pattern": pa.nulls(n, pa.string()), "material": pa.nulls(n, pa.string()),
            "sizes": pa.array([["M"]] * n, pa.list_(pa.string())), "price": pa.array(cols["price"][part]),
            "currency": pa.array([MARKETS[key[1]][0]] * n), "in_stock": pa.array(np.ones(n, dtype=bool)),
            "image_urls": pa.array([[f"https://img.example/{r}.jpg"] for r in part.tolist()], pa.list_(pa.string())),
            "product_url": pa.array([""] * n), "updated_at": pa.array(["2025-01-01T00:00:00Z"] * n),
            "image_hash": pa.nulls(n, pa.string()), "model_id": pa.array([model_id] * n),
        }  # fmt: skip
        flat = pa.array(np.ascontiguousarray(data["matrix"][part]).reshape(-1))
        fields["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
        tables[key] = pa.table(fields, schema=table_schema(dim))
    return tables


def build_embedded(
    path: Path, data: dict, rows: np.ndarray, batch: int = 50_000, direct: bool = False, structure: str = "hnsw"
):
    """Load the LanceDB store, then the FAISS graphs (``end_bulk_load``); returns the index and timings.
    ``direct``: each partition's rows written to its new table in one append instead of through
    ``upsert`` (which looks every id up and merges): the same tables, ~10x sooner, for the 1M query
    figures on a busy machine; the load time then measures that path, not ``upsert``."""
    from looksync.index.embedded import EmbeddedIndex

    index = EmbeddedIndex(path, ann_min_rows=1, ann_structure=structure)
    version = index.create_version("bench/synthetic", data["matrix"].shape[1])
    t0 = time.perf_counter()
    if direct:
        record = index._record(version)
        for start in range(0, len(rows), 200_000):
            for key, table in direct_tables(data, rows[start : start + 200_000], "bench/synthetic").items():
                index._partition(record, key, create=True).add(table)  # a fresh version: nothing to merge
    else:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            result = index.upsert(version, products(data, chunk, "bench/synthetic"), data["matrix"][chunk])
            assert not result.failures, result.failures[:3]
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.end_bulk_load(version)  # one FAISS structure per partition, saved in the version directory
    graphs_s = time.perf_counter() - t0
    index.set_live(version)
    return index, version, load_s, graphs_s


def timed(search, queries) -> tuple[list[set], np.ndarray]:
    """(what each query found, ms): ms[0] wall-clock per query, ms[1] the CPU time of this thread (on a
    shared machine the wall-clock tail is mostly waiting for a core; the CPU time is the query's own)."""
    found, times = [], []
    for i, q in enumerate(queries):
        c0, t0 = time.thread_time(), time.perf_counter()
        ids = search(i, q)
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
        found.append(ids)
    return found, np.array(times).T * 1000


def recall(found: list[set], truth: list[set], k: int) -> float:
    return float(np.mean([len(f & t) / k for f, t in zip(found, truth, strict=True)]))


def row(name: str, rec: float, ms: np.ndarray) -> dict:
    (p50, p95), (c50, c95) = np.percentile(ms[0], [50, 95]), np.percentile(ms[1], [50, 95])
    print(
        f"  {name:<44} recall@k {rec:.3f}  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  (CPU p50 {c50:6.2f}  p95 {c95:6.2f} ms)",
        flush=True,
    )
    return {"name": name, "recall": rec, "p50": p50, "p95": p95, "cpu_p50": c50, "cpu_p95": c95}


def _reuse_key(args: argparse.Namespace) -> dict:
    return {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "seed": args.seed}


def prepared_queries(args: argparse.Namespace, reuse: Path | None) -> tuple[dict | None, np.ndarray, list, list, list]:
    """(data or None, queries, plain truth, filtered truth, keys); from ``reuse`` when it holds them
    for the same arguments (then the catalog itself is not generated: data is None)."""
    saved = reuse / "queries.npz" if reuse else None
    if saved is not None and saved.exists() and json.loads((reuse / "key.json").read_text()) == _reuse_key(args):
        z = np.load(saved)
        keys = [tuple(k) for k in z["keys"].tolist()]
        print(f"queries, keys and exact ground truth read from {saved}", flush=True)
        return None, z["queries"], [set(r) for r in z["truth"].tolist()], [set(r) for r in z["truth_f"].tolist()], keys
    t0 = time.perf_counter()
    data = make_data(args.n, args.dim, args.queries, args.seed)
    print(f"data generated in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    truth, truth_f, keys = ground_truth(data, args.k)
    print(f"exact ground truth in {time.perf_counter() - t0:.1f} s", flush=True)
    if reuse is not None:
        reuse.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(reuse / "index", ignore_errors=True)  # made from other data: not reusable any more
        (reuse / "anchor.faiss").unlink(missing_ok=True)
        np.savez(
            saved, queries=data["queries"], keys=np.array(keys, dtype=str),
            truth=np.array([sorted(t) for t in truth]), truth_f=np.array([sorted(t) for t in truth_f]),
        )  # fmt: skip
        (reuse / "key.json").write_text(json.dumps(_reuse_key(args)))
    return data, data["queries"], truth, truth_f, keys


def data_for_build(data: dict | None, args: argparse.Namespace) -> dict:
    if data is None:  # reused queries, but a part of the build is missing: regenerate the same catalog
        t0 = time.perf_counter()
        data = make_data(args.n, args.dim, args.queries, args.seed)
        print(f"data generated again for the build in {time.perf_counter() - t0:.1f} s", flush=True)
    return data


def anchor_graph(args: argparse.Namespace, data: dict | None, reuse: Path | None) -> tuple[Any, float | None, dict | None]:
    """The FAISS anchor (M=32, efC=64); read back from ``reuse`` when saved there (build time None)."""
    import faiss

    saved = reuse / "anchor.faiss" if reuse else None
    if saved is not None and saved.exists():
        t0 = time.perf_counter()
        hnsw = faiss.read_index(str(saved))  # private memory, as a freshly built one
        print(f"\nFAISS IndexHNSWFlat(M=32, efC=64) read from {saved} in {time.perf_counter() - t0:.1f} s", flush=True)
        return hnsw, None, data
    data = data_for_build(data, args)
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(data["matrix"])
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    print(f"\nFAISS IndexHNSWFlat(M=32, efC=64) built in {build_s:.1f} s", flush=True)
    if saved is not None:
        faiss.write_index(hnsw, str(saved) + ".tmp")
        os.replace(str(saved) + ".tmp", saved)
    return hnsw, build_s, data


def embedded_index(args: argparse.Namespace, data: dict | None, work: Path, reuse: bool) -> tuple[Any, str, dict, dict | None]:
    """The embedded index under ``work / 'index'`` (its live version reused when ``reuse`` and built
    completely before); returns (index, version, build timings, data)."""
    import faiss

    from looksync.index import faiss_graph
    from looksync.index.embedded import EmbeddedIndex

    done = work / "index" / "bench-built.json"
    if reuse and done.exists():
        index = EmbeddedIndex(work / "index", ann_min_rows=1, ann_structure=args.structure)
        version = index.live_version()
        builds: dict[str, float] = {}
        built_as = {
            meta.structure
            for key in index._partition_keys(version)
            if (meta := faiss_graph.read_meta(index._search_dir(version, key))) is not None
        }
        if args.rebuild_graphs or built_as != {args.structure}:
            faiss.omp_set_num_threads(2)
            t0 = time.perf_counter()
            index.end_bulk_load(version)
            builds[f"faiss {args.structure} structures"] = time.perf_counter() - t0
            faiss.omp_set_num_threads(1)
        print(f"\nembedded index version {version} reused from {work / 'index'}", flush=True)
        return index, version, builds, data
    shutil.rmtree(work / "index", ignore_errors=True)
    data = data_for_build(data, args)
    faiss.omp_set_num_threads(2)
    index, version, load_s, graphs_s = build_embedded(
        work / "index", data, np.arange(args.n), direct=args.direct_load, structure=args.structure
    )
    faiss.omp_set_num_threads(1)
    done.write_text(json.dumps({"version": version, **_reuse_key(args)}))
    load = "lance store direct load" if args.direct_load else "lance store load"
    return index, version, {load: load_s, f"faiss {args.structure} structures": graphs_s}, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument(
        "--candidates", default="16,32,64,128", help="num_candidates (the HNSW beam) tried on the FAISS views; LanceDB gets the largest"
    )
    ap.add_argument("--structure", choices=["hnsw", "ivf"], default="ivf", help="the embedded index's ANN structure")
    ap.add_argument("--nprobes", default="4,8,16,32", help="IVF lists probed, tried on the FAISS views with --structure ivf")
    ap.add_argument("--unfiltered-queries", type=int, default=100, help="queries for the all-partitions path")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-lance", action="store_true", help="skip the LanceDB-search comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", type=Path, default=None, help="keep (and on later runs read back) the data, anchor and index here")
    ap.add_argument("--rebuild-graphs", action="store_true", help="with --reuse: rebuild the reused version's FAISS graphs")
    ap.add_argument("--no-anchor", action="store_true", help="skip the FAISS anchor (figures without ratios)")
    ap.add_argument("--direct-load", action="store_true", help="append each partition's rows directly, not via upsert")
    ap.add_argument(
        "--graph-memory", default="mmap", help="how the views hold their graphs' vectors: mmap, private, or both (mmap,private)"
    )
    args = ap.parse_args()

    import faiss

    from looksync.index.base import SearchFilters

    faiss.omp_set_num_threads(1)  # per-query latency, single-threaded, like one service worker
    k = args.k
    print(f"size: n={args.n:,} vectors x {args.dim}-d, {args.queries} queries, k={k}", flush=True)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    reuse = args.reuse.resolve() if args.reuse else None
    data, queries, truth, truth_f, keys = prepared_queries(args, reuse)
    results: dict = {}
    builds: dict[str, float] = {}
    memory: dict[str, int] = {}
    work = reuse or Path(args.workdir or tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    ids = lambda hits: {int(h.product_id[1:]) for h in hits}  # noqa: E731
    try:
        # ---- FAISS anchor
        curve = []  # the anchor at every efSearch: embedded figures are also compared at equal recall
        faiss_build = None
        if not args.no_anchor:
            hnsw, faiss_build, data = anchor_graph(args, data, reuse)
            anchor = None
            for ef in (16, 32, 64, 128, 256):
                hnsw.hnsw.efSearch = ef
                found, ms = timed(lambda i, q: set(hnsw.search(q[None], k)[1][0].tolist()), queries)
                r = row(f"faiss hnsw efSearch={ef} (unfiltered)", recall(found, truth, k), ms)
                curve.append(r)
                if anchor is None and r["recall"] >= args.target_recall:
                    anchor = r
                if r["recall"] >= 0.999:
                    break
            results["faiss"] = anchor or curve[-1]
            hnsw = None  # noqa: F841 - free the graph before the embedded builds
            gc.collect()

        # ---- embedded backend: LanceDB store, FAISS views
        from looksync.index.embedded import EmbeddedIndex

        index, version, built, data = embedded_index(args, data, work, reuse is not None)
        memory_modes = args.graph_memory.split(",")
        index.graph_memory = memory_modes[0]  # before any view loads
        builds.update(built)
        data = None  # the catalog's own copy is not needed to search  # noqa: F841
        gc.collect()
        disk = sum(p.stat().st_size for p in (work / "index").rglob("*") if p.is_file()) / 1024**3
        nparts = len(index.stats()["versions"][0]["partitions"])
        t0 = time.perf_counter()
        index.search(queries[0], k)  # loads every partition's view
        views_s = time.perf_counter() - t0
        parts = index.stats()["versions"][0]["partitions"]
        own = sum(p["view"]["bytes"] for p in parts)
        mapped = sum(p["view"]["mapped_bytes"] for p in parts)
        builds["views load"] = views_s
        print(
            f"\nembedded: {nparts} partitions; "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in builds.items())
            + f"; {disk:.2f} GB on disk\n"
            f"  views in memory: {own / 1024**2:.0f} MiB own + {mapped / 1024**2:.0f} MiB graph vectors mapped "
            f"= {(own + mapped) / args.n * 1e6 / 1024**3:.2f} GiB per million rows ({own / args.n:.0f} + "
            f"{mapped / args.n:.0f} B/row); peak RSS {rss_gb():.2f} GB",
            flush=True,
        )
        memory.update(own=own, mapped=mapped)

        def look(handle, c):
            return lambda i, q: ids(  # a look query: layer AND category AND market
                handle.search(
                    q, k, SearchFilters(layers=[CATEGORIES[keys[i][0]]], categories=[keys[i][0]], market=keys[i][1]),
                    num_candidates=c,
                )
            )  # fmt: skip

        def measure(handle, label, candidates, unfiltered_threads):
            """``candidates``: the HNSW beams tried (num_candidates), or for IVF views the nprobes."""
            best = {}
            ivf = handle.search_mode == "faiss" and handle.ann_structure == "ivf"
            knob = "nprobe" if ivf else "nc"

            def setting(c):  # the IVF views probe handle.ivf_nprobe lists; num_candidates is HNSW's beam
                if ivf:
                    handle.ivf_nprobe = c
                return None if ivf else c

            # one untimed pass first, as the anchor's graph is in memory when measured: the views'
            # first touches of their graph pages are reported here, not in the figures
            _, ms = timed(look(handle, setting(candidates[0])), queries)
            print(f"  {label} warm-up pass (not in the summary): p50 {np.percentile(ms[0], 50):.2f} ms  p95 {np.percentile(ms[0], 95):.2f} ms")
            for c in candidates:
                found, ms = timed(look(handle, setting(c)), queries)
                assert len(handle.last_search_partitions) == 1, handle.last_search_partitions
                best.setdefault("filtered", []).append(row(f"{label} layer+category+market, {knob}={c}", recall(found, truth_f, k), ms))
            nu = min(args.unfiltered_queries, len(queries))
            for threads in unfiltered_threads:
                handle.search_threads = threads
                for c in candidates:
                    nc = setting(c)
                    found, ms = timed(lambda i, q, nc=nc: ids(handle.search(q, k, num_candidates=nc)), queries[:nu])
                    assert len(handle.last_search_partitions) == nparts
                    name = f"{label} unfiltered, {nparts} parts merged" + (f", {threads} thr" if label == "lance" else "")
                    best.setdefault("unfiltered", []).append(row(f"{name}, {knob}={c}", recall(found, truth[:nu], k), ms))
            for kind, rows in best.items():
                ok = [r for r in rows if r["recall"] >= args.target_recall] or [max(rows, key=lambda r: r["recall"])]
                results[f"{label} {kind}"] = min(ok, key=lambda r: r["p95"])

        candidates = [int(x) for x in args.candidates.split(",")]
        tried = [int(x) for x in args.nprobes.split(",")] if args.structure == "ivf" else candidates
        view = f"faiss-view {args.structure}"
        measure(index, view + (f" {memory_modes[0]}" if len(memory_modes) > 1 else ""), tried, [1])
        for mode in memory_modes[1:]:  # the look query again, its graphs' vectors held another way
            other = EmbeddedIndex(work / "index", ann_min_rows=1, graph_memory=mode, ann_structure=args.structure)
            other.search(queries[0], k)
            measure(other, f"{view} {mode}", tried, [])
            other = None
            gc.collect()

        if not args.no_lance:
            # ---- the same version searched through LanceDB (its own HNSW-SQ + scalar indexes)
            lance = EmbeddedIndex(work / "index", search="lance", ann_min_rows=1)
            t0 = time.perf_counter()
            lance.build_ann_index(version)
            builds["lance indexes"] = time.perf_counter() - t0
            print(f"\nLanceDB HNSW-SQ + scalar indexes built in {builds['lance indexes']:.1f} s", flush=True)
            measure(lance, "lance", [max(candidates)], [1, lance.search_threads])
    finally:
        if reuse is None:
            shutil.rmtree(work, ignore_errors=True)

    f = results.get("faiss")

    def at_equal_recall(r: dict) -> dict:
        """The cheapest anchor setting whose recall reaches ``r``'s (the best one if none does)."""
        return next((a for a in curve if a["recall"] >= r["recall"] - 1e-9), curve[-1])
    print(f"\nsummary (n={args.n:,}, dim={args.dim}, {args.queries} queries, k={k})")
    print(
        f"  build: faiss anchor {'none' if args.no_anchor else 'reused' if faiss_build is None else f'{faiss_build:.1f} s'}; embedded "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in builds.items())
        + f"; on disk {disk:.2f} GB"
    )
    print(
        f"  memory: views {memory['own'] / 1024**2:.0f} MiB own + {memory['mapped'] / 1024**2:.0f} MiB mapped graph "
        f"vectors (= {(memory['own'] + memory['mapped']) / args.n * 1e6 / 1024**3:.2f} GiB per million rows); "
        f"peak RSS {rss_gb():.2f} GB"
    )
    print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, r in results.items():
        if f is None:  # --no-anchor: figures only
            print(
                f"  {name:<24} recall@{k} {r['recall']:.3f}  p50 {r['p50']:.2f} ms  p95 {r['p95']:.2f} ms  "
                f"CPU p50 {r['cpu_p50']:.2f} ms  p95 {r['cpu_p95']:.2f} ms"
            )
        elif isinstance(r, dict):
            e = at_equal_recall(r)
            print(
                f"  {name:<24} recall@{k} {r['recall']:.3f}  p50 {r['p50']:.2f} ms  p95 {r['p95']:.2f} ms  "
                f"p95/faiss p95 = {r['p95'] / f['p95']:.2f}x; at equal recall ({e['name'].split(' (')[0]}, "
                f"recall {e['recall']:.3f}, p95 {e['p95']:.2f} ms): {r['p95'] / e['p95']:.2f}x\n"
                f"  {'':<24} CPU time per query: p50 {r['cpu_p50']:.2f} ms  p95 {r['cpu_p95']:.2f} ms  "
                f"p95/faiss p95 = {r['cpu_p95'] / f['cpu_p95']:.2f}x; at equal recall {r['cpu_p95'] / e['cpu_p95']:.2f}x"
            )

if __name__ == "__main__":
    main()
