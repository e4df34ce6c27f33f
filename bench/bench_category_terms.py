"""Category terms as vendors write them -> standard categories: share mapped right, wrong, left unknown.

    python bench/bench_category_terms.py [--terms bench/data/vendor_category_terms.tsv]

Each term is matched with no vendor map at all (only the shared synonyms on the normalised key,
``looksync.catalog.terms``), the hardest case: a new vendor whose config lists nothing. The anchor,
measured in the same run, is the matching before the normalised key and the shared synonyms: an exact
(case/width/space-insensitive) lookup in the union of the packaged vendors' own maps. Terms marked "-"
fit no standard category; mapping one of them anywhere counts as wrong.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

DEFAULT_TERMS = Path(__file__).parent / "data" / "vendor_category_terms.tsv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--terms", type=Path, default=DEFAULT_TERMS)
    args = parser.parse_args()

    from looksync.catalog.terms import get_category_synonyms
    from looksync.catalog.vendors import list_vendors, load_vendor_config
    from looksync.catalog.vendors.config import normalise_term

    with args.terms.open(encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t") if r and not r[0].startswith("#")]
    synonyms = get_category_synonyms()
    union = {}
    for vendor in list_vendors():
        config = load_vendor_config(vendor)
        union.update({normalise_term(t): c for t, c in config.synonyms["category"].items()})

    tally: dict[str, dict[str, defaultdict]] = {"normalised key + shared synonyms": {}, "anchor: exact vendor maps": {}}
    wrong_examples = []
    for language, term, expected in rows:
        results = {
            "normalised key + shared synonyms": synonyms.category(term),
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
                if method.startswith("normalised"):
                    wrong_examples.append((language, term, expected, got))
    print(f"{len(rows)} terms from {args.terms}")
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
    for language, term, expected, got in wrong_examples:
        print(f"  wrong: [{language}] {term!r} -> {got} (expected {expected})")


if __name__ == "__main__":
    main()
