"""Embedding throughput: the image pipeline from JPEG files against the bare model forward pass.

For each model (random weights: the cost is the same as trained ones), in one run:

- bare forward: images/s of ``model.encode_image`` on pre-made tensors (the anchor);
- pipeline: images/s of ``ClipEncoder.encode_images_safe`` on JPEG files on disk (read, decode, resize,
  normalise in worker threads, overlapped with the forward pass), and its ratio to the anchor;
- texts/s of ``encode_texts`` in batches of 1 and 16.

Bare and pipeline runs alternate ``--repeats`` times and the best of each is reported (other processes
on the machine only ever slow a run down), with the median beside it. Target: pipeline >= 0.9 x bare.

    PYTHONPATH=. python bench/bench_embeddings.py                      # ViT-B-32:128:32 and ViT-H-14:16:8
    PYTHONPATH=. python bench/bench_embeddings.py --model ViT-B-32:256:32 --repeats 5 --compare-workers --draft

``--model NAME:IMAGES:BATCH`` picks architectures, image counts and batch sizes; ``--compare-workers``
also times preprocessing alone with thread and process pools; ``--draft`` also runs the pipeline with
reduced-scale JPEG decoding and prints how far its vectors move.

``--runtimes torch,onnx,onnx-int8`` (issue 17) compares the CLIP runtimes (``LOOKSYNC_CLIP_RUNTIME``,
``embeddings.runtime``) on ``--runtime-model`` (ViT-B-32): crops/s of the image tower in batches of 32,
a 5-layer look's crop forward (its 6 layout crops of a 512x1024 look in one ``encode_images`` call, as
the look search runs them), texts/s in batches of 16, each runtime's min cosine to the torch vectors,
and every figure's ratio to torch measured in the same run (runs alternate; best of ``--repeats``).

    PYTHONPATH=. python bench/bench_embeddings.py --model ViT-B-32:64:32 --runtimes torch,onnx,onnx-int8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_jpegs(directory: Path, n: int, size: int = 512, seed: int = 0) -> list[Path]:
    """Sample-catalog product drawings upscaled to ``size`` with photographic grain, saved as quality-90 JPEGs."""
    from PIL import Image

    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample.drawing import product_image

    taxonomy = get_taxonomy()
    categories, colours = list(taxonomy.categories), list(taxonomy.colours.values())
    patterns = list(taxonomy.patterns)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        rgb = tuple(int(c) for c in colours[i % len(colours)])
        drawing = product_image(
            categories[i % len(categories)], rgb, patterns[i % len(patterns)], pattern_period=9 + i % 7
        )
        pixels = np.asarray(drawing.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
        pixels = pixels * rng.uniform(0.9, 1.05) + rng.normal(0, 4.0, pixels.shape)  # exposure + sensor grain
        path = directory / f"product-{i:04d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_forward(encoder: Any, n_images: int, batch_size: int) -> Callable[[], None]:
    import torch

    size = _input_side(encoder)
    batches = [torch.randn(min(batch_size, n_images - s), 3, *size) for s in range(0, n_images, batch_size)]

    def run() -> None:
        with torch.inference_mode(), encoder._autocast():
            for batch in batches:
                encoder.model.encode_image(batch.to(encoder.device))
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


def _input_side(encoder: Any) -> tuple[int, int]:
    from embeddings.pipeline import _input_size

    side = _input_size(encoder.preprocess)
    return side, side


def preprocess_only(encoder: Any, paths: list[Path], pool: Executor) -> float:
    """images/s of preprocessing alone (no model) through ``pool``."""
    start = time.perf_counter()
    list(pool.map(encoder._plan, [str(p) for p in paths], range(len(paths)), chunksize=4))
    return len(paths) / (time.perf_counter() - start)


def text_rate(encoder: Any, texts: list[str], batch_size: int) -> float:
    encoder.encode_texts(texts[:batch_size], batch_size=batch_size)  # warm-up
    seconds = timed(lambda: [encoder.encode_texts(texts[i : i + batch_size], batch_size=batch_size)
                             for i in range(0, len(texts), batch_size)])  # fmt: skip
    return len(texts) / seconds


def prompts(n: int) -> list[str]:
    from looksync.catalog.taxonomy import get_taxonomy

    taxonomy = get_taxonomy()
    categories, colours, patterns = list(taxonomy.categories), list(taxonomy.colours), list(taxonomy.patterns)
    return [f"a photo of a {colours[i % len(colours)]} {patterns[i % len(patterns)]} {categories[i % len(categories)]}"
            for i in range(n)]  # fmt: skip


def bench_model(spec: str, args: argparse.Namespace, paths: list[Path]) -> dict[str, float]:
    from embeddings import load_encoder

    name, n_images, batch_size = parse_model(spec)
    files = paths[:n_images]
    t0 = time.perf_counter()
    encoder = load_encoder(name, "random:0", device=args.device, batch_size=batch_size, workers=args.workers)
    print(f"\n== {encoder.model_id}  ({n_images} images of 512x512 JPEG, batch {batch_size}, "
          f"load {time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    items = [(p.name, str(p)) for p in files]
    bare = bare_forward(encoder, n_images, batch_size)
    bare()  # warm-up: allocator, kernels, lazy inits
    encoder.encode_images_safe(items[:batch_size])

    bare_rates, pipe_rates, stats = [], [], []
    for _ in range(args.repeats):
        bare_rates.append(n_images / timed(bare))
        ids, _, failures = encoder.encode_images_safe(items)
        if failures or len(ids) != n_images:
            raise SystemExit(f"pipeline lost images: {failures}")
        pipe_rates.append(encoder.last_stats.images_per_s())
        stats.append(encoder.last_stats)
    best = max(range(args.repeats), key=lambda i: pipe_rates[i])
    s = stats[best]
    result = {
        "bare": max(bare_rates),
        "pipeline": max(pipe_rates),
        "bare_median": statistics.median(bare_rates),
        "pipeline_median": statistics.median(pipe_rates),
    }
    print(f"bare forward      {result['bare']:8.2f} images/s   (median {result['bare_median']:.2f})")
    print(f"pipeline (JPEG)   {result['pipeline']:8.2f} images/s   (median {result['pipeline_median']:.2f})"
          f"   workers={encoder.pipeline().workers}")  # fmt: skip
    print(f"ratio             {result['pipeline'] / result['bare']:8.3f}  "
          f"(medians {result['pipeline_median'] / result['bare_median']:.3f}; target >= 0.9)")  # fmt: skip
    print(f"  stages of the best run: wall {s.wall_s:.2f} s, model {s.model_s:.2f} s, model waiting for "
          f"batches {s.model_wait_s:.2f} s, preprocess {s.preprocess_s:.2f} s summed over workers "
          f"({1e3 * s.preprocess_s / max(1, s.images):.1f} ms/image)")  # fmt: skip

    if args.draft:
        bench_draft(name, args, encoder, items, batch_size, result)
    if args.compare_workers:
        workers = encoder.pipeline().workers
        for label, make in (("threads", lambda: ThreadPoolExecutor(workers)),
                            ("processes", lambda: _process_pool(workers))):  # fmt: skip
            with make() as pool:
                preprocess_only(encoder, files[: min(16, len(files))], pool)  # start workers, warm caches
                rate = max(preprocess_only(encoder, files, pool) for _ in range(2))
            print(f"preprocess only, {workers} {label:9s} {rate:8.1f} images/s")

    texts = prompts(args.texts)
    for tb in (1, 16):
        result[f"texts_b{tb}"] = text_rate(encoder, texts, tb)
        print(f"texts, batch {tb:2d}    {result[f'texts_b{tb}']:8.2f} texts/s")
    return result


def _process_pool(workers: int) -> ProcessPoolExecutor:
    import multiprocessing

    # fork: the children inherit the loaded modules and the preprocessing plan; they never call torch
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def bench_draft(name: str, args: argparse.Namespace, encoder: Any, items: list, batch_size: int, result: dict) -> None:
    from embeddings import load_encoder

    drafted = load_encoder(name, "random:0", device=args.device, batch_size=batch_size, workers=args.workers,
                           draft_decode=True)  # fmt: skip
    drafted.encode_images_safe(items[:batch_size])
    rates = []
    for _ in range(args.repeats):
        _, draft_vectors, _ = drafted.encode_images_safe(items)
        rates.append(drafted.last_stats.images_per_s())
    _, full_vectors, _ = encoder.encode_images_safe(items)
    cosine = np.sum(draft_vectors * full_vectors, axis=1)
    print(f"pipeline, draft   {max(rates):8.2f} images/s   ratio {max(rates) / result['bare']:.3f}; "
          f"cosine to full-decode vectors: min {cosine.min():.5f}, mean {cosine.mean():.5f}")  # fmt: skip
    # what draft decoding changes, in the model's input: mean absolute difference of the preprocessed pixels
    diffs = [np.abs(drafted._plan(p, 0) - encoder._plan(p, 0)).mean() for _, p in items[:16]]
    print(f"  preprocessed-pixel mean |difference| (normalised units): {float(np.mean(diffs)):.4f}")
    result["draft"] = max(rates)


def look_crops(seed: int = 0) -> list[Any]:
    """The crops a 5-layer look search embeds: the layout slots (and alt extents) of bench_service's layers
    on a 512x1024 look."""
    from PIL import Image

    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.regions import layout_placement

    layers = ["outer_topwear", "topwear", "bottomwear", "footwear", "bag"]
    pixels = np.random.default_rng(seed).integers(0, 256, (1024, 512, 3), dtype=np.uint8)
    look = Image.fromarray(pixels, "RGB")
    placement = layout_placement(get_taxonomy(), look.size, layers)
    return [look.crop(box) for boxes in placement.boxes.values() for box in boxes]


def bench_runtimes(args: argparse.Namespace, paths: list[Path]) -> None:
    import torch

    from embeddings import load_encoder
    from embeddings.pipeline import open_image

    runtimes = args.runtimes.split(",")
    cache = args.runtime_cache or Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    encoders = {}
    for runtime in runtimes:
        t0 = time.perf_counter()
        encoders[runtime] = load_encoder(args.runtime_model, "random:0", device="cpu", runtime=runtime,
                                         cache_dir=cache, threads=args.threads)  # fmt: skip
        print(f"{runtime}: ready in {time.perf_counter() - t0:.1f} s (export, quantise and gate on first use; "
              f"cached in {cache}); runs {encoders[runtime].runtime} {encoders[runtime].runtime_notes or ''}")  # fmt: skip
    reference = encoders.get("torch") or load_encoder(args.runtime_model, "random:0", device="cpu")
    crops = look_crops()
    images = [open_image(str(p), i) for i, p in enumerate(paths[:32])]
    batch = torch.from_numpy(np.stack([reference._plan(image, i) for i, image in enumerate(images)]))
    texts = prompts(32)
    ref_images, ref_texts = reference.encode_images(crops), reference.encode_texts(texts)
    times: dict[str, dict[str, list[float]]] = {r: {"crops": [], "look": [], "texts": []} for r in runtimes}
    for e in encoders.values():  # warm-up
        e.encode_images(crops, batch_size=len(crops))
    for _ in range(args.repeats):
        for runtime, e in encoders.items():
            with torch.inference_mode():
                times[runtime]["crops"].append(timed(lambda e=e: e.towers.encode_image(batch)))
            times[runtime]["look"].append(timed(lambda e=e: e.encode_images(crops, batch_size=len(crops))))
            times[runtime]["texts"].append(timed(lambda e=e: e.encode_texts(texts, batch_size=16)))
    print(f"\nruntimes on {reference.model_id} ({len(crops)} look crops; load average {os.getloadavg()[0]:.2f}; "
          f"best of {args.repeats}, median in brackets; ratio = torch time / runtime time)")  # fmt: skip
    print(f"{'runtime':10s} {'crops/s':>16s} {'look forward ms':>18s} {'texts/s':>16s} {'speed-up':>9s} "
          f"{'look cos min':>13s} {'text cos min':>13s}")  # fmt: skip
    base = times.get("torch")
    for runtime, t in times.items():
        e = encoders[runtime]
        look_cos = float(np.min(np.sum(e.encode_images(crops) * ref_images, axis=1)))
        text_cos = float(np.min(np.sum(e.encode_texts(texts) * ref_texts, axis=1)))
        ratio = f"{min(base['look']) / min(t['look']):9.2f}" if base else f"{'-':>9s}"
        print(f"{runtime:10s} {len(batch) / min(t['crops']):7.1f} ({len(batch) / statistics.median(t['crops']):6.1f}) "
              f"{1e3 * min(t['look']):8.1f} ({1e3 * statistics.median(t['look']):7.1f}) "
              f"{len(texts) / min(t['texts']):7.1f} ({len(texts) / statistics.median(t['texts']):6.1f}) "
              f"{ratio} {look_cos:13.5f} {text_cos:13.5f}")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def parse_model(spec: str) -> tuple[str, int, int]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise SystemExit(f"--model {spec!r}: expected NAME:IMAGES:BATCH, e.g. ViT-B-32:128:32")
    return parts[0], int(parts[1]), int(parts[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="NAME:IMAGES:BATCH (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating bare/pipeline runs; best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=None, help="preprocess threads (default: one per core)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--texts", type=int, default=32, help="texts per text-throughput measurement")
    parser.add_argument("--draft", action="store_true", help="also run with reduced-scale JPEG decoding")
    parser.add_argument("--compare-workers", action="store_true", help="also time preprocessing: threads vs processes")
    parser.add_argument("--image-dir", type=Path, default=None, help="write the JPEGs here (default: a temp dir)")
    parser.add_argument("--runtimes", default=None, help="compare CLIP runtimes, e.g. torch,onnx,onnx-int8")
    parser.add_argument("--runtime-model", default="ViT-B-32", help="the model the runtimes are compared on")
    parser.add_argument("--runtime-cache", type=Path, default=None, help="ONNX files (default: a temp dir)")
    args = parser.parse_args(argv)
    models = args.model or ["ViT-B-32:128:32", "ViT-H-14:16:8"]

    import open_clip
    import PIL
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; open_clip {open_clip.__version__}; Pillow {PIL.__version__}; "
          f"python {platform.python_version()}; device {device}{gpu}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip

    n_files = max(parse_model(m)[1] for m in models)
    with tempfile.TemporaryDirectory(prefix="bench-embeddings-") as tmp:
        directory = args.image_dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        paths = write_jpegs(directory, n_files)
        kb = np.mean([p.stat().st_size for p in paths]) / 1e3
        print(f"images: {n_files} JPEG files of 512x512, {kb:.0f} kB on average, in {directory}")
        results = {m: bench_model(m, args, paths) for m in models}
        if args.runtimes:
            bench_runtimes(args, paths)

    print("\nsummary (images/s; texts/s)")
    print(f"{'model':12s} {'bare':>8s} {'pipeline':>9s} {'ratio':>6s} {'text b1':>8s} {'text b16':>9s}")
    for spec, r in results.items():
        print(f"{parse_model(spec)[0]:12s} {r['bare']:8.2f} {r['pipeline']:9.2f} {r['pipeline'] / r['bare']:6.3f} "
              f"{r['texts_b1']:8.2f} {r['texts_b16']:9.2f}")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
