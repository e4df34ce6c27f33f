"""Sharded backfill rate: products/s with the feeds' shards run by 1 and by 2 parallel worker processes.

    python bench/bench_backfill_shards.py --size 1500                 # LookSync-Tiny random weights, CPU
    python bench/bench_backfill_shards.py --size 1500 --workers 1 2 4

The flow is the DAGs' (``looksync.pipelines.shards.ingest_sharded``): each feed parsed, its changes
detected and split into ``workers`` shards here; every shard (fetch over HTTP on loopback through the
guarded fetcher, embed, standardise, apply to the product store and the embedded index) on a pool of
``workers`` fresh processes, each loading the encoder and opening the index as a worker's task does,
with ``OMP_NUM_THREADS`` = cores / workers (what one sets per worker on a shared machine); the pool's
processes are started and have loaded the encoder before the clock starts (running workers; the start
time is printed apart); then the
per-feed finish (deletions, report). Every configuration starts from an empty data dir, so every product
is new (fetched, embedded, indexed) and each run checks that the index holds every product once.

Anchor: the unsharded in-process ingest (``ingest_feed``, the CLI path) of the same feeds in the same
run; figures are printed as products/s and as ratios to it, with ``uptime`` before and after (2 cores
shared with other jobs: say the load with the figures).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import subprocess
import tempfile
import time
from pathlib import Path


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _pid_after_nap(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default="LookSync-Tiny")
    args = parser.parse_args()

    from embeddings import load_encoder, save_random_checkpoint
    from looksync.catalog.stores import ProductStore
    from looksync.index.factory import open_index
    from looksync.pipelines.feed_ref import FeedRef
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.shards import ingest_sharded, warm_worker
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    root = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    weights = str(save_random_checkpoint(args.model, root / "model.pt", seed=1))
    server = serve_sample(root / "sample", port=0)
    manifest = generate_sample(root / "sample", size=args.size, seed=3, image_base_url=server.url, n_looks=0)
    cores = os.cpu_count() or 1
    n_valid = sum(manifest.product_counts.values())
    print(f"sample: {n_valid} valid products in {len(manifest.feeds)} feeds; {cores} cores")
    print(f"load before: {_uptime()}")

    def settings_for(name: str):
        return load_settings(data_dir=root / name, fetch_allow_private=True, index_backend="embedded",
                             clip_model=args.model, clip_weights=weights, device="cpu")  # fmt: skip

    def check(settings) -> int:
        count, distinct = open_index(settings).count(), ProductStore(settings.data_dir).count()
        assert count == distinct, f"index holds {count} rows for {distinct} products"
        return count

    # anchor: the unsharded in-process ingest (the CLI path), same feeds, same run
    settings = settings_for("anchor")
    encoder = load_encoder(args.model, weights, device="cpu")
    index = open_index(settings)
    t0 = time.perf_counter()
    for vendor, feed in sorted(manifest.feeds.items()):
        ingest_feed(settings, vendor, feed, encoder, "bench-anchor", index=index)
    anchor_wall = time.perf_counter() - t0
    n = check(settings)
    anchor = n / anchor_wall
    print(f"anchor (unsharded, in process): {n} products in {anchor_wall:.1f}s = {anchor:.1f} products/s")

    from embeddings import load_encoder_from_settings

    rows = []
    for workers in args.workers:
        settings = settings_for(f"workers-{workers}")
        shard_size = -(-max(manifest.product_counts.values()) // workers)  # the largest feed in `workers` shards
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))  # inherited by the spawned workers
        refs = [FeedRef(v, str(f)) for v, f in sorted(manifest.feeds.items())]
        factory = functools.partial(load_encoder_from_settings, settings)
        t_start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers, initializer=warm_worker, initargs=(factory,)) as pool:
            pids: set[int] = set()
            while len(pids) < workers:  # every worker started, torch imported, encoder loaded
                pids |= set(pool.map(_pid_after_nap, range(2 * workers), chunksize=1))
            started = time.perf_counter() - t_start
            t0 = time.perf_counter()
            reports = ingest_sharded(
                settings, refs, f"bench-{workers}", encoder.model_id, factory, shard_size=shard_size,
                index_factory=functools.partial(open_index, settings), zeroshot=True, pool=pool,
            )  # fmt: skip
        wall = time.perf_counter() - t0
        n = check(settings)
        shards = len(list((settings.data_dir / "runs" / f"bench-{workers}").glob("*/shards/*")))
        stages = {}
        for r in reports:
            for stage, s in r.seconds.items():
                stages[stage] = stages.get(stage, 0.0) + s
        rows.append((workers, shards, n, wall, n / wall, started))
        print(f"{workers} parallel shard(s) (workers started in {started:.1f}s, not counted): "
              f"{n} products in {wall:.1f}s = {n / wall:.1f} products/s "
              f"({n / wall / anchor:.2f}x anchor); worker-seconds per stage: "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))  # fmt: skip
    print(f"load after: {_uptime()}")
    print("\n| parallel shards | shards | products | seconds | products/s | vs anchor | worker start (s) |")
    print("|---|---|---|---|---|---|---|")
    n_anchor = check(settings_for("anchor"))
    print(f"| unsharded, in process (anchor) | - | {n_anchor} | {anchor_wall:.1f} | {anchor:.1f} | 1.00x | - |")
    for workers, shards, n, wall, rate, started in rows:
        print(f"| {workers} | {shards} | {n} | {wall:.1f} | {rate:.1f} | {rate / anchor:.2f}x | {started:.1f} |")
    if len(rows) >= 2:
        print(f"speed-up {rows[-1][0]} vs {rows[0][0]} parallel shards: {rows[-1][4] / rows[0][4]:.2f}x")
    server.close()


if __name__ == "__main__":
    main()
