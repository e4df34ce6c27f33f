"""The region step of a look search with the pose finder: ms per look, against one CLIP crop forward.

For each look (the generated sample's looks, the same looks re-framed: landscape canvas, small and
off-centre, mirrored, tightly cropped; and a real waist-up photograph), ``PoseRegionFinder.place`` for
every taxonomy layer is timed ``--repeats`` times after a warm-up: BlazePose detection + landmarks
(and the person mask when no pose is found), then the boxes. The anchor, measured in the same run: one
224 px crop through ``ClipEncoder.encode_images`` of ViT-B-32 with random weights (the cost of one
region's CLIP forward; random weights cost what trained ones do). Target: region step <= 40 ms p95.
Beside the wall-clock figures, the CPU time of each step (the process's, every LiteRT thread included):
on a shared machine the wall clock grows with the load average, the CPU time much less, so it is the
figure to compare runs made at different loads. Last, the step without its model calls (each look's model
outputs recorded once, then replayed in call order: the crops, resizes, numpy and box work alone), as the minimum
of the repeats per look, the figure least moved by other jobs on the machine.

    PYTHONPATH=. python bench/bench_regions.py                   # 12 sample looks x 5 framings + photo
    PYTHONPATH=. python bench/bench_regions.py --looks 4 --repeats 5 --threads 2

The pose model files are fetched like the service fetches them (``--models``: pypi, a directory or
s3://...; cached under ``--models-dir``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def reframed(look):
    """The look as the app might send it: as generated, landscape, small off-centre, mirrored, cropped."""
    from PIL import Image

    w, h = look.size
    landscape = Image.new("RGB", (int(h * 16 / 9), h), look.getpixel((2, 2)))
    landscape.paste(look, ((landscape.width - w) // 3, 0))
    small = Image.new("RGB", (w, h), look.getpixel((2, 2)))
    small.paste(look.resize((int(w * 0.6), int(h * 0.6))), (int(w * 0.35), int(h * 0.3)))
    return {
        "as generated": look,
        "landscape": landscape,
        "small off-centre": small,
        "mirrored": look.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "cropped": look.crop((int(w * 0.1), int(h * 0.05), int(w * 0.9), int(h * 0.75))),
    }


def crop_forward_ms(encoder, look, repeats: int) -> float:
    """The anchor: the median ms of one CLIP forward of one crop of ``look`` (after a warm-up)."""
    crop = look.crop((80, 120, 304, 344))
    encoder.encode_images([crop])  # warm-up
    times = []
    for _ in range(max(5, repeats)):
        start = time.perf_counter()
        encoder.encode_images([crop])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def without_models_ms(finder, image, layers: list[str], repeats: int) -> float:
    """The minimum ms of ``finder.place`` over ``repeats`` with the model calls replayed: each interpreter call's
    outputs recorded in a first place, then returned in the same order (``BlazePose._run`` stubbed on the instance)."""
    estimator, tape = finder.estimator, []

    def record(interpreter, tensor):
        out = type(estimator)._run(estimator, interpreter, tensor)
        tape.append({shape: value.copy() for shape, value in out.items()})
        return out

    def replay(interpreter, tensor):
        position[0] += 1
        return tape[position[0] - 1]

    estimator._run, position = record, [0]
    try:
        finder.place(image, layers)
        estimator._run = replay
        best = float("inf")
        for _ in range(repeats):
            position[0] = 0
            start = time.perf_counter()
            finder.place(image, layers)
            best = min(best, (time.perf_counter() - start) * 1000)
    finally:
        del estimator._run
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looks", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: cores, at most 4)")
    parser.add_argument("--models", default="pypi")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--clip-model", default="ViT-B-32")
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    from embeddings import load_encoder
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample import generate_sample
    from looksync.search.pose import PoseRegionFinder, load_blazepose, resolve_pose_models

    load_before = load_average()
    layers = list(get_taxonomy().layers)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_sample(Path(tmp), size=60, seed=7, n_looks=args.looks, image_base_url="http://127.0.0.1:1")
        looks = [Image.open(p).convert("RGB") for p in sorted(Path(manifest.looks_dir).glob("*.png"))]
    cases = [(name, image) for look in looks for name, image in reframed(look).items()]
    cases.append(("photograph", Image.fromarray(data.astronaut())))

    t0 = time.perf_counter()
    estimator = load_blazepose(resolve_pose_models(args.models, args.models_dir), args.threads)
    load_s = time.perf_counter() - t0
    finder = PoseRegionFinder(None, estimator=estimator)

    per_framing: dict[str, list[float]] = {}
    cpu_per_framing: dict[str, list[float]] = {}
    sources: dict[str, Counter] = {}
    all_ms, all_cpu = [], []
    for name, image in cases:
        finder.place(image, layers)  # warm-up
        for _ in range(args.repeats):
            cpu, start = time.process_time(), time.perf_counter()
            placement = finder.place(image, layers)
            ms, cpu_ms = (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000
            per_framing.setdefault(name, []).append(ms)
            cpu_per_framing.setdefault(name, []).append(cpu_ms)
            all_ms.append(ms)
            all_cpu.append(cpu_ms)
        sources.setdefault(name, Counter())[placement.source] += 1

    python_ms = [without_models_ms(finder, image, layers, max(10, args.repeats)) for _, image in cases]

    encoder = load_encoder(args.clip_model, "random:0", device="cpu")
    clip_p50 = crop_forward_ms(encoder, looks[0], args.repeats)

    print(f"machine: {os.cpu_count()} cores; load average {load_before} before, {load_average()} after")
    print(f"pose models loaded (files verified, 3 interpreters) in {load_s * 1000:.0f} ms; "
          f"threads {estimator.threads}")  # fmt: skip
    print(f"{len(cases)} looks x {args.repeats} repeats, every taxonomy layer placed\n")
    print(f"{'framing':<18} {'looks':>5} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'cpu p95':>8}  placed by")
    for name, values in per_framing.items():
        placed = ", ".join(f"{k} {v}" for k, v in sources[name].most_common())
        cpu = cpu_per_framing[name]
        print(f"{name:<18} {sources[name].total():>5} {percentile(values, 50):>8.1f} {percentile(values, 95):>8.1f} "
              f"{percentile(cpu, 50):>8.1f} {percentile(cpu, 95):>8.1f}  {placed}")  # fmt: skip
    p50, p95 = percentile(all_ms, 50), percentile(all_ms, 95)
    print(f"{'all':<18} {len(cases):>5} {p50:>8.1f} {p95:>8.1f} {percentile(all_cpu, 50):>8.1f} {percentile(all_cpu, 95):>8.1f}")
    print(f"without its model calls (min of {max(10, args.repeats)} a look): p50 {percentile(python_ms, 50):.2f} ms, "
          f"p95 {percentile(python_ms, 95):.2f} ms, mean {statistics.fmean(python_ms):.2f} ms")  # fmt: skip
    print(f"\none {args.clip_model} crop forward (random weights, 1 crop): p50 {clip_p50:.1f} ms")
    print(f"region step p50 = {p50 / clip_p50:.2f} x one crop forward; p95 = {p95 / clip_p50:.2f} x")
    print(f"target p95 <= 40 ms: {'met' if p95 <= 40 else 'missed'} ({p95:.1f} ms)")


if __name__ == "__main__":
    main()
