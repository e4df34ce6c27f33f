"""The last resort for a vendor's category term: the nearest standard category by the CLIP text encoder.

A term that neither the vendor's map nor the shared synonyms know (``looksync.catalog.terms``) is written
into the category prompt templates (``embeddings/prompts.yaml``, as each standard category's own zero-shot
prompt is), embedded by the CLIP text encoder and compared with every category's prompt vector
(``embeddings.ZeroShot``). The nearest category is taken when its softmax probability reaches
``category_clip_min_confidence`` (the product's ``category_source`` is then ``clip``); below it the row is
quarantined as ``unknown_category`` as before, its message naming the nearest category and the probability.

A probability means nothing from a model that knows no words (random weights, a wrong checkpoint): such a
model is confidently wrong. So before its first answer the model is checked on the shared synonym terms,
whose categories are known (the bare category names, which match their own prompt by construction, left
out): when more than ``category_clip_max_wrong`` of the terms it would accept at the threshold are wrong,
or it would accept none, the fallback stays off for that model and the run report says so. The check is
made once per process and model.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from looksync.catalog.taxonomy import get_taxonomy
from looksync.catalog.terms import get_category_synonyms, term_key

if TYPE_CHECKING:
    from embeddings import ZeroShot

log = logging.getLogger(__name__)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ClipGuess:
    """CLIP's nearest standard category for one vendor term."""

    term: str
    category: str
    confidence: float  # softmax probability over the standard categories
    accepted: bool


@dataclass(frozen=True)
class SelfCheck:
    """How the model did on the shared synonym terms at the threshold."""

    model_id: str
    threshold: float
    max_wrong: float
    terms: int
    accepted: int
    wrong: int

    @property
    def passed(self) -> bool:
        return self.accepted > 0 and self.wrong <= self.max_wrong * self.accepted

    def describe(self) -> str:
        return (f"{self.model_id} at confidence >= {self.threshold:g} would accept {self.accepted} of {self.terms} "
                f"known synonym terms, {self.wrong} of them wrongly (at most {self.max_wrong:.0%} allowed, "
                "category_clip_max_wrong)")  # fmt: skip


_SELF_CHECKS: dict[tuple[str, float, float], SelfCheck] = {}


def prompt_label(term: str) -> str:
    """The term as the prompt templates get it: NFKC, one space between words."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", term)).strip()


def known_terms() -> list[tuple[str, str]]:
    """(term, category) of the shared synonyms the self-check asks about: all but the bare category names."""
    categories = get_taxonomy().categories
    bare = {term_key(c.label) for c in categories.values()} | {term_key(cid) for cid in categories}
    return [(t, c) for t, c in get_category_synonyms().terms if term_key(t) not in bare]


def self_check(zeroshot: ZeroShot, threshold: float, max_wrong: float) -> SelfCheck:
    """The model's answers on the shared synonym terms (once per process, model and bounds)."""
    model_id = zeroshot.encoder.model_id
    cached = _SELF_CHECKS.get((model_id, threshold, max_wrong))
    if cached is not None:
        return cached
    known = known_terms()
    top = (
        zeroshot.top(zeroshot.label_vectors([prompt_label(t) for t, _ in known], "category"), "category")
        if known
        else []
    )
    accepted = [(got, expected) for (got, p), (_, expected) in zip(top, known, strict=True) if p >= threshold]
    check = SelfCheck(model_id, threshold, max_wrong, len(known), len(accepted),
                      sum(1 for got, expected in accepted if got != expected))  # fmt: skip
    _SELF_CHECKS[(model_id, threshold, max_wrong)] = check
    (log.info if check.passed else log.warning)("category CLIP fallback self-check: %s", check.describe())
    return check


class ClipCategoryFallback:
    """Nearest standard category by CLIP for terms the rules and synonyms left unknown (module docstring).

    ``zeroshot`` may be a factory: the model is loaded at the first unknown term only. A model that cannot
    be loaded or fails the self-check turns the fallback off (``off`` says why); every guess is kept
    (``guesses``) for the run report."""

    def __init__(self, zeroshot: ZeroShot | Callable[[], ZeroShot], min_confidence: float, max_wrong: float = 0.01):
        self._zeroshot = zeroshot
        self.min_confidence = min_confidence
        self.max_wrong = max_wrong
        self.off: str | None = None
        self.model_id: str | None = None
        self.guesses: dict[str, ClipGuess] = {}
        self._ready = False

    def _model(self) -> ZeroShot | None:
        if not self._ready:
            self._ready = True
            try:
                zs = self._zeroshot if hasattr(self._zeroshot, "label_vectors") else self._zeroshot()
                self.model_id = zs.encoder.model_id
                check = self_check(zs, self.min_confidence, self.max_wrong)
            except Exception as exc:  # any load failure: the fallback is off, visibly; the rows are quarantined
                self.off = f"the CLIP model could not be loaded: {type(exc).__name__}: {exc}"
                log.warning("category CLIP fallback off: %s", self.off)
                return None
            if not check.passed:
                self.off = f"the model failed its self-check: {check.describe()}"
            self._zeroshot = zs
        return None if self.off else self._zeroshot

    def guess(self, term: str) -> ClipGuess | None:
        """CLIP's nearest category for a term (cached per term), or None when the fallback is off."""
        label = prompt_label(term)
        if not label:
            return None
        if label in self.guesses:
            return self.guesses[label]
        zs = self._model()
        if zs is None:
            return None
        [(category, p)] = zs.top(zs.label_vectors([label], "category"), "category")
        found = ClipGuess(label, category, p, p >= self.min_confidence)
        self.guesses[label] = found
        return found

    def notes(self) -> list[str]:
        """Run-report lines: why the fallback was off, and each term it mapped or left unknown."""
        if self.off:
            return [
                f"category CLIP fallback off ({self.model_id or 'no model'}): {self.off}; unknown terms quarantined"
            ]
        lines = []
        for g in sorted(self.guesses.values(), key=lambda g: (not g.accepted, g.term)):
            verdict = "mapped" if g.accepted else "left unknown"
            lines.append(f"category by CLIP ({self.model_id}): {g.term!r} -> {g.category} at {g.confidence:.2f} "
                         f"({verdict}; threshold {self.min_confidence:g})")  # fmt: skip
        return lines
