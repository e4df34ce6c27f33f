"""Standardisation: rules and synonyms first, CLIP zero-shot only where data is missing or contradictory."""

from __future__ import annotations

import numpy as np

from looksync.pipelines.enrich import categories_named, standardise
from tests.factories import make_product


def test_rules_fill_missing_colour_and_pattern_from_the_title():
    p = make_product(colours=[], pattern=None, title="Navy striped cotton tee")
    result = standardise([p])
    assert p.colours == ["navy"] and p.pattern == "striped"
    assert result.sources[p.product_id] == {"colour": "rules", "pattern": "rules"}
    assert not result.contradictions and not result.still_missing


def test_without_a_model_what_rules_cannot_settle_is_reported_not_invented():
    p = make_product(colours=[], pattern=None, title="Everyday tee")
    result = standardise([p])
    assert p.colours == [] and p.pattern is None
    assert result.still_missing == {p.product_id: ["colour", "pattern"]}


def test_zeroshot_fills_what_is_missing_and_settles_contradictions(tiny_encoder):
    from embeddings import ZeroShot

    zs = ZeroShot(tiny_encoder)
    missing = make_product(vendor_sku="M", colours=[], pattern=None, title="Everyday tee", image_hash="hm")
    contradictory = make_product(vendor_sku="C", title="Classic denim jeans", category="t_shirt", image_hash="hc")
    fine = make_product(vendor_sku="F", title="Navy striped tee", image_hash="hf")
    assert categories_named(contradictory.title) == {"jeans"}
    # image vectors chosen to be the text vectors of the answers CLIP should give
    colour = zs.text_vectors("colour")[zs.candidates("colour").index("red")]
    jeans = zs.text_vectors("category")[zs.candidates("category").index("jeans")]
    vectors = {"hm": colour, "hc": jeans, "hf": colour}
    result = standardise([missing, contradictory, fine], vectors, zs, min_confidence=0.0)
    assert missing.colours == ["red"] and missing.pattern in zs.candidates("pattern")
    assert result.sources[missing.product_id] == {"colour": "zeroshot", "pattern": "zeroshot"}
    assert contradictory.category == "jeans" and contradictory.layer == "bottomwear"
    assert result.sources[contradictory.product_id] == {"category": "zeroshot"}
    assert fine.product_id not in result.sources and fine.colours == ["navy"]  # data present: untouched


def test_low_confidence_zeroshot_leaves_the_attribute_missing(tiny_encoder):
    from embeddings import ZeroShot

    zs = ZeroShot(tiny_encoder)
    p = make_product(colours=[], pattern="solid", title="Everyday tee", image_hash="h")
    flat = np.ones(tiny_encoder.dim, dtype=np.float32) / np.sqrt(tiny_encoder.dim)
    result = standardise([p], {"h": flat}, zs, min_confidence=0.99)
    assert p.colours == [] and result.still_missing == {p.product_id: ["colour"]}
