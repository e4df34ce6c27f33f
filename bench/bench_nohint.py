"""Query generation for a look sent without hints: the crops the detection heads embedded, reused or not.

A look with no gender and no layers goes through ``LocalQueryGenerator.generate``: the region finder places
every taxonomy layer, each placed layer's main region, the head and shoulders and the whole look are
embedded in one batch for the detection heads, then the layers they find are read from their crops
(main region and other extents: taxonomy ``alt_slots``, pose extents). Three ways of getting those crops,
each timed on the same looks in turn (round robin, so load changes hit all three alike):

- ``twice``: the generator embeds the searched layers' boxes again (main and other extents) in a second
  batch, as it did before the reuse (``region_vectors`` without extents, its ``embedded`` map emptied);
- ``second batch``: the main regions come from the heads' batch; only the searched layers' other extents go
  through the model, in a second, smaller batch (``region_vectors`` without extents);
- ``one batch``: every placed layer's other extents go into the heads' batch too, so there is no second
  batch, at the price of embedding the extents of layers that are then not searched (the code as it is).

The heads here are constant (they find the ``--found`` layers where placed, by default a 5-layer look: outer
topwear, topwear, bottomwear, footwear, bag, and read men): the heads' arithmetic costs microseconds, the
crops' forwards are the cost.
The anchor, measured in the same run: one 224 px crop through ``encode_images`` of the same model (random
weights cost what trained ones do). Wall clock and the process's CPU time per look; on a shared machine
compare CPU time across runs. Each variant's queries are checked equal to ``twice``'s (vectors within 1e-5).

    PYTHONPATH=. python bench/bench_nohint.py                       # pose regions, 6 looks x 5 repeats
    PYTHONPATH=. python bench/bench_nohint.py --finder layout --looks 4 --repeats 3
    PYTHONPATH=. python bench/bench_nohint.py --found topwear,bottomwear,footwear   # a 3-layer look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_regions import crop_forward_ms, load_average  # noqa: E402

FOUND = "outer_topwear,topwear,bottomwear,footwear,bag"  # what the constant heads find, by default


class CountingEncoder:
    """The encoder, counting the crops it embeds and the batches it runs."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.crops = self.batches = 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_images(self, images, batch_size=None):
        self.crops += len(images)
        self.batches += 1
        return self._encoder.encode_images(images, batch_size=batch_size)


def embedded_twice(region_vectors: Callable) -> Callable:
    """``region_vectors`` as it was: main regions only and no ``embedded`` map, so the generator embeds every
    searched crop again."""

    def place_and_embed(place, encoder, look, layers, extents=False):
        vectors = region_vectors(place, encoder, look, layers)
        vectors.embedded = {}
        return vectors

    return place_and_embed


def main_regions_only(region_vectors: Callable) -> Callable:
    """``region_vectors`` without the other extents: the generator embeds the searched layers' in a second batch."""

    def place_and_embed(place, encoder, look, layers, extents=False):
        return region_vectors(place, encoder, look, layers)

    return place_and_embed


def same_queries(a, b) -> bool:
    if [(q.layer, q.query, q.box) for q in a.layers] != [(q.layer, q.query, q.box) for q in b.layers]:
        return False
    for x, y in zip(a.layers, b.layers, strict=True):
        if not np.allclose(x.crop_vector, y.crop_vector, atol=1e-5):
            return False
        if (x.alt_crop_vectors is None) != (y.alt_crop_vectors is None):
            return False
        if x.alt_crop_vectors is not None and not np.allclose(x.alt_crop_vectors, y.alt_crop_vectors, atol=1e-5):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looks", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--finder", choices=("pose", "layout"), default="pose")
    parser.add_argument("--models", default="pypi", help="pose model files: pypi, a directory or s3://...")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--found", default=FOUND, help="the layers the constant heads find, comma-separated")
    args = parser.parse_args()

    from PIL import Image

    import looksync.search.detection as detection
    from embeddings import load_encoder
    from embeddings.zeroshot import ZeroShot
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample import generate_sample
    from looksync.search.detection import DetectionHeads, LogisticHead
    from looksync.search.querygen import LocalQueryGenerator
    from looksync.search.regions import LayoutRegionFinder

    load_before = load_average()
    taxonomy = get_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_sample(Path(tmp), size=60, seed=7, n_looks=args.looks, image_base_url="http://127.0.0.1:1")
        looks = [Image.open(p).convert("RGB") for p in sorted(Path(manifest.looks_dir).glob("*.png"))]
    clip = load_encoder(args.clip_model, "random:0", device="cpu")
    encoder = CountingEncoder(clip)
    if args.finder == "pose":
        from looksync.search.pose import PoseRegionFinder, load_blazepose, resolve_pose_models

        finder = PoseRegionFinder(clip, estimator=load_blazepose(resolve_pose_models(args.models, args.models_dir)))
    else:
        finder = LayoutRegionFinder(clip)
    dim, found = 2 * clip.dim, args.found.split(",")
    heads = DetectionHeads(
        clip.model_id, finder.name,
        presence={layer: LogisticHead(np.zeros(dim), 4.0 if layer in found else -4.0) for layer in taxonomy.layers},
        gender=LogisticHead(np.zeros(dim), 4.0),
    )  # fmt: skip
    generator = LocalQueryGenerator(encoder, ZeroShot(clip, taxonomy), taxonomy, placer=finder.place, heads=heads)

    real = detection.region_vectors
    variants = {"twice": embedded_twice(real), "second batch": main_regions_only(real), "one batch": real}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name in variants}
    searched, equal = [], True
    try:
        for look in looks:
            answers = {}
            for name, region_vectors in variants.items():  # warm-up, counts and answers
                detection.region_vectors = region_vectors
                encoder.crops = encoder.batches = 0
                answers[name] = generator.generate(look)
                counts[name][0].append(encoder.crops)
                counts[name][1].append(encoder.batches)
            searched.append(len(answers["twice"].layers))
            equal &= all(same_queries(answers["twice"], answer) for answer in answers.values())
            order = list(variants)
            for repeat in range(args.repeats):
                for name in order[repeat % 3 :] + order[: repeat % 3]:
                    detection.region_vectors = variants[name]
                    c0, t0 = time.process_time(), time.perf_counter()
                    generator.generate(look)
                    wall[name].append((time.perf_counter() - t0) * 1000)
                    cpu[name].append((time.process_time() - c0) * 1000)
    finally:
        detection.region_vectors = real

    crop_ms = crop_forward_ms(clip, looks[0], args.repeats)

    print(f"machine: {os.cpu_count()} cores; load average {load_before} before, {load_average()} after")
    print(f"{args.clip_model} (random weights), {finder.name} regions, {len(looks)} sample looks x {args.repeats} "
          f"repeats, no hints; layers searched per look: {statistics.mean(searched):.1f}")  # fmt: skip
    print(f"queries equal to twice's in every variant (layers, queries, boxes, vectors within 1e-5): {equal}\n")
    print(f"{'variant':<12} {'crops':>6} {'batches':>8} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} "
          f"{'p50 / twice':>11} {'cpu / twice':>11}")  # fmt: skip
    base_wall, base_cpu = statistics.median(wall["twice"]), statistics.median(cpu["twice"])
    for name in variants:
        p50, p95, c50 = statistics.median(wall[name]), float(np.percentile(wall[name], 95)), statistics.median(cpu[name])
        print(f"{name:<12} {statistics.mean(counts[name][0]):>6.1f} {statistics.mean(counts[name][1]):>8.1f} "
              f"{p50:>8.1f} {p95:>8.1f} {c50:>8.1f} {p50 / base_wall:>11.2f} {c50 / base_cpu:>11.2f}")  # fmt: skip
    print(f"\none crop forward ({args.clip_model}, 1 crop): p50 {crop_ms:.1f} ms; one batch saves "
          f"{(base_wall - statistics.median(wall['one batch'])) / crop_ms:.1f} crop forwards per look (wall p50)")  # fmt: skip


if __name__ == "__main__":
    main()
