"""Category terms as vendors write them -> standard categories: share mapped right, wrong, left unknown.

    python bench/bench_category_terms.py [--terms bench/data/vendor_category_terms.tsv]
        [--clip-model LookSync-Tiny --clip-weights random:0] [--min-confidence 0.9] [--max-wrong 0.01]

Each term is matched with no vendor map at all (only the shared synonyms on the normalised key,
``looksync.catalog.terms``), the hardest case: a new vendor whose config lists nothing. The terms still
unknown then go to the CLIP fallback exactly as ingestion does (``looksync.catalog.clip_terms``: the
model's self-check on the synonym terms, then the threshold), with the model named on the command line
(default: LookSync-Tiny with random weights, the only model a machine without the hub has; pass real
weights to measure a real one). A sweep shows, for the terms the synonyms leave unknown, what CLIP
alone would accept at each threshold, self-check aside. The anchor, measured in the same run, is the
matching before the normalised key and the shared synonyms: an exact (case/width/space-insensitive)
lookup in the union of the packaged vendors' own maps. Terms marked "-" fit no standard category;
mapping one of them anywhere counts as wrong.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import defaultdict
from pathlib import Path

DEFAULT_TERMS = Path(__file__).parent / "data" / "vendor_category_terms.tsv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--terms", type=Path, default=DEFAULT_TERMS)
    parser.add_argument("--clip-model", default="LookSync-Tiny")
    parser.add_argument("--clip-weights", default="random:0")
    parser.add_argument("--min-confidence", type=float, default=None, help="default: the settings' value")
    parser.add_argument("--max-wrong", type=float, default=None, help="default: the settings' value")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from embeddings import ZeroShot, load_encoder
    from looksync.catalog.clip_terms import ClipCategoryFallback
    from looksync.catalog.terms import get_category_synonyms
    from looksync.catalog.vendors import list_vendors, load_vendor_config
    from looksync.catalog.vendors.config import normalise_term
    from looksync.settings import load_settings

    with args.terms.open(encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t") if r and not r[0].startswith("#")]
    synonyms = get_category_synonyms()
    union = {}
    for vendor in list_vendors():
        config = load_vendor_config(vendor)
        union.update({normalise_term(t): c for t, c in config.synonyms["category"].items()})

    settings = load_settings()
    threshold = settings.category_clip_min_confidence if args.min_confidence is None else args.min_confidence
    max_wrong = settings.category_clip_max_wrong if args.max_wrong is None else args.max_wrong
    zeroshot = ZeroShot(load_encoder(args.clip_model, args.clip_weights, device=args.device))
    fallback = ClipCategoryFallback(zeroshot, threshold, max_wrong)
    with_clip = f"+ CLIP fallback ({zeroshot.encoder.model_id}, confidence >= {threshold:g})"
    tally: dict[str, dict[str, defaultdict]] = {"normalised key + shared synonyms": {}, with_clip: {},
                                                "anchor: exact vendor maps": {}}  # fmt: skip
    wrong_examples = []
    left: list[tuple[str, str]] = []  # (term, expected) the synonyms leave unknown
    for language, term, expected in rows:
        by_synonym = synonyms.category(term)
        guess = fallback.guess(term) if by_synonym is None else None
        if by_synonym is None:
            left.append((term, expected))
        results = {
            "normalised key + shared synonyms": by_synonym,
            with_clip: by_synonym or (guess.category if guess and guess.accepted else None),
            "anchor: exact vendor maps": union.get(normalise_term(term)),
        }
        for method, got in results.items():
            counts = tally[method].setdefault(language, defaultdict(int))
            counts["terms"] += 1
            if got is None:
                counts["unknown" if expected != "-" else "correct"] += 1
            elif got == expected:
                counts["correct"] += 1
            else:
                counts["wrong"] += 1
                if method != "anchor: exact vendor maps":
                    wrong_examples.append((language, term, expected, got, method[:1]))
    print(f"{len(rows)} terms from {args.terms}; load average {os.getloadavg()[0]:.2f}")
    print("CLIP fallback: " + (f"OFF, {fallback.off}" if fallback.off else "on (self-check passed)"))
    for method, by_language in tally.items():
        total = defaultdict(int)
        for counts in by_language.values():
            for k, v in counts.items():
                total[k] += v
        print(f"\n{method}")
        for language, counts in [*sorted(by_language.items()), ("all", total)]:
            n = counts["terms"]
            print(f"  {language:>4}: {n:4d} terms  correct {counts['correct'] / n:6.1%}  wrong {counts['wrong'] / n:5.1%}  "
                  f"unknown {counts['unknown'] / n:5.1%}")  # fmt: skip
    for language, term, expected, got, by in dict.fromkeys(wrong_examples):
        print(f"  wrong: [{language}] {term!r} -> {got} (expected {expected}){' by CLIP' if by == '+' else ''}")
    _sweep(zeroshot, left, len(rows))


def _sweep(zeroshot, left: list[tuple[str, str]], n_terms: int) -> None:
    """What CLIP alone would accept among the terms the synonyms leave unknown, per threshold."""
    from looksync.catalog.clip_terms import prompt_label

    if not left:
        return
    top = zeroshot.top(zeroshot.label_vectors([prompt_label(t) for t, _ in left], "category"), "category")
    print(f"\nCLIP alone on the {len(left)} terms the synonyms leave unknown ({zeroshot.encoder.model_id}, "
          "self-check aside); wrong as a share of all terms:")  # fmt: skip
    for threshold in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999):
        accepted = [(got, expected) for (got, p), (_, expected) in zip(top, left, strict=True) if p >= threshold]
        right = sum(1 for got, expected in accepted if got == expected)
        print(f"  >= {threshold:<5g}: accepted {len(accepted):4d}  right {right:4d}  wrong {len(accepted) - right:4d} "
              f"({(len(accepted) - right) / n_terms:5.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
