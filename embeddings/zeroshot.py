"""CLIP zero-shot attribute scoring over the taxonomy: layer, category, gender, colour, pattern.

Candidates come from the taxonomy, prompt templates from ``embeddings/prompts.yaml``. Prompt vectors
are computed once per (model id, attribute) and kept in memory; scoring is a softmax over cosine
similarities scaled by CLIP's logit scale (100).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:
    from embeddings.encoder import ClipEncoder
    from looksync.catalog.taxonomy import Taxonomy

PROMPTS_PATH = Path(__file__).parent / "prompts.yaml"
ATTRIBUTES = ("layer", "category", "gender", "colour", "pattern")
LOGIT_SCALE = 100.0


def load_prompt_templates(path: Path = PROMPTS_PATH) -> dict[str, list[str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [a for a in ATTRIBUTES if not raw.get(a)]
    if missing:
        raise ValueError(f"{path}: no prompt templates for {', '.join(missing)}")
    return {a: [str(t) for t in raw[a]] for a in ATTRIBUTES}


def candidate_fields(taxonomy: Taxonomy, attribute: str) -> dict[str, dict[str, Any]]:
    """Candidate id -> the fields its prompt templates may use."""
    if attribute == "layer":
        return {k: {"id": k, "label": v.label, "prompt": v.prompt} for k, v in taxonomy.layers.items()}
    if attribute == "category":
        return {k: {"id": k, "label": v.label, "layer": v.layer} for k, v in taxonomy.categories.items()}
    if attribute == "gender":
        return {k: {"id": k, "label": label} for k, label in taxonomy.genders.items()}
    if attribute == "colour":
        return {k: {"id": k, "label": k} for k in taxonomy.colours}
    if attribute == "pattern":
        return {k: {"id": k, "label": k} for k in taxonomy.patterns}
    raise ValueError(f"{attribute!r}: not a zero-shot attribute; known: {', '.join(ATTRIBUTES)}")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class ZeroShot:
    def __init__(
        self, encoder: ClipEncoder, taxonomy: Taxonomy | None = None, templates: dict[str, list[str]] | None = None
    ):
        if taxonomy is None:
            from looksync.catalog.taxonomy import get_taxonomy

            taxonomy = get_taxonomy()
        self.encoder = encoder
        self.taxonomy = taxonomy
        self.templates = templates or load_prompt_templates()
        self._vectors: dict[tuple[str, str], tuple[list[str], np.ndarray]] = {}

    def candidates(self, attribute: str) -> list[str]:
        return list(candidate_fields(self.taxonomy, attribute))

    def prompts(self, attribute: str) -> dict[str, list[str]]:
        """Candidate id -> its prompts (one per template)."""
        fields = candidate_fields(self.taxonomy, attribute)
        return {cid: [t.format(**f) for t in self.templates[attribute]] for cid, f in fields.items()}

    def _cached(self, attribute: str) -> tuple[list[str], np.ndarray]:
        key = (self.encoder.model_id, attribute)
        if key not in self._vectors:
            prompts = self.prompts(attribute)
            per_template = len(self.templates[attribute])
            flat = [p for ps in prompts.values() for p in ps]
            vectors = self.encoder.encode_texts(flat).reshape(len(prompts), per_template, -1).mean(axis=1)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            self._vectors[key] = (list(prompts), vectors.astype(np.float32))
        return self._vectors[key]

    def label_vectors(self, labels: Sequence[str], attribute: str) -> np.ndarray:
        """Free labels (a vendor's own word for a category) written into the attribute's prompt templates and
        embedded as the candidates are: len(labels) x dim, unit norm, comparable with ``text_vectors``."""
        templates = self.templates[attribute]
        flat = [t.format(id=label, label=label, prompt=label, layer="") for label in labels for t in templates]
        if not flat:
            return np.zeros((0, self.text_vectors(attribute).shape[1]), dtype=np.float32)
        vectors = self.encoder.encode_texts(flat).reshape(len(labels), len(templates), -1).mean(axis=1)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32)

    def text_vectors(self, attribute: str) -> np.ndarray:
        """candidates x dim, unit norm, rows in ``candidates(attribute)`` order; computed once per model id."""
        return self._cached(attribute)[1]

    def _probabilities(self, image_vectors: np.ndarray, attribute: str) -> tuple[list[str], np.ndarray]:
        ids, text = self._cached(attribute)
        vectors = np.asarray(image_vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != text.shape[1]:
            raise ValueError(
                f"image vectors of shape {vectors.shape}; expected (n, {text.shape[1]}) for {self.encoder.model_id}"
            )
        return ids, _softmax(LOGIT_SCALE * vectors @ text.T)

    def scores(self, image_vectors: np.ndarray, attribute: str) -> list[dict[str, float]]:
        """Per image: candidate id -> probability (sums to 1 over the taxonomy's candidates)."""
        ids, probs = self._probabilities(image_vectors, attribute)
        return [dict(zip(ids, map(float, row), strict=True)) for row in probs]

    def top(self, image_vectors: np.ndarray, attribute: str) -> list[tuple[str, float]]:
        """Per image: the most probable candidate and its probability."""
        ids, probs = self._probabilities(image_vectors, attribute)
        best = probs.argmax(axis=1)
        return [(ids[i], float(row[i])) for i, row in zip(best, probs, strict=True)]
