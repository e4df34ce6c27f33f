"""The pose finder's placements of a sample's looks, as JSON lines, with hashes of every model-derived value: to show
that a change to the region step leaves its output the same (run it over two checkouts and compare the files).

Each look of ``SAMPLE/looks`` (and the first ``--framed`` of them in ``bench_regions.py``'s four reframings, and the
astronaut photograph) is placed for every taxonomy layer; a line holds the placement's source, boxes, absent layers
and reasons, ``degraded`` notes and face box, and the sha1 of each detector result, person-mask probability grid and
figure, and landmark read (points, visibility, presence, pose flag), in call order.

    looksync sample generate --out s220 --size 300 --seed 11 --looks 40 --varied-looks 180 --varied-split train
    (cd MAIN && python bench/region_placements.py s220 main.jsonl) && python bench/region_placements.py s220 this.jsonl
    cmp main.jsonl this.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sha(*arrays) -> str:
    return hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sample", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--framed", type=int, default=20, help="looks also placed in the bench's four reframings")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    from bench.bench_regions import reframed
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.pose import PoseRegionFinder, load_blazepose, resolve_pose_models

    layers = list(get_taxonomy().layers)
    estimator = load_blazepose(resolve_pose_models("pypi", None), args.threads)
    finder = PoseRegionFinder(None, estimator=estimator)
    reads: list[str] = []
    detect, figure, landmarks = estimator.detect, estimator.person_figure, estimator.landmarks

    def detect_logged(*a, **k):
        found = detect(*a, **k)
        reads.append("detect " + _sha(*(np.array([d.score]) for d in found), *(d.box for d in found), *(d.keypoints for d in found)))
        return found

    def figure_logged(*a, **k):
        found = figure(*a, **k)
        reads.append("figure " + ("none" if found is None else _sha(found.mask, np.array([found.head_top, found.midline, *found.box]))))
        return found

    def landmarks_logged(*a, **k):
        pose = landmarks(*a, **k)
        reads.append(f"landmarks {_sha(pose.points, pose.visibility, pose.presence)} {pose.score:.6f}")
        return pose

    estimator.detect, estimator.person_figure, estimator.landmarks = detect_logged, figure_logged, landmarks_logged
    paths = sorted((args.sample / "looks").glob("*.png"))
    cases = [(p.name, Image.open(p).convert("RGB")) for p in paths]
    cases += [(f"{p.name}:{name}", image) for p in paths[: args.framed]
              for name, image in reframed(Image.open(p).convert("RGB")).items() if name != "as generated"]  # fmt: skip
    cases.append(("astronaut", Image.fromarray(data.astronaut())))
    with args.out.open("w") as out:
        for name, image in cases:
            reads.clear()
            placement = finder.place(image, layers)
            out.write(json.dumps({
                "look": name, "source": placement.source,
                "boxes": {layer: [list(map(int, box)) for box in boxes] for layer, boxes in placement.boxes.items()},
                "absent": placement.absent, "degraded": placement.degraded,
                "face": list(map(int, placement.face)) if placement.face else None, "reads": list(reads),
            }) + "\n")  # fmt: skip
    print(f"{len(cases)} looks placed by {Path(__file__).resolve().parents[1]} -> {args.out}")


if __name__ == "__main__":
    main()
