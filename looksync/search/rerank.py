"""Reranking each layer's candidates: an LLM listwise rerank, or the crop-embedding fallback.

Modes: ``off`` (kNN order), ``local`` (crop cosine), ``llm`` (LLM, falling back to crop cosine and
saying so), ``auto`` (LLM when one is configured, else crop cosine).

The crop-cosine rerank crops each layer's garment from the look (its region from the query generator,
or the region finder), embeds the crop with CLIP and blends the cosine between the crop and each
candidate's stored image vector with the kNN score: ``w * knn + (1 - w) * crop``. A layer with other
crop extents (taxonomy ``alt_slots``: shorts end higher than trousers) takes each candidate's best
cosine over its crops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from looksync.index import CatalogIndex, Hit, IndexBackendError
from looksync.search.llm import LLMClient, LLMError, image_data_url, parse_ranking, rerank_schema
from looksync.search.regions import Box, RegionFinder

if TYPE_CHECKING:
    from PIL.Image import Image

    from embeddings import ClipEncoder

log = logging.getLogger(__name__)

RerankMode = Literal["auto", "llm", "local", "off"]
RERANK_MODES = ("auto", "llm", "local", "off")


@dataclass
class LayerCandidates:
    """One layer of a look search between kNN and rerank. ``hits`` arrive in kNN order."""

    layer: str
    query: str
    hits: list[Hit]
    box: Box | None = None
    crop_vector: np.ndarray | None = field(default=None, repr=False)
    alt_crop_vectors: np.ndarray | None = field(default=None, repr=False)  # other extents' crops, one row each
    rerank_scores: dict[str, float] = field(default_factory=dict)  # product id -> blended score (local rerank)
    crop_scores: dict[str, float] = field(default_factory=dict)  # product id -> best crop cosine (local rerank)


RERANK_SYSTEM_PROMPT = (
    "You rank shopping candidates by how closely each matches the garment of one layer of a fashion look "
    "(type, colour, pattern, details, style). For each layer, answer with the candidate ids, best match "
    "first. Use only the ids given for that layer."
)


def _candidate_line(hit: Hit) -> str:
    p = hit.product
    colours = ", ".join(p.get("colours") or [])
    return f"  {hit.product_id} | {p.get('title')} | {p.get('brand')} | {p.get('category')} | {colours}"


class Reranker:
    def __init__(
        self,
        encoder: ClipEncoder,
        index: CatalogIndex,
        region_finder: RegionFinder,
        llm: LLMClient | None = None,
        llm_budget_s: float = 3.0,
        text_weight: float = 0.5,
        dedup_cosine: float | None = None,
    ):
        self.encoder = encoder
        self.index = index
        self.region_finder = region_finder
        self.llm = llm
        self.llm_budget_s = llm_budget_s
        self.text_weight = text_weight
        self.dedup_cosine = dedup_cosine

    def rerank(
        self, look: Image, layers: list[LayerCandidates], mode: RerankMode, version: str, degraded: list[str]
    ) -> str:
        """Reorder each layer's hits in place; returns the method used (``llm``, ``local`` or ``off``)."""
        if mode not in RERANK_MODES:
            raise ValueError(f"rerank mode {mode!r} is not one of {', '.join(RERANK_MODES)}")
        if mode == "off" or not any(c.hits for c in layers):
            return "off"
        if mode in ("llm", "auto") and self.llm is not None:
            try:
                self.rerank_llm(look, layers)
                return "llm"
            except LLMError as err:
                log.warning("llm rerank failed, using crop cosine", extra={"kind": err.kind, "error": err.message})
                degraded.append(f"llm_rerank_unavailable: used crop-embedding rerank ({err.kind}: {err.message[:160]})")
        elif mode == "llm":
            degraded.append("llm_rerank_unavailable: no LLM configured (LOOKSYNC_LLM_BASE_URL); used crop-embedding rerank")
        try:
            self.rerank_local(look, layers, version)
        except (NotImplementedError, IndexBackendError) as exc:
            log.warning("crop rerank failed, keeping kNN order", extra={"error": str(exc)})
            degraded.append(f"rerank_unavailable: kept kNN order ({exc})")
            return "off"
        return "local"

    # ---- LLM listwise ---------------------------------------------------------------------------

    def rerank_llm(self, look: Image, layers: list[LayerCandidates]) -> None:
        pending = [c for c in layers if len(c.hits) > 1]
        if not pending:
            return
        candidates = {c.layer: [h.product_id for h in c.hits] for c in pending}
        listing = "\n".join(
            f"layer {c.layer} (query: {c.query}):\n" + "\n".join(_candidate_line(h) for h in c.hits) for c in pending
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": RERANK_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Candidates (id | title | brand | category | colours):\n" + listing},
                    {"type": "image_url", "image_url": {"url": image_data_url(look)}},
                ],
            },
        ]
        answer = self.llm.chat_json(
            messages, rerank_schema(candidates), "layer_rankings", timeout_s=self.llm_budget_s, max_retries=0
        )
        ranking = parse_ranking(answer, candidates)
        for c in pending:
            by_id = {h.product_id: h for h in c.hits}
            c.hits = [by_id[pid] for pid in ranking[c.layer]]

    # ---- crop cosine ----------------------------------------------------------------------------

    def crop_vectors(self, look: Image, layers: list[LayerCandidates]) -> None:
        """Fill each layer's crop vector: reuse the query generator's, embed a known box, or ask the
        region finder (one call for all layers that have no region yet)."""
        look = look.convert("RGB")
        unknown = {c.layer: c.query for c in layers if c.crop_vector is None and c.box is None}
        if unknown:
            regions = self.region_finder.find(look, unknown)
            for c in layers:
                region = regions.get(c.layer)
                if region is not None:
                    c.box, c.crop_vector = region.box, region.vector
        todo = [c for c in layers if c.crop_vector is None and c.box is not None]
        if todo:
            vectors = self.encoder.encode_images([look.crop(c.box) for c in todo])
            for c, vector in zip(todo, vectors, strict=True):
                c.crop_vector = vector

    def rerank_local(self, look: Image, layers: list[LayerCandidates], version: str) -> None:
        pending = [c for c in layers if c.hits]
        self.crop_vectors(look, pending)
        stored = self.index.vectors([h.product_id for c in pending for h in c.hits], version=version)
        w = self.text_weight
        for c in pending:
            if c.crop_vector is None:
                continue
            crops = np.asarray(c.crop_vector, dtype=np.float32)[None, :]
            if c.alt_crop_vectors is not None:  # the best match over the layer's crop extents
                crops = np.concatenate([crops, np.asarray(c.alt_crop_vectors, dtype=np.float32)])
            for hit in c.hits:
                vector = stored.get(hit.product_id)
                # a candidate without a stored vector keeps its text score for both parts
                visual = float(np.max(crops @ vector)) if vector is not None else hit.score
                if vector is not None:
                    c.crop_scores[hit.product_id] = visual
                c.rerank_scores[hit.product_id] = w * hit.score + (1 - w) * visual
            c.hits.sort(key=lambda h: c.rerank_scores[h.product_id], reverse=True)
            if self.dedup_cosine is not None:
                c.hits = self._drop_close_vectors(c.hits, stored)

    def _drop_close_vectors(self, hits: list[Hit], stored: dict[str, np.ndarray]) -> list[Hit]:
        """Near-duplicates by image cosine: keep the best-ranked one of each cluster. Off by default:
        the threshold depends on the weights (trained CLIP: ~0.95; random weights put every pair above 0.96)."""
        kept: list[Hit] = []
        kept_vectors: list[np.ndarray] = []
        for hit in hits:
            vector = stored.get(hit.product_id)
            if vector is not None and kept_vectors and float(np.max(np.stack(kept_vectors) @ vector)) >= self.dedup_cosine:
                continue
            kept.append(hit)
            if vector is not None:
                kept_vectors.append(vector)
        return kept
