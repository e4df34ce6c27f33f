"""Region finders: where in the look each garment layer is, as a pixel box (and, when the finder
computed one, the CLIP vector of that crop).

The default, ``ClipBoxRegionFinder``, needs no extra weights: candidate boxes of the look (bands from
head to feet, full width and centred, plus the whole look) are embedded in one CLIP batch, and each
layer takes the box whose crop is closest to that layer's query text. A segmentation model (SAM 2, a
human-parsing network) plugs in as another ``RegionFinder`` registered in ``REGION_FINDERS`` once its
weights are configured; the search pipeline only sees the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder

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


def candidate_crops(look: Image, encoder: ClipEncoder) -> CandidateCrops:
    """Crop and embed every candidate box in one batch."""
    look = look.convert("RGB")
    boxes = pixel_boxes(look.size)
    crops = [look.crop(box) for box in boxes]
    return CandidateCrops(boxes=boxes, crops=crops, vectors=encoder.encode_images(crops))


class RegionFinder(Protocol):
    name: str

    def find(self, look: Image, queries: dict[str, str]) -> dict[str, Region]:
        """Layer -> region of the look for each layer in ``queries`` (layer -> query text)."""
        ...


class ClipBoxRegionFinder:
    """CLIP-guided search over candidate boxes: each layer takes the crop closest to its query text."""

    name = "clip_boxes"

    def __init__(self, encoder: ClipEncoder, embed_text: Callable[[str], np.ndarray] | None = None):
        self.encoder = encoder
        self._embed_text = embed_text or (lambda text: encoder.encode_texts([text])[0])

    def find(self, look: Image, queries: dict[str, str], crops: CandidateCrops | None = None) -> dict[str, Region]:
        if not queries:
            return {}
        crops = crops or candidate_crops(look, self.encoder)
        texts = np.stack([self._embed_text(q) for q in queries.values()])
        similarity = crops.vectors @ texts.T  # crops x layers
        regions = {}
        for j, layer in enumerate(queries):
            i = int(np.argmax(similarity[:, j]))
            regions[layer] = Region(box=crops.boxes[i], score=float(similarity[i, j]), vector=crops.vectors[i])
        return regions


REGION_FINDERS: dict[str, Callable[..., RegionFinder]] = {"clip_boxes": ClipBoxRegionFinder}


def make_region_finder(name: str, encoder: ClipEncoder, embed_text: Callable[[str], np.ndarray] | None = None) -> RegionFinder:
    try:
        factory = REGION_FINDERS[name]
    except KeyError:
        raise ValueError(f"region finder {name!r} is not registered; known: {', '.join(sorted(REGION_FINDERS))}") from None
    return factory(encoder, embed_text)
