"""The normalised key and the shared category synonyms, and the list of vendor-written category strings
the benchmark measures (bench/bench_category_terms.py) as a regression guard."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from looksync.catalog.terms import get_category_synonyms, singular, term_key

TERMS = Path(__file__).parents[2] / "bench" / "data" / "vendor_category_terms.tsv"


@pytest.mark.parametrize(
    "spellings",
    [
        ["T-Shirts", "t shirt", "TSHIRT", "tshirts", "T_Shirt", "Ｔ－ＳＨＩＲＴ"],
        ["Hoodie", "hoodies", "HOODY"],
        ["Dress", "dresses"],
        ["Watch", "watches"],
        ["Accessory", "accessories"],
        ["Men's", "mens", "MEN’S"],
        ["Tシャツ", "Ｔシャツ", "T・シャツ"],
    ],
)
def test_spellings_of_one_word_share_a_key(spellings):
    assert len({term_key(s) for s in spellings}) == 1


def test_plurals_are_not_overdone():
    assert [singular(w) for w in ("dress", "bus", "tennis", "jeans", "boots", "ties", "tee")] == [
        "dress", "bus", "tennis", "jean", "boot", "tie", "tee"
    ]  # fmt: skip


def test_vendor_written_category_strings_map_right_and_never_wrong():
    rows = [r for r in csv.reader(TERMS.open(encoding="utf-8"), delimiter="\t") if r and not r[0].startswith("#")]
    assert len(rows) >= 200 and {r[0] for r in rows} == {"en", "ja", "hi"}
    synonyms = get_category_synonyms()
    got = [(synonyms.category(term), None if expected == "-" else expected) for _, term, expected in rows]
    correct = sum(g == e for g, e in got) / len(got)
    wrong = sum(g is not None and g != e for g, e in got) / len(got)
    assert correct >= 0.95 and wrong <= 0.01, (correct, wrong)
