"""``regions=truth`` in ``looksync eval``: each look's layers placed at their ground-truth garment boxes.

An oracle, for the evaluation only: with perfect regions the look tasks show how much of the recall a
region finder loses and how much the model loses on crops that are exactly right. It knows the answer,
so the service cannot select it (``LOOKSYNC_REGION_FINDER`` refuses ``truth``; it is not registered in
``looksync.search.region_finders.REGION_FINDERS``).

The search engine hands a finder only the look's pixels, so the finder recognises each sample look by
the digest of its pixels (computed once, from the sample, when it is built) and never holds a "current
look": one finder serves every look, from any thread, with no state set per search.

Per requested layer, from the look's ground truth (``looks/ground_truth.json``):
- worn and in frame, with visible pixels: its box (the box around those pixels), the only extent;
- worn but out of frame: not in the look, with the in-frame share as the reason;
- not worn, or worn and in frame with no pixel left visible (no box): the fallback finder's placement
  (``pose``), as a search of that look would place it without the oracle; the placement's ``degraded``
  notes name those layers.
Crops are cut from the look itself (a fallback's blanked background is not used).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from looksync.search.regions import Box, ClipBoxRegionFinder, Placement, Region, find_placed

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder


def look_digest(look: Image) -> str:
    """sha256 of the look's size and RGB pixels: the same for the PNG the sample wrote and the image the
    engine is handed (decoded and converted to RGB)."""
    look = look.convert("RGB")
    return hashlib.sha256(f"{look.size[0]}x{look.size[1]}\x00".encode() + look.tobytes()).hexdigest()


class TruthRegionFinder:
    """Layers at the sample's ground-truth boxes; layers the look does not wear (or shows no pixel of)
    from ``fallback`` (a finder with ``place``: the eval uses ``pose``)."""

    name = "truth"

    def __init__(self, encoder: ClipEncoder, looks: Mapping[str, Mapping[str, Any]], fallback: Any,
                 embed_texts: Callable[[list[str]], np.ndarray] | None = None):  # fmt: skip
        """``looks``: look digest (``look_digest``) -> that look's ground truth (products, in_frame, boxes)."""
        self.encoder = encoder
        self.looks = dict(looks)
        self.fallback = fallback
        self.box_search = ClipBoxRegionFinder(encoder, embed_texts)  # layers neither finder places

    @classmethod
    def from_sample(cls, encoder: ClipEncoder, looks_dir: Path, ground_truth: Mapping[str, Mapping[str, Any]],
                    fallback: Any, embed_texts: Callable[[list[str]], np.ndarray] | None = None) -> TruthRegionFinder:  # fmt: skip
        """Every look of the sample (``looks_dir/<look_id>.png``), keyed by the digest of its pixels."""
        from PIL import Image

        looks = {}
        for look_id, expected in ground_truth.items():
            with Image.open(Path(looks_dir) / f"{look_id}.png") as image:
                looks[look_digest(image)] = expected
        return cls(encoder, looks, fallback, embed_texts)

    def place(self, look: Image, layers: list[str]) -> Placement:
        start = time.perf_counter()
        expected = self.looks.get(look_digest(look))
        if expected is None:
            raise ValueError("regions=truth: this look is not one of the sample's looks (its pixels match no "
                             "look in looks/ground_truth.json)")  # fmt: skip
        boxes: dict[str, list[Box]] = {}
        absent: dict[str, str] = {}
        rest = []
        for layer in layers:
            box = expected.get("boxes", {}).get(layer)
            if not expected.get("in_frame", {}).get(layer, True):  # worn, out of frame
                share = expected.get("frame_share", {}).get(layer)
                absent[layer] = f"out of frame (ground truth: {share:.0%} of it in frame)" if share is not None else "out of frame (ground truth)"
            elif box is not None:
                boxes[layer] = [tuple(int(v) for v in box)]
            else:  # not worn, or no pixel of it visible
                rest.append(layer)
        placement = Placement(boxes=boxes, source="truth", absent=absent,
                              timings_ms={"region_truth": (time.perf_counter() - start) * 1000})  # fmt: skip
        if rest:
            placed = self.fallback.place(look, rest)
            placement.boxes.update(placed.boxes)
            placement.absent.update(placed.absent)
            placement.timings_ms.update(placed.timings_ms)
            placement.degraded += [f"regions_truth: {', '.join(rest)} not worn or not visible in the look; "
                                   f"placed by {placed.source}", *placed.degraded]  # fmt: skip
        return placement

    def find(self, look: Image, queries: dict[str, str]) -> dict[str, Region]:
        return find_placed(self, self.encoder, self.box_search, look.convert("RGB"), queries)
