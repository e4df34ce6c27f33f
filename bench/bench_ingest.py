"""Ingest rate on a generated sample: products/s end to end, split into fetch, embed and index time.

    python bench/bench_ingest.py --size 10000            # LookSync-Tiny random weights, CPU
    python bench/bench_ingest.py --size 10000 --model ViT-B-32 --weights <checkpoint>

Images are served over HTTP on loopback (the real fetcher with its guards); vectors go to the
embeddings store and the embedded index. Prints per-stage seconds, products/s, and the anchor: the bare
model forward pass on the same images (images/s), so the embed stage's overhead is a ratio. Then a
metadata-only rerun (same feeds) and how many embeddings it computed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--model", default="LookSync-Tiny")
    parser.add_argument("--weights", default=None, help="default: a random-weight checkpoint of --model")
    args = parser.parse_args()

    from embeddings import load_encoder, save_random_checkpoint
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from looksync.settings import load_settings

    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    weights = args.weights or str(save_random_checkpoint(args.model, root / "model.pt", seed=1))
    server = serve_sample(root / "sample", port=0)
    t0 = time.perf_counter()
    manifest = generate_sample(root / "sample", size=args.size, seed=3, image_base_url=server.url, n_looks=0)
    print(f"sample: {args.size} products generated in {time.perf_counter() - t0:.1f}s under {root}")
    settings = load_settings(data_dir=root / "data", fetch_allow_private=True, index_backend="embedded")
    encoder = load_encoder(args.model, weights, device="cpu")
    index = open_index(settings)
    totals: dict[str, float] = {}
    t0 = time.perf_counter()
    for vendor, feed in manifest.feeds.items():
        report = ingest_feed(settings, vendor, feed, encoder, "bench", index=index)
        for stage, seconds in report.seconds.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    wall = time.perf_counter() - t0
    indexed = index.count()
    print(f"ingest: {indexed} products in {wall:.1f}s = {indexed / wall:.1f} products/s")
    for stage in ("parse", "detect", "fetch", "embed", "standardise", "apply"):
        print(f"  {stage:<12} {totals.get(stage, 0):8.1f}s  ({totals.get(stage, 0) / wall:5.1%})  "
              f"{indexed / totals[stage] if totals.get(stage) else float('inf'):10.1f} products/s")  # fmt: skip
    print("  (apply = product store + live index upsert; the index time)")

    images = sorted((root / "sample" / "images").rglob("*.png"))[:512]
    data = [p.read_bytes() for p in images]
    t1 = time.perf_counter()
    encoder.encode_images(data)
    anchor = len(data) / (time.perf_counter() - t1)
    embed_rate = indexed / totals["embed"]
    print(f"anchor: bare forward pass {anchor:.1f} images/s; embed stage {embed_rate:.1f} images/s = {embed_rate / anchor:.2f}x")

    t0 = time.perf_counter()
    embedded = 0
    for vendor, feed in manifest.feeds.items():
        embedded += ingest_feed(settings, vendor, feed, encoder, "bench-rerun", index=index).embedded
    print(f"rerun (no changes): {time.perf_counter() - t0:.1f}s, {embedded} embeddings computed")
    server.close()


if __name__ == "__main__":
    main()
