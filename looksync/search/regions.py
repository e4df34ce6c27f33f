"""Region finders: where in the look each garment layer is, as a pixel box (and, when the finder
computed one, the CLIP vector of that crop).

The default, ``LayoutRegionFinder`` (``layout``), needs no weights: looks are full-body, upright,
front-facing figures, so each layer's garment is where the taxonomy's layout prior puts it (the layer's
``slot``, widened by ``LAYOUT_MARGIN``); layers without a slot fall back to the CLIP box search.
``ClipBoxRegionFinder`` (``clip_boxes``): candidate boxes of the look (bands from head to feet, full
width and centred, plus the whole look) are embedded in one CLIP batch, and each layer takes the box
whose crop is closest to that layer's query text; it needs no layout assumption but, with small
models, often picks a neighbouring band (measured in docs/evaluation.md). A segmentation model (SAM 2,
a human-parsing network) plugs in as another ``RegionFinder`` registered in ``region_finders.REGION_FINDERS`` once
its weights are configured; the search pipeline only sees the protocol.
``PoseRegionFinder`` (``pose``, ``looksync.search.pose``): each layer's boxes from the body's keypoints
(a pretrained pose model), for looks in any framing, saying which layers are out of frame.

A finder that places layers without CLIP (``layout``, ``pose``) also has ``place(look, layers) ->
Placement``: each layer's boxes (main, then other extents), the layers it found not to be in the look
with the reason, and what it fell back to; the local query generator reads attributes there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder
    from looksync.catalog.taxonomy import Taxonomy

Box = tuple[int, int, int, int]

# Candidate regions as fractions of the look (left, top, right, bottom). Generated looks are
# full-body, upright figures, so bands from head to feet cover the garment slots.
_VERTICAL_BANDS = [(0.0, 0.2), (0.0, 0.35), (0.1, 0.5), (0.15, 0.6), (0.3, 0.75), (0.4, 0.9), (0.7, 1.0), (0.82, 1.0)]
_HORIZONTAL_SPANS = [(0.0, 1.0), (0.2, 0.8)]
CANDIDATE_BOXES = [(x0, y0, x1, y1) for (y0, y1) in _VERTICAL_BANDS for (x0, x1) in _HORIZONTAL_SPANS] + [
    (0.0, 0.0, 1.0, 1.0)
]


@dataclass
class Region:
    box: Box
    score: float
    vector: np.ndarray | None = None  # CLIP vector of the crop, when the finder already computed it


@dataclass
class Placement:
    """Where a finder put each layer without CLIP. ``boxes``: layer -> its boxes (main, then its other
    extents); ``absent``: layer -> why it is not in the look (out of frame, not visible); layers in
    neither are for the CLIP box search. ``source``: what placed them (``layout``, ``pose``,
    ``person_box``); ``degraded``: notes for the response when it fell back; ``timings_ms``: its steps."""

    boxes: dict[str, list[Box]]
    source: str
    absent: dict[str, str] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # the pixels the boxes are cut from when not the look itself (the look with its background blanked)
    image: Image | None = field(default=None, repr=False, compare=False)
    # the person's head (face and hair) as the pose detector boxes it, whichever step placed the layers; None
    # when no detector ran or found no one (the gender head's face crop: ``looksync.search.detection``)
    face: Box | None = None

    def pixels(self, look: Image) -> Image:
        return self.image if self.image is not None else look


@dataclass
class CandidateCrops:
    """The candidate boxes of one look, their crops and their CLIP vectors (last row: the whole look)."""

    boxes: list[Box]
    crops: list[Image]
    vectors: np.ndarray


def pixel_boxes(size: tuple[int, int], fractions: list[tuple[float, float, float, float]] = CANDIDATE_BOXES) -> list[Box]:
    width, height = size
    return [
        (int(x0 * width), int(y0 * height), max(int(x1 * width), int(x0 * width) + 1), max(int(y1 * height), int(y0 * height) + 1))
        for x0, y0, x1, y1 in fractions
    ]


def candidate_crops(look: Image, encoder: ClipEncoder, fractions: list[tuple[float, float, float, float]] = CANDIDATE_BOXES) -> CandidateCrops:
    """Crop and embed the candidate boxes (by default every one) in one batch."""
    look = look.convert("RGB")
    return box_crops(look, encoder, pixel_boxes(look.size, fractions))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two pixel boxes (0 when both are empty)."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def box_crops(
    look: Image, encoder: ClipEncoder, boxes: list[Box], embedded: dict[Box, np.ndarray] | None = None
) -> CandidateCrops:
    """Crop and embed pixel boxes of the look in one batch, each distinct box once. ``embedded``: vectors
    already computed from these same pixels, by box (the detection heads' crops); those are not embedded again."""
    crops = [look.crop(box) for box in boxes]
    vectors = dict(embedded or {})
    todo = {box: crop for box, crop in zip(boxes, crops, strict=True) if box not in vectors}
    if todo:
        vectors.update(zip(todo, encoder.encode_images(list(todo.values()), batch_size=len(todo)), strict=True))
    rows = np.array([vectors[box] for box in boxes], dtype=np.float32).reshape(len(boxes), encoder.dim)
    return CandidateCrops(boxes=boxes, crops=crops, vectors=rows)


# Coarse-to-fine: the full-width bands and the whole look first; then, for each layer, only the
# narrower variants of the band that layer scored best on. Same boxes, same scores per box, fewer
# crops through the model (9 + at most one per distinct winning band, against 17).
COARSE_BOXES = [(0.0, y0, 1.0, y1) for (y0, y1) in _VERTICAL_BANDS] + [(0.0, 0.0, 1.0, 1.0)]


def _refinements(fraction: tuple[float, float, float, float]) -> list[tuple[float, float, float, float]]:
    _, y0, _, y1 = fraction
    if (y0, y1) == (0.0, 1.0):
        return []
    return [(x0, y0, x1, y1) for (x0, x1) in _HORIZONTAL_SPANS if (x0, x1) != (0.0, 1.0)]


def coarse_to_fine_crops(
    look: Image, encoder: ClipEncoder, score: Callable[[np.ndarray], np.ndarray], coarse: CandidateCrops | None = None
) -> tuple[CandidateCrops, list[int]]:
    """Embed the coarse boxes, let ``score`` (crop vectors -> crops x layers, higher is better) pick
    each layer's band, embed the narrower variants of the winning bands only, and pick again.

    Returns the embedded candidates (coarse first, the whole look at index ``len(COARSE_BOXES) - 1``)
    and, per layer column of ``score``, the index of its best candidate. A box's score does not
    depend on the other boxes, so each layer's choice is the argmax over every box embedded.
    ``coarse``: the coarse candidates when the caller already embedded them (``COARSE_BOXES``)."""
    look = look.convert("RGB")
    coarse = coarse or candidate_crops(look, encoder, COARSE_BOXES)
    scores = np.asarray(score(coarse.vectors))
    winners = sorted({int(i) for i in np.argmax(scores, axis=0)})
    extra = [f for i in winners for f in _refinements(COARSE_BOXES[i])]
    if not extra:
        return coarse, [int(i) for i in np.argmax(scores, axis=0)]
    fine = candidate_crops(look, encoder, extra)
    crops = CandidateCrops(
        boxes=coarse.boxes + fine.boxes,
        crops=coarse.crops + fine.crops,
        vectors=np.concatenate([coarse.vectors, fine.vectors]),
    )
    scores = np.concatenate([scores, np.asarray(score(fine.vectors))])
    return crops, [int(i) for i in np.argmax(scores, axis=0)]


class RegionFinder(Protocol):
    name: str

    def find(self, look: Image, queries: dict[str, str]) -> dict[str, Region]:
        """Layer -> region of the look for each layer in ``queries`` (layer -> query text)."""
        ...


class ClipBoxRegionFinder:
    """CLIP-guided search over candidate boxes: each layer takes the crop closest to its query text."""

    name = "clip_boxes"

    def __init__(self, encoder: ClipEncoder, embed_texts: Callable[[list[str]], np.ndarray] | None = None):
        self.encoder = encoder
        # texts -> len(texts) x dim, in one call (the search engine passes its cached, batched embedder)
        self._embed_texts = embed_texts or (lambda texts: encoder.encode_texts(texts))

    def find(self, look: Image, queries: dict[str, str], crops: CandidateCrops | None = None) -> dict[str, Region]:
        """Given ``crops``, the best of them per layer; otherwise coarse-to-fine over the candidate boxes."""
        if not queries:
            return {}
        texts = np.asarray(self._embed_texts(list(queries.values())), dtype=np.float32)
        if crops is None:
            crops, best = coarse_to_fine_crops(look, self.encoder, lambda vectors: vectors @ texts.T)
        else:
            best = [int(i) for i in np.argmax(crops.vectors @ texts.T, axis=0)]
        regions = {}
        for j, layer in enumerate(queries):
            i = best[j]
            score = float(crops.vectors[i] @ texts[j])
            regions[layer] = Region(box=crops.boxes[i], score=score, vector=crops.vectors[i])
        return regions


# Slots are rough anatomy; the margin keeps a garment drawn a little larger or off-centre in the crop.
LAYOUT_MARGIN = 0.1


def slot_fraction(slot: tuple[float, float, float, float], margin: float = LAYOUT_MARGIN) -> tuple[float, float, float, float]:
    """A taxonomy slot widened by ``margin`` of its own width and height, clipped to the look."""
    x0, y0, x1, y1 = slot
    dx, dy = (x1 - x0) * margin / 2, (y1 - y0) * margin / 2
    return (max(0.0, x0 - dx), max(0.0, y0 - dy), min(1.0, x1 + dx), min(1.0, y1 + dy))


def layer_slots(taxonomy: Taxonomy, layer: str) -> list[tuple[float, float, float, float]]:
    """The layer's widened taxonomy slot, then its other extents (``alt_slots``); empty without a slot."""
    spec = taxonomy.layers.get(layer)
    if spec is None or spec.slot is None:
        return []
    return [slot_fraction(spec.slot), *(slot_fraction(alt) for alt in spec.alt_slots)]


class LayoutRegionFinder:
    """Each layer's taxonomy slot (a layout prior for full-body looks); CLIP box search for the rest."""

    name = "layout"

    def __init__(self, encoder: ClipEncoder, embed_texts: Callable[[list[str]], np.ndarray] | None = None,
                 taxonomy: Taxonomy | None = None):  # fmt: skip
        from looksync.catalog.taxonomy import get_taxonomy

        self.encoder = encoder
        self.taxonomy = taxonomy or get_taxonomy()
        self.fallback = ClipBoxRegionFinder(encoder, embed_texts)

    def place(self, look: Image, layers: list[str]) -> Placement:
        """Each layer's slot, then its other extents, in pixels; layers without a slot are left out."""
        return layout_placement(self.taxonomy, look.size, layers)

    def find(self, look: Image, queries: dict[str, str]) -> dict[str, Region]:
        return find_placed(self, self.encoder, self.fallback, look.convert("RGB"), queries)


def layout_placement(taxonomy: Taxonomy, size: tuple[int, int], layers: list[str], source: str = "layout") -> Placement:
    slots = {layer: layer_slots(taxonomy, layer) for layer in layers}
    return Placement(boxes={layer: pixel_boxes(size, fractions) for layer, fractions in slots.items() if fractions}, source=source)


def find_placed(finder, encoder: ClipEncoder, fallback: ClipBoxRegionFinder, look: Image, queries: dict[str, str]) -> dict[str, Region]:
    """``RegionFinder.find`` for a finder with ``place``: each placed layer's main box, embedded in one
    batch; absent layers get no region; the rest go to the CLIP box search."""
    placement = finder.place(look, list(queries))
    regions = {}
    if placement.boxes:
        crops = box_crops(placement.pixels(look), encoder, [boxes[0] for boxes in placement.boxes.values()])
        for layer, box, vector in zip(placement.boxes, crops.boxes, crops.vectors, strict=True):
            regions[layer] = Region(box=box, score=1.0, vector=vector)
    rest = {layer: text for layer, text in queries.items() if layer not in placement.boxes and layer not in placement.absent}
    if rest:
        regions.update(fallback.find(look, rest))
    return regions
