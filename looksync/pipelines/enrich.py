"""Attribute standardisation after the vendor mapping: rules and synonyms first, CLIP zero-shot last.

The vendor mapping (``looksync.catalog.vendors``) already turns vendor terms into standard ids through each
vendor's synonym table. This module handles what that leaves open:

- *missing*: no colour or no pattern in the feed -> look for standard colour / pattern words in the
  title and description (rules); only if none is found, ask CLIP zero-shot on the product image.
- *contradictory*: the title names another standard category (or the other gender) than the mapped
  one -> CLIP zero-shot decides between the two, on the image.

A zero-shot answer below ``min_confidence`` leaves the attribute missing (coverage reports show it)
rather than inventing one. Each decision is recorded per product as ``{attribute: source}`` with source
``rules`` or ``zeroshot`` (absent = as mapped from the feed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from looksync.catalog.schema import Product
from looksync.catalog.taxonomy import get_taxonomy

if TYPE_CHECKING:
    from embeddings import ZeroShot

_WORD = re.compile(r"[a-z]+(?:'s)?")
_GENDER_WORDS = {"women": "women", "women's": "women", "womens": "women", "ladies": "women",
                 "men": "men", "men's": "men", "mens": "men"}  # fmt: skip


@dataclass
class Standardised:
    """What standardisation did to a batch: the products (changed in place) and the decisions."""

    products: list[Product]
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # product id -> {attribute: source}
    contradictions: dict[str, list[str]] = field(default_factory=dict)  # product id -> what disagreed
    still_missing: dict[str, list[str]] = field(default_factory=dict)  # product id -> attributes left empty

    def count(self, source: str) -> int:
        return sum(1 for s in self.sources.values() for v in s.values() if v == source)


@lru_cache(maxsize=1)
def _category_terms() -> dict[tuple[str, ...], str]:
    """Word sequences that name a standard category in a title ('t shirt', 'jeans', 'handbags')."""
    terms: dict[tuple[str, ...], str] = {}
    for cid, category in get_taxonomy().categories.items():
        for text in {cid.replace("_", " "), category.label.replace("-", " ")}:
            words = tuple(text.lower().split())
            terms[words] = cid
            terms[(*words[:-1], words[-1] + "s")] = cid
    return terms


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def categories_named(text: str) -> set[str]:
    """Standard categories the text names by their label (longest phrases first)."""
    words = _words(text)
    terms = _category_terms()
    # every run of words of each phrase length, once: then one set lookup per phrase
    grams = {tuple(words[i : i + n]) for n in _phrase_lengths() for i in range(len(words) - n + 1)}
    return {cid for phrase, cid in terms.items() if phrase in grams}


@lru_cache(maxsize=1)
def _phrase_lengths() -> frozenset[int]:
    return frozenset(len(phrase) for phrase in _category_terms())


def rule_colours(text: str) -> list[str]:
    words = set(_words(text))
    return [c for c in get_taxonomy().colours if c in words]


def rule_pattern(text: str) -> str | None:
    words = set(_words(text))
    return next((p for p in get_taxonomy().patterns if p in words), None)


def gender_named(text: str) -> str | None:
    named = {_GENDER_WORDS[w] for w in _words(text) if w in _GENDER_WORDS}
    return named.pop() if len(named) == 1 else None


def _best(scores: dict[str, float], allowed: Sequence[str]) -> tuple[str, float]:
    """The most probable of ``allowed``, with its probability renormalised over ``allowed``."""
    total = sum(scores[a] for a in allowed) or 1.0
    winner = max(allowed, key=lambda a: scores[a])
    return winner, scores[winner] / total


def standardise(
    products: list[Product],
    vectors: dict[str, np.ndarray] | None = None,
    zeroshot: ZeroShot | None = None,
    min_confidence: float = 0.35,
) -> Standardised:
    """Fill missing colour/pattern and settle contradictory category/gender, in place.

    ``vectors`` maps image hash -> image vector; ``zeroshot`` scores them. Without them (no model
    configured) only the rules run and what they cannot settle is reported in ``still_missing`` /
    ``contradictions``."""
    out = Standardised(products=products)
    need_zs: dict[str, list[str]] = {}  # product id -> attributes to ask zero-shot about
    alternatives: dict[tuple[str, str], list[str]] = {}
    for p in products:
        text = f"{p.title} {p.description}"
        sources: dict[str, str] = {}
        if not p.colours:
            colours = rule_colours(text)
            if colours:
                p.colours, sources["colour"] = colours, "rules"
            else:
                need_zs.setdefault(p.product_id, []).append("colour")
        if p.pattern is None:
            pattern = rule_pattern(text)
            if pattern:
                p.pattern, sources["pattern"] = pattern, "rules"
            else:
                need_zs.setdefault(p.product_id, []).append("pattern")
        in_title = categories_named(p.title)
        named = in_title - {p.category}
        if named and p.category not in in_title:
            out.contradictions.setdefault(p.product_id, []).append(f"category {p.category} vs title {sorted(named)}")
            alternatives[(p.product_id, "category")] = [p.category, *sorted(named)]
            need_zs.setdefault(p.product_id, []).append("category")
        said = gender_named(p.title)
        if said and p.gender in ("women", "men") and said != p.gender:
            out.contradictions.setdefault(p.product_id, []).append(f"gender {p.gender} vs title {said}")
            alternatives[(p.product_id, "gender")] = [p.gender, said]
            need_zs.setdefault(p.product_id, []).append("gender")
        if sources:
            out.sources[p.product_id] = sources

    by_id = {p.product_id: p for p in products}
    askable = [pid for pid in need_zs if zeroshot is not None and vectors and by_id[pid].image_hash in vectors]
    if askable:
        matrix = np.stack([vectors[by_id[pid].image_hash] for pid in askable])
        for attribute in ("colour", "pattern", "category", "gender"):
            rows = [i for i, pid in enumerate(askable) if attribute in need_zs[pid]]
            if not rows:
                continue
            scores = zeroshot.scores(matrix[rows], attribute)
            for i, row_scores in zip(rows, scores, strict=True):
                pid = askable[i]
                _apply_zeroshot(by_id[pid], attribute, row_scores, alternatives.get((pid, attribute)), min_confidence, out)
    for pid, attributes in need_zs.items():
        decided = out.sources.get(pid, {})
        left = [a for a in attributes if a not in decided and a in ("colour", "pattern")]
        if left:
            out.still_missing[pid] = left
    return out


def _apply_zeroshot(
    p: Product, attribute: str, scores: dict[str, float], allowed: list[str] | None, min_confidence: float, out: Standardised
) -> None:
    winner, confidence = _best(scores, allowed or list(scores))
    if attribute in ("category", "gender"):
        # a contradiction is always settled (the mapped value is one of the two candidates)
        if attribute == "category":
            p.category, p.layer = winner, get_taxonomy().layer_of(winner)
        else:
            p.gender = winner
        out.sources.setdefault(p.product_id, {})[attribute] = "zeroshot"
        return
    if confidence < min_confidence:
        return
    if attribute == "colour":
        p.colours = [winner]
    else:
        p.pattern = winner
    out.sources.setdefault(p.product_id, {})[attribute] = "zeroshot"
