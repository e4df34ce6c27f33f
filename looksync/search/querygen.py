"""Query generation: one descriptive text query per garment layer of a look.

``LLMQueryGenerator`` asks an OpenAI-compatible vision model for a strict JSON object keyed by
taxonomy layer ids; on any failure (timeout, HTTP error, connection refused, invalid JSON, unknown
layers) it falls back to ``LocalQueryGenerator`` and records why in ``degraded``.

``LocalQueryGenerator`` needs no LLM: CLIP zero-shot attributes, read on each layer's region of the
look, are composed into a query such as "women's navy striped t-shirt". The region is where the region
finder's ``place`` puts the layer (``layout``: its taxonomy slot, a layout prior for full-body looks;
``pose``: from the body's keypoints, which also says which layers are not in the look: those get no
query) or, without a placer and for layers it leaves out, the candidate box that best matches the
layer (see ``looksync.search.regions``; searched coarse-to-fine). Its queries come from a finite
vocabulary (``local_vocabulary``), whose text vectors the search engine can precompute per model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from looksync.catalog.taxonomy import Taxonomy, get_taxonomy
from looksync.search.llm import LLMClient, LLMError, image_data_url, parse_layer_queries, query_schema
from looksync.search.regions import (
    COARSE_BOXES,
    Box,
    CandidateCrops,
    Placement,
    box_crops,
    candidate_crops,
    coarse_to_fine_crops,
    layout_placement,
)

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder
    from embeddings.zeroshot import ZeroShot
    from looksync.search.detection import DetectionHeads

log = logging.getLogger(__name__)


@dataclass
class LayerQuery:
    layer: str
    query: str
    category: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    box: Box | None = None  # pixel box of the look the attributes were read from
    confidence: float = 0.0
    crop_vector: np.ndarray | None = field(default=None, repr=False)  # CLIP vector of that box, when computed
    # CLIP vectors of the layer's other extents (taxonomy alt_slots), one row each; None when it has none
    alt_crop_vectors: np.ndarray | None = field(default=None, repr=False)


@dataclass
class GeneratedQueries:
    source: str  # "local" or "llm"
    gender: str | None
    layers: list[LayerQuery]
    degraded: list[str] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)  # layer -> why it is not in the look (no query)
    region_source: str | None = None  # what placed the regions: layout, pose, person_box (None: searched)
    timings_ms: dict[str, float] = field(default_factory=dict)  # the region finder's steps
    # the gender the generator read when none was given (None: given, or the LLM named none) and how sure it
    # was; ``gender`` is None when that guess was below the generator's minimum confidence
    gender_guess: str | None = None
    gender_confidence: float | None = None


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


def local_vocabulary(taxonomy: Taxonomy) -> list[str]:
    """Every query ``LocalQueryGenerator`` can produce (gender x colour x pattern x category), sorted."""
    return sorted(
        {
            compose_query(taxonomy, category, gender, colour, pattern)
            for gender in taxonomy.genders
            for colour in taxonomy.colours
            for pattern in taxonomy.patterns
            for category in taxonomy.categories
        }
    )


class LocalQueryGenerator:
    """CLIP zero-shot attributes composed into per-layer queries."""

    source = "local"

    def __init__(
        self,
        encoder: ClipEncoder,
        zeroshot: ZeroShot,
        taxonomy: Taxonomy | None = None,
        max_layers: int = 6,
        layout: bool = True,
        placer: Callable[[Image, list[str]], Placement] | None = None,
        heads: DetectionHeads | None = None,
        gender_min_confidence: float = 0.0,
    ):
        self.encoder = encoder
        # an inferred gender below this confidence is not used: the queries name no gender (the engine
        # then filters on none)
        self.gender_min_confidence = gender_min_confidence
        # no-hint looks: layers and gender from the detection heads on the placer's regions (when both
        # are there), else zero-shot on the whole look
        self.heads = heads
        self.zeroshot = zeroshot
        self.taxonomy = taxonomy or get_taxonomy()
        self.max_layers = max_layers
        # where layers are read without the CLIP box search: the region finder's ``place`` (layout slots
        # or pose boxes); ``layout=False`` and no placer: every layer is searched
        if placer is None and layout:
            placer = lambda look, layers: layout_placement(self.taxonomy, look.size, layers)  # noqa: E731
        self.placer = placer

    def _detect_layers(self, layer_probs: dict[str, float]) -> list[str]:
        """Layers whose probability on the whole look is above uniform, most likely first."""
        uniform = 1.0 / len(layer_probs)
        ranked = sorted(layer_probs.items(), key=lambda kv: kv[1], reverse=True)
        chosen = [layer for layer, p in ranked if p >= uniform][: self.max_layers]
        return chosen or [ranked[0][0]]

    def _detect(
        self, look: Image, layers: list[str] | None, gender: str | None
    ) -> tuple[list[str], str, float | None, Placement, dict[Box, np.ndarray]]:
        """Layers (when not given) and gender (when not given) from the detection heads on every layer's
        region; the placement of the layers searched, with every layer the placer found out of the look;
        the crops embedded in that batch, by box: every placed layer's boxes, its other extents included."""
        from looksync.search.detection import region_vectors

        start = time.perf_counter()
        vectors = region_vectors(self.placer, self.encoder, look, list(self.taxonomy.layers), extents=True,
                                 face=self.heads.face_cue)  # fmt: skip
        found, full = self.heads.detect(vectors, self.max_layers), vectors.placement
        chosen = layers if layers is not None else found.layers
        absent = dict(full.absent) if layers is None else {k: v for k, v in full.absent.items() if k in layers}
        placement = Placement(
            boxes={layer: full.boxes[layer] for layer in chosen if layer in full.boxes},
            source=full.source,
            absent=absent,
            degraded=list(full.degraded),
            timings_ms=dict(full.timings_ms),
            image=full.image,
        )
        placement.timings_ms["detection"] = (time.perf_counter() - start) * 1000 - sum(full.timings_ms.values())
        if gender is not None:
            return list(chosen), gender, None, placement, vectors.embedded
        return list(chosen), found.gender, found.gender_confidence, placement, vectors.embedded

    def generate(self, look: Image, layers: list[str] | None = None, gender: str | None = None) -> GeneratedQueries:
        look = look.convert("RGB")
        placement = None
        guess_confidence: float | None = None
        embedded: dict[Box, np.ndarray] = {}  # crops of placement.pixels(look) already embedded, by box
        if self.heads is not None and self.placer is not None and (layers is None or gender is None):
            layers, gender, guess_confidence, placement, embedded = self._detect(look, layers, gender)
        if placement is None and self.placer is not None and layers is not None:
            placement = self.placer(look, layers)

        def unplaceable(layer: str) -> bool:
            return placement is None or (layer not in placement.boxes and layer not in placement.absent)

        # known now to need the box search: no placer, or a requested layer the placer left out
        searched = self.placer is None or (layers is not None and any(unplaceable(layer) for layer in layers))
        coarse = None
        if gender is None or layers is None or searched:
            # the whole look (gender, layer detection), with the bands when the box search needs them
            coarse = candidate_crops(look, self.encoder, COARSE_BOXES if searched else [(0.0, 0.0, 1.0, 1.0)])
            whole = coarse.vectors[-1:]  # the last coarse candidate is the whole look
            if gender is None:
                gender, guess_confidence = max(self.zeroshot.scores(whole, "gender")[0].items(), key=lambda kv: kv[1])
            if layers is None:
                layers = self._detect_layers(self.zeroshot.scores(whole, "layer")[0])
        if placement is None and self.placer is not None:
            placement = self.placer(look, layers)
        guess = gender if guess_confidence is not None else None
        if guess_confidence is not None and guess_confidence < self.gender_min_confidence:
            gender = None  # unsure: name no gender rather than a wrong one
        absent = dict(placement.absent) if placement is not None else {}
        layers = [layer for layer in layers if layer not in absent]
        placed = [layer for layer in layers if placement is not None and layer in placement.boxes]
        unplaced = [layer for layer in layers if layer not in placed]
        extra = {"absent": absent, "region_source": placement.source if placement is not None else None,
                 "timings_ms": dict(placement.timings_ms) if placement is not None else {},
                 "degraded": list(placement.degraded) if placement is not None else [],
                 "gender_guess": guess, "gender_confidence": guess_confidence}  # fmt: skip
        if not layers:  # every layer asked for is out of the look
            return GeneratedQueries(source=self.source, gender=gender, layers=[], **extra)

        best_crop: dict[str, int] = {}
        crops = CandidateCrops(boxes=[], crops=[], vectors=np.zeros((0, self.encoder.dim), dtype=np.float32))
        if unplaced:
            if coarse is None or len(coarse.boxes) == 1:  # a detected layer without a slot
                coarse = candidate_crops(look, self.encoder, COARSE_BOXES)

            def score(vectors: np.ndarray) -> np.ndarray:
                rows = self.zeroshot.scores(vectors, "layer")
                return np.array([[row[layer] for layer in unplaced] for row in rows])

            crops, best = coarse_to_fine_crops(look, self.encoder, score, coarse=coarse)
            best_crop.update(zip(unplaced, best, strict=True))
        alt_crops: dict[str, list[int]] = {}  # layer -> indexes of its alt_slots crops
        if placed:
            boxes, owners = [], []
            for layer in placed:
                for j, box in enumerate(placement.boxes[layer]):
                    boxes.append(box)
                    owners.append((layer, j == 0))  # the main box, then the other extents
            slots = box_crops(placement.pixels(look), self.encoder, boxes, embedded)
            for j, (layer, main) in enumerate(owners):
                if main:
                    best_crop[layer] = len(crops.boxes) + j
                else:
                    alt_crops.setdefault(layer, []).append(len(crops.boxes) + j)
            crops = CandidateCrops(
                boxes=crops.boxes + slots.boxes,
                crops=crops.crops + slots.crops,
                vectors=np.concatenate([crops.vectors, slots.vectors]) if len(crops.boxes) else slots.vectors,
            )
        vectors = crops.vectors
        crop_ids = sorted(set(best_crop.values()))
        layer_scores = dict(zip(crop_ids, self.zeroshot.scores(vectors[crop_ids], "layer"), strict=True))
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
                    box=crops.boxes[i],
                    confidence=float(layer_scores[i][layer]),
                    crop_vector=vectors[i],
                    alt_crop_vectors=vectors[alt_crops[layer]] if layer in alt_crops else None,
                )
            )
        return GeneratedQueries(source=self.source, gender=gender, layers=queries, **extra)


QUERY_SYSTEM_PROMPT = (
    "You describe the garments worn in a fashion look so that a product search engine can find similar "
    "products. Answer with one JSON object whose keys are garment layer ids. For each layer worn in the "
    "look, write one descriptive shopping query (gender, colour, pattern, garment type, notable details, "
    "style), e.g. \"Men's charcoal grey polo shirt, solid, button-down collar, long sleeves, casualwear\". "
    "Use null for a layer that is not in the look. Do not invent layers."
)


def _layer_lines(taxonomy: Taxonomy, layers: list[str]) -> str:
    lines = []
    for layer in layers:
        cats = ", ".join(taxonomy.categories[c].label for c in taxonomy.categories_of(layer))
        lines.append(f"- {layer}: {taxonomy.layers[layer].label} ({cats})")
    return "\n".join(lines)


def gender_from_queries(taxonomy: Taxonomy, queries: list[str]) -> str | None:
    """The gender the queries name most often ("women's ...", "men's ..."), or None."""
    votes: dict[str, int] = {}
    for query in queries:
        text = query.lower()
        # longest label first: "women's" contains "men's"
        for gender, label in sorted(taxonomy.genders.items(), key=lambda kv: -len(kv[1])):
            if gender != "unisex" and label.lower() in text:
                votes[gender] = votes.get(gender, 0) + 1
                break
    return max(votes, key=votes.get) if votes else None


class LLMQueryGenerator:
    """Vision-LLM queries with a strict schema; the local generator on any failure."""

    source = "llm"

    def __init__(self, client: LLMClient, fallback: QueryGenerator, taxonomy: Taxonomy | None = None):
        self.client = client
        self.fallback = fallback
        self.taxonomy = taxonomy or get_taxonomy()

    def generate(self, look: Image, layers: list[str] | None = None, gender: str | None = None) -> GeneratedQueries:
        asked = layers or list(self.taxonomy.layers)
        instructions = "Garment layers (id: meaning (categories)):\n" + _layer_lines(self.taxonomy, asked)
        if gender:
            instructions += f"\nThe shopper wants {self.taxonomy.genders[gender]} products."
        messages = [
            {"role": "system", "content": QUERY_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": instructions},
                    {"type": "image_url", "image_url": {"url": image_data_url(look)}},
                ],
            },
        ]
        try:
            answer = self.client.chat_json(messages, query_schema(self.taxonomy, layers), "look_layer_queries")
            queries = parse_layer_queries(answer, self.taxonomy, layers)
        except LLMError as err:
            log.warning("llm query generation failed, using the local generator", extra={"kind": err.kind, "error": err.message})
            result = self.fallback.generate(look, layers=layers, gender=gender)
            result.degraded.append(f"llm_unavailable: used local query generator ({err.kind}: {err.message[:160]})")
            return result
        if gender is None:
            gender = gender_from_queries(self.taxonomy, list(queries.values()))
        return GeneratedQueries(
            source=self.source,
            gender=gender,
            layers=[LayerQuery(layer=layer, query=query) for layer, query in queries.items()],
        )
