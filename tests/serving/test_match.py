"""Why each match, through the service: every result's ``match`` compares what was read from the look's
region with the product's stored attributes, and its score parts add up to the score it is ranked by."""

from __future__ import annotations

import pytest

from looksync.catalog.taxonomy import get_taxonomy
from tests.serving.conftest import b64


def _agrees(name, look, product):
    if name == "colour":
        return look in product
    if name == "gender":
        return look == product or "unisex" in (look, product)
    return look == product


@pytest.mark.parametrize("rerank", ["local", "off"])
def test_every_result_explains_its_match_against_the_catalog(client, built_catalog, sample_looks, rerank):
    from looksync.index.factory import open_index

    index = open_index(built_catalog.settings)
    checked_planted = 0
    for _, data, truth in sample_looks[:3]:
        body = client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"], "gender": truth["gender"],
                                                     "layers": sorted(truth["products"]), "k": 10, "rerank": rerank}).get_json()  # fmt: skip
        for layer in body["layers"]:
            read = {"category": None, **layer["attributes"]}
            for product in layer["products"]:
                stored = index.get(product["product_id"])
                match = product["match"]
                names = [a["name"] for a in match["attributes"]]
                assert {"colour", "pattern", "gender"} <= set(names)
                for a in match["attributes"]:
                    field = "colours" if a["name"] == "colour" else a["name"]
                    assert a["product"] == stored[field]  # the catalog's value, not the look's
                    if a["name"] != "category":
                        assert a["look"] == read[a["name"]]  # what the query generator read
                    assert a["agrees"] is _agrees(a["name"], a["look"], a["product"])
                assert match["agreed"] == sum(a["agrees"] for a in match["attributes"])
                assert match["score"]["knn"] == pytest.approx(product["score"], abs=1e-6)
                if rerank == "local":  # the parts give the score the list is ordered by
                    s = match["score"]
                    assert s["rerank"] == pytest.approx(product["rerank_score"], abs=1e-6)
                    assert s["rerank"] == pytest.approx(s["text_weight"] * s["knn"] + (1 - s["text_weight"]) * s["crop"], abs=1e-5)
                else:
                    assert set(match["score"]) == {"knn"}
                if product["product_id"] == truth["products"][layer["layer"]]:
                    checked_planted += 1
                    category = next(a for a in match["attributes"] if a["name"] == "category")
                    assert category["look"] in get_taxonomy().categories_of(layer["layer"])
    assert checked_planted >= 2  # the planted products were found and explained
