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


@pytest.mark.parametrize(
    "term, expected",
    [
        ("Women > Clothing > Dresses", "dress"),  # breadcrumb: the last crumb
        ("Apparel / Men / Chinos", "trousers"),
        ("Women > Clothing > Shorts & Skirts > Shorts", "shorts"),
        ("Men > Clothing > Sarees", None),  # a crumb that names nothing, and no other does
        ("Tops & Blouses", "blouse"),  # the parts that name a category agree
        ("Jeans & Trousers", None),  # ... and when they do not, nothing is guessed
        ("Low-Top Sneaker - White", "sneakers"),
        ("Men's Slim Fit Chinos", "trousers"),  # the garment is the last word(s)
        ("Men's Round Neck T-shirt (Pack of 2)", "t_shirt"),  # the longest known tail: t-shirt, not shirt
        ("tshirt for men", "t_shirt"),  # filler words
        ("dhoop ka chashma", "sunglasses"),
        ("カジュアルシャツ", "shirt"),  # a Japanese compound: its known tail
        ("ジャケットハンガー", None),  # ... only a tail, so a hanger is no jacket
        ("Watch Straps", None),
        ("Dress Shoes", None),
    ],
)
def test_a_term_is_read_down_to_its_garment_word(term, expected):
    assert get_category_synonyms().category(term) == expected
