"""Query generation: one descriptive text query per garment layer of a look.

``LocalQueryGenerator`` needs no LLM: CLIP zero-shot attributes, read on the region of the look that
best matches each layer, are composed into a query such as "women's navy striped t-shirt". The
region finder is CLIP-guided: candidate boxes of the look are embedded in one batch and each layer
takes the box its prompt scores highest. The LLM generator (vision chat with a strict JSON schema)
plugs into the same ``QueryGenerator`` shape in the service issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from looksync.taxonomy import Taxonomy, get_taxonomy

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder
    from embeddings.zeroshot import ZeroShot

# Candidate regions as fractions of the look (left, top, right, bottom): bands from head to feet,
# full width and centred, plus the whole look. Generated looks are full-body, upright figures.
_VERTICAL_BANDS = [(0.0, 0.2), (0.0, 0.35), (0.1, 0.5), (0.15, 0.6), (0.3, 0.75), (0.4, 0.9), (0.7, 1.0), (0.82, 1.0)]
_HORIZONTAL_SPANS = [(0.0, 1.0), (0.2, 0.8)]
CANDIDATE_BOXES = [(x0, y0, x1, y1) for (y0, y1) in _VERTICAL_BANDS for (x0, x1) in _HORIZONTAL_SPANS] + [
    (0.0, 0.0, 1.0, 1.0)
]


@dataclass
class LayerQuery:
    layer: str
    query: str
    category: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None  # pixel box of the look the attributes were read from
    confidence: float = 0.0


@dataclass
class GeneratedQueries:
    source: str  # "local" or "llm"
    gender: str | None
    layers: list[LayerQuery]


class QueryGenerator(Protocol):
    def generate(self, look: Image, layers: list[str] | None = None, gender: str | None = None) -> GeneratedQueries: ...


def compose_query(taxonomy: Taxonomy, category: str, gender: str | None, colour: str | None, pattern: str | None) -> str:
    parts = []
    if gender and gender != "unisex":
        parts.append(taxonomy.genders[gender])
    if colour:
        parts.append(colour)
    if pattern and pattern != "solid":
        parts.append(pattern)
    parts.append(taxonomy.categories[category].label)
    return " ".join(parts)


class LocalQueryGenerator:
    """CLIP zero-shot attributes composed into per-layer queries."""

    source = "local"

    def __init__(self, encoder: ClipEncoder, zeroshot: ZeroShot, taxonomy: Taxonomy | None = None, max_layers: int = 6):
        self.encoder = encoder
        self.zeroshot = zeroshot
        self.taxonomy = taxonomy or get_taxonomy()
        self.max_layers = max_layers

    def _crops(self, look: Image) -> tuple[list[tuple[int, int, int, int]], list[Image]]:
        width, height = look.size
        boxes = [
            (int(x0 * width), int(y0 * height), max(int(x1 * width), int(x0 * width) + 1), max(int(y1 * height), int(y0 * height) + 1))
            for x0, y0, x1, y1 in CANDIDATE_BOXES
        ]
        return boxes, [look.crop(box) for box in boxes]

    def _detect_layers(self, layer_probs: dict[str, float]) -> list[str]:
        """Layers whose probability on the whole look is above uniform, most likely first."""
        uniform = 1.0 / len(layer_probs)
        ranked = sorted(layer_probs.items(), key=lambda kv: kv[1], reverse=True)
        chosen = [layer for layer, p in ranked if p >= uniform][: self.max_layers]
        return chosen or [ranked[0][0]]

    def generate(self, look: Image, layers: list[str] | None = None, gender: str | None = None) -> GeneratedQueries:
        look = look.convert("RGB")
        boxes, crops = self._crops(look)
        vectors = self.encoder.encode_images(crops)  # last row is the whole look
        whole = vectors[-1:]
        if gender is None:
            gender = max(self.zeroshot.scores(whole, "gender")[0].items(), key=lambda kv: kv[1])[0]
        if layers is None:
            layers = self._detect_layers(self.zeroshot.scores(whole, "layer")[0])

        layer_scores = self.zeroshot.scores(vectors, "layer")  # per crop: {layer: prob}
        best_crop = {layer: int(np.argmax([s[layer] for s in layer_scores])) for layer in layers}
        crop_ids = sorted(set(best_crop.values()))
        category_scores = dict(zip(crop_ids, self.zeroshot.scores(vectors[crop_ids], "category"), strict=True))
        colour_scores = dict(zip(crop_ids, self.zeroshot.scores(vectors[crop_ids], "colour"), strict=True))
        pattern_scores = dict(zip(crop_ids, self.zeroshot.scores(vectors[crop_ids], "pattern"), strict=True))

        queries = []
        for layer in layers:
            i = best_crop[layer]
            allowed = self.taxonomy.categories_of(layer)
            category = max(allowed, key=lambda c: category_scores[i][c])
            colour = max(colour_scores[i].items(), key=lambda kv: kv[1])[0]
            pattern = max(pattern_scores[i].items(), key=lambda kv: kv[1])[0]
            queries.append(
                LayerQuery(
                    layer=layer,
                    query=compose_query(self.taxonomy, category, gender, colour, pattern),
                    category=category,
                    attributes={"colour": colour, "pattern": pattern, "gender": gender},
                    box=boxes[i],
                    confidence=float(layer_scores[i][layer]),
                )
            )
        return GeneratedQueries(source=self.source, gender=gender, layers=queries)
