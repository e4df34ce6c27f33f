"""Confirming a large feed: products/s of an ingest run whose feed is unchanged or changes only prices and
stock, with the embeddings it computed (the target: 0), against parsing the same feed as the anchor.

    python bench/bench_feed_confirm.py --size 100000 --work /work/q/unchanged
    python bench/bench_feed_confirm.py --size 100000 --vendor sakura_mode      # JSON Lines; northwind_apparel: XML

One vendor's feed of ``--size`` products is written with the sample generator's own code (no images).
The first state is built once under ``--work`` and reused: the feed parsed with the real parser, one
stand-in image hash per product (the sha256 of its URL) with a random unit vector of LookSync-Tiny's size
in the embeddings store, the products in the product store, and all of them upserted into a live
embedded index version. Stored products written that way carry no row keys (as any product stored before
row keys existed), so each timed run starts from a fresh copy of that state and goes:

1. ``unchanged, first``: the same feed; every row is mapped and compared (the path every run took before
   row keys), and the run records each row's key;
2. ``unchanged``: the same feed again: rows whose key the store holds are not mapped again;
3. ``metadata``: a feed where ``--changed`` of the rows have a new price (a third of them also a stock
   change): only those are mapped, written to the product store and updated in the index;
4. with ``--all-changed``: ``metadata, back`` (the base feed again: the same rows change back), then
   ``metadata, all rows``: every row repriced.

Each run is the real ``ingest_feed`` (CLI path) with the embedded index; rows/s is rows read / wall time,
rows/CPU s is rows read / the process's CPU time (all its threads): the figure to compare across loads on
a shared machine (a quiet one runs this mostly single-threaded pipeline at about that rate).
The anchors, measured in the same run: reading the feed with ``read_feed`` (parse + validate, what the
first run pays per row at least) and with the bare format reader (``read_records``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np


def write_feeds(work: Path, vendor: str, size: int, changed: float, seed: int = 5) -> dict[str, Path]:
    """The base feed and its metadata-only variants (``changed`` share; every row), one pass."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.catalog.vendors import load_vendor_config
    from looksync.sample.catalog import make_product_spec, make_sku
    from looksync.sample.feeds import open_feed_writer, vendor_values

    config = load_vendor_config(vendor)
    categories = list(get_taxonomy().categories)
    kinds = ("base", "metadata", "metadata_all")
    writers = {}
    for kind in kinds:
        (work / "feeds" / kind).mkdir(parents=True, exist_ok=True)
        writers[kind] = open_feed_writer(config, work / "feeds" / kind)
    every = max(1, round(1 / changed)) if changed > 0 else 0
    try:
        for i in range(size):
            rng = random.Random(f"{seed}:{i}")
            spec = make_product_spec(config, rng, category=categories[i % len(categories)], sku=make_sku(vendor, i),
                                     image_base_url="http://images.bench.invalid", first_of_category=i < len(categories))  # fmt: skip
            writers["base"].put(writers["base"].text(vendor_values(spec, config)))
            repriced = dataclasses.replace(spec, price=round(spec.price + 100, 2))
            if i % 3 == 0:  # a third of the repriced rows also change stock
                repriced = dataclasses.replace(repriced, in_stock=not spec.in_stock, stock_qty=0 if spec.in_stock else 7)
            meta = repriced if every and i % every == 0 else spec
            writers["metadata"].put(writers["metadata"].text(vendor_values(meta, config)))
            writers["metadata_all"].put(writers["metadata_all"].text(vendor_values(repriced, config)))
    finally:
        for writer in writers.values():
            writer.close()
    return {kind: writers[kind].path for kind in kinds}


def build_first_state(state: Path, vendor: str, feed: Path, model_id: str, dim: int) -> float:
    """Stores and a live index holding every product of ``feed``, written directly (see the module doc)."""
    from looksync.catalog.stores import EmbeddingStore, ProductStore
    from looksync.catalog.vendors import load_vendor_config, read_feed
    from looksync.index.embedded import EmbeddedIndex

    t0 = time.perf_counter()
    products = [row.product for row in read_feed(load_vendor_config(vendor), feed) if row.product is not None]
    for p in products:
        p.image_hash = hashlib.sha256(p.image_urls[0].encode()).hexdigest()
        p.model_id = model_id
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((len(products), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    EmbeddingStore(state).add(model_id, [p.image_hash for p in products], vectors)
    ProductStore(state).upsert(products)
    index = EmbeddedIndex(state / "index")
    version = index.create_version(model_id, dim)
    index.begin_bulk_load(version)
    for start in range(0, len(products), 50_000):
        result = index.upsert(version, products[start : start + 50_000], vectors[start : start + 50_000])
        assert not result.failures, result.failures[:3]
    index.end_bulk_load(version)
    index.set_live(version)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--vendor", default="desi_threads")
    parser.add_argument("--changed", type=float, default=0.1, help="share of rows repriced in the metadata run")
    parser.add_argument("--all-changed", action="store_true", help="also run a feed with every row repriced")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-feed-confirm"))
    parser.add_argument("--rebuild", action="store_true", help="write the feeds and the first state again")
    args = parser.parse_args()

    from embeddings import load_encoder, save_random_checkpoint
    from looksync.catalog.vendors import load_vendor_config, read_feed
    from looksync.catalog.vendors.readers import read_records
    from looksync.index.embedded import EmbeddedIndex
    from looksync.pipelines.ingest import ingest_feed
    from looksync.settings import load_settings

    work = args.work / f"{args.vendor}-{args.size}-{args.changed:g}"
    weights = work / "tiny.pt"
    if args.rebuild and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not weights.exists():
        save_random_checkpoint("LookSync-Tiny", weights, seed=1)
    encoder = load_encoder("LookSync-Tiny", str(weights), device="cpu")
    dim = encoder.dim
    suffix = {"csv": ".csv", "jsonl": ".jsonl", "xml": ".xml"}[load_vendor_config(args.vendor).format]
    feeds = {kind: work / "feeds" / kind / f"{args.vendor}{suffix}" for kind in ("base", "metadata", "metadata_all")}
    if not all(p.exists() for p in feeds.values()):
        t0 = time.perf_counter()
        feeds = write_feeds(work, args.vendor, args.size, args.changed)
        print(f"feeds: {args.size} rows x 3 written in {time.perf_counter() - t0:.1f}s under {work / 'feeds'}")
    state = work / "state"
    if not (state / "index" / "versions.json").exists():
        shutil.rmtree(state, ignore_errors=True)
        seconds = build_first_state(state, args.vendor, feeds["base"], encoder.model_id, dim)
        print(f"first state: {args.size} products written directly in {seconds:.1f}s under {state}")

    config = load_vendor_config(args.vendor)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = sum(1 for _ in read_records(config, feeds["base"]))
    read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    parsed = sum(1 for row in read_feed(config, feeds["base"]) if row.product is not None)
    parse_s, parse_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"load average {os.getloadavg()[0]:.2f} at the start; {rows} rows, {parsed} valid")
    print(f"anchor: format reader {rows / read_s:,.0f} rows/s ({read_s:.2f}s), {rows / read_cpu:,.0f} rows/CPU s; "
          f"read_feed (parse + validate) {rows / parse_s:,.0f} rows/s ({parse_s:.2f}s), {rows / parse_cpu:,.0f} rows/CPU s")  # fmt: skip

    data = work / "run"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(state, data)
    settings = load_settings(data_dir=data, index_backend="embedded", category_clip_fallback=False)
    index = EmbeddedIndex(data / "index")
    runs = [("unchanged, first", "base"), ("unchanged", "base"), ("metadata", "metadata")]
    if args.all_changed:
        runs += [("metadata, back", "base"), ("metadata, all rows", "metadata_all")]
    print(f"{'run':<20} {'seconds':>8} {'rows/s':>9} {'x parse':>8} {'CPU s':>6} {'rows/CPU s':>10}  embedded  outcomes / stage seconds")
    for name, kind in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        report = ingest_feed(settings, args.vendor, feeds[kind], encoder, f"bench-{kind}", index=index)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate = report.rows_read / wall
        outcomes = {k: v for k, v in report.outcomes.items() if v}
        stages = " ".join(f"{k} {v:.2f}" for k, v in report.seconds.items())
        print(f"{name:<20} {wall:8.2f} {rate:9,.0f} {rate / (rows / parse_s):7.1f}x {cpu:6.2f} {report.rows_read / cpu:10,.0f}  "
              f"{report.embedded:8d}  {outcomes}  [{stages}]")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
