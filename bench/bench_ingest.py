"""Ingest rate on a generated sample: products/s end to end, split into stages, against anchors of the same run.

    python bench/bench_ingest.py --size 10000                       # LookSync-Tiny random weights, CPU, torch
    python bench/bench_ingest.py --size 3000 --runtime onnx --paths overlapped,staged
    python bench/bench_ingest.py --size 10000 --model ViT-B-32 --weights <checkpoint>

Images are served over HTTP on loopback by the sample image server in a process of its own (as a
vendor's host is not in the ingesting process; ``--server thread`` puts it in this one) and fetched by
the real fetcher with its guards; vectors go to the embeddings store and the embedded index. Paths:

- ``overlapped``: ``ingest_feed`` as the CLI runs it (fetch and embed in one overlapped pass, each
  image decoded once: ``looksync.pipelines.fetch_embed``);
- ``staged``: the same stages one after the other, as the DAG's tasks run them (fetch, thumbnails,
  embed each on their own), into a data directory of its own.

Anchors, measured in the same run on the same images: the plain-client fetch rate (urllib3, kept-alive
connections, no guard or checks: ``bench/bench_fetch.py``) and the model alone (``encode_prepared`` on
images already decoded and prepared; and ``encode_images`` on the PNG bytes, decode included). Then a
rerun of the same feeds (nothing changed) and how many embeddings it computed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("parse", "detect", "fetch", "thumbnails", "embed", "standardise", "apply")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--model", default="LookSync-Tiny")
    parser.add_argument("--weights", default=None, help="default: a random-weight checkpoint of --model")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8"))
    parser.add_argument("--threads", type=int, default=None,
                        help="the model's CPU threads (torch or ONNX Runtime; LOOKSYNC_TORCH_THREADS); default: torch's own")
    parser.add_argument("--paths", default="overlapped", help="comma-separated: overlapped, staged")
    parser.add_argument("--fetch-concurrency", type=int, default=8, help="LOOKSYNC_FETCH_CONCURRENCY")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument("--no-rerun", action="store_true", help="skip the nothing-changed rerun")
    args = parser.parse_args()

    from bench.bench_fetch import plain_fetch
    from embeddings import load_encoder, save_random_checkpoint
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample, serve_sample_process
    from looksync.settings import load_settings

    print(f"load average at start: {load()}")
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    weights = args.weights or str(save_random_checkpoint(args.model, root / "model.pt", seed=1))
    server = (serve_sample_process if args.server == "process" else serve_sample)(root / "sample", port=0)
    t0 = time.perf_counter()
    manifest = generate_sample(root / "sample", size=args.size, seed=3, image_base_url=server.url, n_looks=0)
    print(f"sample: {args.size} products generated in {time.perf_counter() - t0:.1f}s under {root}")
    encoder = load_encoder(args.model, weights, device="cpu", runtime=args.runtime, threads=args.threads,
                           cache_dir=root / "models")  # fmt: skip
    print(f"encoder: {encoder!r}, torch threads {__import__('torch').get_num_threads()}")

    images = sorted((root / "sample" / "images").rglob("*.png"))
    urls = [f"{server.url}/{p.relative_to(root / 'sample').as_posix()}" for p in images]
    plain_fetch(urls[:200], 8)
    t1 = time.perf_counter()
    plain_fetch(urls, 8)
    fetch_anchor = len(urls) / (time.perf_counter() - t1)
    data = [p.read_bytes() for p in images[:1024]]
    encoder.encode_images(data[:64])  # warm
    t1 = time.perf_counter()
    encoder.encode_images(data)
    decode_and_model = len(data) / (time.perf_counter() - t1)
    prepared = [encoder.prepare_image(d) for d in data]
    t1, c1 = time.perf_counter(), time.process_time()
    for start in range(0, len(prepared), encoder.batch_size):
        encoder.encode_prepared(prepared[start : start + encoder.batch_size])
    model_alone = len(prepared) / (time.perf_counter() - t1)
    model_cpu = (time.process_time() - c1) / len(prepared) * 1000
    print(f"anchors (load {load()}): plain-client fetch {fetch_anchor:.1f} images/s; model alone {model_alone:.1f} "
          f"images/s ({model_cpu:.2f} ms CPU/image); decode + prepare + model (encode_images) {decode_and_model:.1f} images/s")  # fmt: skip

    for path in args.paths.split(","):
        settings = load_settings(data_dir=root / f"data-{path}", fetch_allow_private=True, index_backend="embedded",
                                 fetch_concurrency=args.fetch_concurrency)  # fmt: skip
        index = open_index(settings)
        totals: dict[str, float] = {}
        print(f"[{path}] load average before: {load()}")
        t0, c0 = time.perf_counter(), time.process_time()
        for vendor, feed in manifest.feeds.items():
            report = ingest_feed(settings, vendor, feed, encoder, "bench", index=index, overlapped=path != "staged")
            for stage, seconds in report.seconds.items():
                totals[stage] = totals.get(stage, 0.0) + seconds
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        indexed = index.count()
        rate = indexed / wall
        print(f"[{path}] ingest: {indexed} products in {wall:.1f}s = {rate:.1f} products/s "
              f"({rate / model_alone:.2f}x the model alone); {cpu / indexed * 1000:.2f} ms CPU/product "
              f"(this process; load average after: {load()})")  # fmt: skip
        for stage in STAGES:
            if stage in totals:
                print(f"  {stage:<12} {totals[stage]:8.1f}s  ({totals[stage] / wall:5.1%})  "
                      f"{indexed / totals[stage] if totals[stage] else float('inf'):10.1f} products/s")  # fmt: skip
        if path == "overlapped":
            print("  (fetch = the overlapped pass less the forward passes, thumbnails included; embed = the forward passes)")
        print("  (apply = product store + live index upsert; the index time)")
        fetch_s = totals.get("fetch", 0) + totals.get("thumbnails", 0)
        print(f"  fetch{' + thumbnails' if 'thumbnails' in totals else ''}: {indexed / fetch_s:.1f} products/s = "
              f"{indexed / fetch_s / fetch_anchor:.2f}x the plain-client fetch")  # fmt: skip

        if not args.no_rerun:
            t0 = time.perf_counter()
            embedded = 0
            for vendor, feed in manifest.feeds.items():
                embedded += ingest_feed(settings, vendor, feed, encoder, "bench-rerun", index=index).embedded
            print(f"[{path}] rerun (no changes): {time.perf_counter() - t0:.1f}s, {embedded} embeddings computed")
    server.close()


if __name__ == "__main__":
    main()
