"""Product groups: one item at several shops (other title, language, price, picture encoding) is one
group; similar but different items are not; offers come in the shopper's order."""

from __future__ import annotations

import random

import numpy as np
import pytest

from looksync.catalog.groups import group_records, listings_agree, order_offers, title_signature
from looksync.pipelines.dedup import group_near_duplicates
from looksync.sample.drawing import product_image
from looksync.sample.listings import reencode
from tests.factories import make_product, unit_vectors

ENGLISH = dict(vendor="desi_threads", vendor_sku="DT1", market="IN", brand="Roopa", category="sweater", gender="women",
               colours=["pink"], pattern="striped", title="Roopa Women's Pink Striped Wool Sweater", price=899.0)  # fmt: skip
JAPANESE = dict(ENGLISH, vendor="sakura_mode", vendor_sku="SM1", market="JP", brand="ROOPA", price=8180.0,
                title="Roopa ピンクボーダーウールニット")  # fmt: skip


def test_titles_in_two_languages_share_their_standard_words():
    english = title_signature(ENGLISH["title"], "Roopa")
    japanese = title_signature(JAPANESE["title"], "ROOPA")
    assert {"colour:pink", "pattern:striped", "category:sweater"} <= english & japanese
    assert "roopa" not in english | japanese  # the brand is compared on its own
    assert "wool" in english  # a Latin word no vocabulary knows is kept as a word
    assert listings_agree(make_product(**ENGLISH), make_product(**JAPANESE), title_min=0.5)


@pytest.mark.parametrize(
    "change",
    [
        dict(colours=["navy"], title="Roopa ネイビーボーダーウールニット"),  # another colour
        dict(pattern="solid", title="Roopa ピンク無地ウールニット"),  # another pattern
        dict(gender="men"),
        dict(brand="Saffron Street", title="Saffron Street ピンクボーダーウールニット"),
        dict(category="t_shirt", title="Roopa ピンクボーダーTシャツ"),
    ],
)
def test_listings_that_disagree_on_anything_written_are_not_one_item(change):
    other = make_product(**{**JAPANESE, **change})
    assert not listings_agree(make_product(**ENGLISH), other, title_min=0.5)


def _picture(rgb=(226, 120, 160), scale=0.95, shift=(0, 0)):
    return product_image("sweater", rgb, "striped", scale=scale, shift=shift, pattern_period=12)


def test_a_reencoded_picture_at_another_shop_is_grouped_and_a_similar_item_is_not(tiny_encoder):
    picture = _picture()
    copy = reencode(picture, random.Random(3))  # resized, JPEG: not the same bytes or pixels
    shade = _picture(rgb=(214, 110, 150), scale=0.88, shift=(4, -3))  # the same vendor's item in another shade
    vectors = dict(zip(["orig", "copy", "shade"], tiny_encoder.encode_images([picture, copy, shade]), strict=True))
    products = [
        make_product(**ENGLISH, image_hash="orig"),
        make_product(**JAPANESE, image_hash="copy"),
        make_product(**{**ENGLISH, "vendor_sku": "DT2"}, image_hash="shade"),
        make_product(**{**JAPANESE, "vendor_sku": "SM2", "colours": ["navy"]}, image_hash="copy"),  # says navy
    ]
    assert float(vectors["orig"] @ vectors["copy"]) >= 0.95  # what makes it a near-duplicate picture
    grouping = group_near_duplicates(products, vectors, threshold=0.95, title_min=0.5)
    ids = [p.product_id for p in products]
    assert grouping.groups == {ids[0]: grouping.groups[ids[0]], ids[1]: grouping.groups[ids[0]]}
    again = group_near_duplicates(list(reversed(products)), vectors, threshold=0.95, title_min=0.5)
    assert again.groups == grouping.groups  # order-independent, same ids


def test_pictures_below_the_threshold_are_not_grouped_even_when_every_word_agrees():
    v = unit_vectors(2, 16, seed=4)
    products = [make_product(**ENGLISH, image_hash="a"), make_product(**JAPANESE, image_hash="b")]
    assert group_near_duplicates(products, {"a": v[0], "b": v[1]}, threshold=0.95).groups == {}
    near = v[0] + 0.05 * v[1]
    assert len(group_near_duplicates(products, {"a": v[0], "b": near / np.linalg.norm(near)}, threshold=0.95).groups) == 2


def test_group_record_has_a_canonical_product_and_every_offer():
    english, japanese = make_product(**ENGLISH, material="Wool"), make_product(**JAPANESE)
    gid = "grp-1"
    records = group_records([english, japanese, make_product()], {english.product_id: gid, japanese.product_id: gid})
    record = records[gid]
    assert record["canonical_product_id"] == english.product_id  # the more complete record (it has a material)
    assert record["markets"] == ["IN", "JP"] and record["vendors"] == ["desi_threads", "sakura_mode"]
    offers = {o["vendor"]: o for o in record["offers"]}
    assert offers["sakura_mode"] == {
        "product_id": japanese.product_id, "vendor": "sakura_mode", "market": "JP", "title": JAPANESE["title"],
        "price": 8180.0, "currency": "JPY", "in_stock": True, "product_url": japanese.product_url,
    }  # fmt: skip


def test_offers_in_the_shoppers_market_and_in_stock_come_first_cheapest_first():
    def offer(pid, market, price, in_stock):
        return {"product_id": pid, "market": market, "price": price, "in_stock": in_stock}

    offers = [offer("a", "US", 30.0, True), offer("b", "JP", 2000.0, True), offer("c", "JP", 1500.0, False),
              offer("d", "JP", 2500.0, True), offer("e", "IN", 999.0, True), offer("f", "US", 10.0, False)]  # fmt: skip
    assert [o["product_id"] for o in order_offers(offers, "JP")] == ["b", "d", "e", "a", "c", "f"]
    assert [o["product_id"] for o in order_offers(offers, "US")] == ["a", "e", "b", "d", "f", "c"]
    assert [o["product_id"] for o in order_offers(offers, None)] == ["e", "b", "d", "a", "c", "f"]
