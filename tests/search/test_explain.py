"""The match explanation's agreement rules and score parts."""

from __future__ import annotations

from looksync.search.explain import explain_match

PRODUCT = {"category": "dress", "colours": ["navy", "white"], "pattern": "striped", "gender": "women"}


def test_each_attribute_read_from_the_look_is_compared_with_the_products_value():
    read = {"category": "dress", "colour": "white", "pattern": "solid", "gender": "unisex"}
    match = explain_match(read, PRODUCT, 0.8)
    assert match["attributes"] == [
        {"name": "category", "look": "dress", "product": "dress", "agrees": True},
        {"name": "colour", "look": "white", "product": ["navy", "white"], "agrees": True},  # one of its colours
        {"name": "pattern", "look": "solid", "product": "striped", "agrees": False},
        {"name": "gender", "look": "unisex", "product": "women", "agrees": True},  # unisex fits either
    ]
    assert match["agreed"] == 3
    assert match["score"] == {"knn": 0.8}


def test_attributes_not_read_or_not_stored_are_left_out_and_disagreements_counted():
    match = explain_match({"category": "jeans", "colour": None, "gender": "men"}, {"category": "dress", "gender": "women"}, 0.5)
    assert [(a["name"], a["agrees"]) for a in match["attributes"]] == [("category", False), ("gender", False)]
    assert match["agreed"] == 0


def test_score_parts_when_the_crop_rerank_ran():
    match = explain_match({}, PRODUCT, 0.61234567, crop_score=0.7, rerank_score=0.65617, text_weight=0.5)
    assert match["score"] == {"knn": 0.612346, "crop": 0.7, "rerank": 0.65617, "text_weight": 0.5}
