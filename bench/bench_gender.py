"""Which looks the gender head misreads, and what they have in common (issue 14).

Reads every look of a generated sample (``looksync sample generate``) with the configured CLIP model and region
finder (``LOOKSYNC_CLIP_MODEL``, ``LOOKSYNC_CLIP_WEIGHTS``, ``LOOKSYNC_REGION_FINDER``) once, and measures each
heads file given on the same crops: gender accuracy overall and by what placed the regions (pose, the person's
box, the layout), whether the pose detector boxed a face, the framing (crop, pose family, figure style, aspect,
scale), the figure's hair; and how many looks the head is sure of (>= 0.9, the gender filter's threshold).

    LOOKSYNC_CLIP_MODEL=LookSync-Tiny LOOKSYNC_CLIP_WEIGHTS=tuned.pt LOOKSYNC_REGION_FINDER=pose \\
        python bench/bench_gender.py --sample S --heads main=heads_main.npz --heads face=heads_face.npz
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def groups(truth: dict, placement) -> dict[str, str]:
    framing = truth.get("framing", {})
    return {
        "regions": placement.source,
        "face box": "found" if getattr(placement, "face", None) else "none",
        "framing": framing.get("variant", "fixed"),
        "crop": framing.get("crop", "fixed"),
        "pose": framing.get("pose", "fixed"),
        "style": framing.get("style", "flat"),
        "aspect": framing.get("aspect", "3:5"),
        "scale": "fixed" if "scale" not in framing else ("< 0.6" if framing["scale"] < 0.6 else ">= 0.6"),
        "hair": (truth.get("figure") or {}).get("hair", "?"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--heads", action="append", required=True, help="NAME=heads.npz (repeatable)")
    parser.add_argument("--out", type=Path, help="per-look results (JSON lines)")
    args = parser.parse_args()

    from PIL import Image

    from embeddings import load_encoder
    from looksync.search.detection import DetectionHeads, region_vectors
    from looksync.search.region_finders import make_region_finder
    from looksync.settings import load_settings

    settings = load_settings()
    encoder = load_encoder(settings.clip_model, settings.clip_weights, device=settings.device)
    finder = make_region_finder(settings.region_finder, encoder, settings=settings)
    heads = {}
    for spec in args.heads:
        name, _, path = spec.partition("=")
        heads[name] = DetectionHeads.load(Path(path))
        heads[name].check(encoder.model_id, finder.name)
    layers = list(dict.fromkeys(layer for h in heads.values() for layer in h.placed_layers()))
    truth = json.loads((args.sample / "looks" / "ground_truth.json").read_text(encoding="utf-8"))
    rows, started = [], time.perf_counter()
    for look_id, look_truth in sorted(truth.items()):
        with Image.open(args.sample / "looks" / f"{look_id}.png") as image:
            # one read serves every heads file: the face crop is in the batch, format-3 heads do not read it
            look = region_vectors(finder.place, encoder, image.convert("RGB"), layers, face=True)
        row = {"look": look_id, "gender": look_truth["gender"], **groups(look_truth, look.placement)}
        for name, h in heads.items():
            p = h.gender_prob(look)
            row[name] = {"prob_men": round(p, 4), "right": (p >= 0.5) == (look_truth["gender"] == "men"),
                         "sure": max(p, 1 - p) >= 0.9}  # fmt: skip
        rows.append(row)
    seconds = time.perf_counter() - started
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    print(f"{len(rows)} looks of {args.sample}, {seconds:.0f} s (regions {finder.name}, {encoder.model_id})")
    names = list(heads)
    print(f"{'':28s}" + "".join(f"{n:>16s}" for n in names))

    def line(label: str, chosen: list[dict]) -> None:
        cells = "".join(f"{np.mean([r[n]['right'] for r in chosen]):>10.3f} ({len(chosen):3d})" for n in names)
        print(f"{label:28s}{cells}")

    line("all", rows)
    for name in names:
        sure = [r for r in rows if r[name]["sure"]]
        print(f"  {name}: sure (>= 0.9) on {len(sure) / len(rows):.2f} of the looks, right on "
              f"{np.mean([r[name]['right'] for r in sure]) if sure else float('nan'):.3f} of those")  # fmt: skip
    for key in ("gender", "regions", "face box", "framing", "crop", "pose", "style", "aspect", "scale", "hair"):
        by = defaultdict(list)
        for r in rows:
            by[r[key]].append(r)
        for value, chosen in sorted(by.items()):
            line(f"{key}: {value}", chosen)


if __name__ == "__main__":
    main()
