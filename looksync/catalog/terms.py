"""Matching vendor terms to standard ids: the normalised key, and the shared category synonyms.

Vendors write one category many ways (``T-Shirts``, ``tee``, ``t shirt``, ``TSHIRT``, ``Ｔシャツ``). A term
is matched on its *key*: NFKC (full width -> ASCII), case-folded, apostrophes dropped, every run of
punctuation, hyphens and spaces removed, and English plurals made singular word by word, so the
spellings of one word meet. The synonyms themselves are data: ``data/category_synonyms.yaml``, per
language (English, Japanese, Hindi and Hinglish), checked on load against the taxonomy and for keys
that two categories claim.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from looksync.catalog.taxonomy import TaxonomyError, get_taxonomy

DEFAULT_SYNONYMS_PATH = Path(__file__).parent / "data" / "category_synonyms.yaml"
_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")


def singular(word: str) -> str:
    """An English plural made singular by its regular endings, and a final consonant + y written ie, so
    both spellings of a word meet (hoodie/hoodies, accessory/accessories); other scripts and short
    words as they are."""
    if not word.isascii() or len(word) <= 3:
        return word
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("y") and word[-2] not in "aeiouy":
        word = word[:-1] + "ie"
    return word


def term_words(term: object) -> list[str]:
    """A term's words after NFKC, case-folding, dropping apostrophes and making each singular."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", str(term)).casefold())
    # letters, digits and combining marks (Devanagari vowel signs) make words; anything else separates them
    spaced = "".join(ch if ch.isalnum() or unicodedata.category(ch).startswith("M") else " " for ch in text)
    return [singular(word) for word in spaced.split()]


def term_key(term: object) -> str:
    """The loose key a vendor term is matched on (see the module docstring); '' for a term of punctuation."""
    return "".join(term_words(term))


# who a product is for, as vendors prefix categories with it ("Men's Jackets", "Ladies Tops"): gender is its
# own field, so a category term that matches nothing is looked up again without these words
AUDIENCE_WORDS = frozenset(singular(w) for w in ("men", "mens", "women", "womens", "ladies", "gents", "boys", "girls",
                                                   "kids", "unisex", "man", "woman"))  # fmt: skip


# ... and words around the garment: "for" (Hinglish "tshirt for men"), pack sizes, Hindi possessives
# ("mardon ki shirt", "dhoop ka chashma"); left out only when looking for the garment word of a term
FILLER_WORDS = AUDIENCE_WORDS | frozenset(singular(w) for w in ("for", "of", "with", "the", "pack", "ka", "ki",
                                                                "ke", "mardon", "mardo", "aurton", "aurto"))  # fmt: skip
_CRUMBS = re.compile(r"\s*[>»›/|\\]\s*")  # breadcrumb separators: the last crumb names the garment
_PARTS = re.compile(r"\s*(?:[&+,;()]|\s-\s|\band\b)\s*", re.IGNORECASE)  # "Tops & Blouses", "Sneaker - White"
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@dataclass(frozen=True)
class CategorySynonyms:
    by_key: dict[str, str]  # term key -> standard category
    languages: tuple[str, ...]
    source: Path
    terms: tuple[tuple[str, str], ...] = ()  # (term as written, standard category), in file order

    def category(self, term: object) -> str | None:
        """The standard category of a term: on its key, then on its key without audience words; then, for a
        breadcrumb (``Women > Clothing > Dresses``), crumb by crumb from the last; in a crumb, each of its
        parts (``Tops & Blouses``, ``Sneaker - White``), taken when the parts that name a category agree;
        in a part, its garment word: the longest known tail (``Men's Slim Fit Chinos``, ``カジュアルシャツ``)."""
        found = self._on_key(term_words(term))
        crumbs = [c for c in _CRUMBS.split(unicodedata.normalize("NFKC", str(term))) if c.strip()]
        for crumb in reversed(crumbs if found is None else []):
            named = {self._garment(term_words(part)) for part in _PARTS.split(crumb) if part.strip()} - {None}
            if len(named) == 1:
                return named.pop()
            if named:
                return None  # the parts name different categories: nothing to guess
        return found

    def _on_key(self, words: list[str]) -> str | None:
        found = self.by_key.get("".join(words)) if words else None
        if found is None:
            rest = [w for w in words if w not in AUDIENCE_WORDS]
            found = self.by_key.get("".join(rest)) if rest and len(rest) < len(words) else None
        return found

    def _garment(self, words: list[str]) -> str | None:
        found = self._on_key(words)
        words = [w for w in words if w not in FILLER_WORDS]
        for start in range(len(words)) if found is None else ():  # in English the garment is the last word(s)
            found = self.by_key.get("".join(words[start:]))
            if found is not None:
                return found
        last = words[-1] if words and found is None else ""
        if _JAPANESE.search(last):  # Japanese writes the modifier and the garment as one word
            for start in range(1, len(last) - 1):
                found = self.by_key.get(last[start:])
                if found is not None:
                    break
        return found


def load_category_synonyms(path: str | Path | None = None) -> CategorySynonyms:
    """Read and check a synonyms file: ``{language: {standard category: [terms]}}``."""
    path = Path(path) if path else DEFAULT_SYNONYMS_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{path}: cannot read category synonyms: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{path}: expected {{language: {{category: [terms]}}}}, got {type(raw).__name__}")
    categories = get_taxonomy().categories
    by_key: dict[str, str] = {}
    claimed_by: dict[str, str] = {}  # key -> the term that claimed it first (for the error message)
    written: list[tuple[str, str]] = []  # (term, category) as listed
    for language, table in raw.items():
        if not isinstance(table, dict):
            raise TaxonomyError(f"{path}: {language}: expected {{category: [terms]}}, got {table!r}")
        for category, terms in table.items():
            if category not in categories:
                raise TaxonomyError(
                    f"{path}: {language}: {category!r} is not a standard category; known: {', '.join(categories)}"
                )
            if not isinstance(terms, list) or not terms:
                raise TaxonomyError(f"{path}: {language}.{category}: expected a list of terms, got {terms!r}")
            for term in terms:
                key = term_key(term)
                if not key:
                    raise TaxonomyError(f"{path}: {language}.{category}: term {term!r} has no letters or digits")
                if by_key.get(key, category) != category:
                    raise TaxonomyError(
                        f"{path}: {language}.{category}: {term!r} and {claimed_by[key]!r} have the same key {key!r} "
                        f"but mean {category!r} and {by_key[key]!r}"
                    )
                by_key[key], claimed_by[key] = category, str(term)
                written.append((str(term), category))
    return CategorySynonyms(by_key=by_key, languages=tuple(raw), source=path, terms=tuple(written))


@lru_cache(maxsize=1)
def get_category_synonyms() -> CategorySynonyms:
    """The packaged synonyms, loaded once per process."""
    return load_category_synonyms()
