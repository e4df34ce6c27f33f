"""Real answers of the search endpoints validate against the response models with unknown fields
refused: what the service sends is what /openapi.json documents."""

from __future__ import annotations

import pytest

from looksync.catalog.taxonomy import get_taxonomy
from serving.responses import LookResponse, SearchResponse, SimilarResponse
from tests.serving.conftest import b64


def _ok(resp):
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.mark.parametrize("rerank", ["local", "off"])
def test_look_answers_match_the_model(client, look, rerank):
    _, data, truth = look
    currency = get_taxonomy().currency_of(truth["market"])
    products = _ok(client.post("/v1/search", json={"text": "dress", "k": 1}))["products"]
    assert client.post("/v1/events", json={"events": [
        {"shopper_id": "conformance", "product_id": products[0]["product_id"], "type": "click"}]}).status_code == 201  # fmt: skip
    bodies = [
        {"image_base64": b64(data), "market": truth["market"], "k": 3, "rerank": rerank},  # detection, no hints
        {"image_base64": b64(data), "market": truth["market"], "gender": truth["gender"], "k": 3, "rerank": rerank,
         "layers": sorted(truth["products"]), "outfit": {"budget": 100000, "currency": currency}, "shopper_id": "conformance"},
        {"image_base64": b64(data), "k": 2, "rerank": rerank, "shopper_id": "nobody-yet"},
    ]  # fmt: skip
    for body in bodies:
        answer = _ok(client.post("/v1/looks/search", json=body))
        LookResponse.model_validate(answer)
    again = _ok(client.post("/v1/looks/search", json=bodies[1]))  # a cached answer has the same shape
    LookResponse.model_validate(again)


def test_search_and_similar_answers_match_their_models(client, look):
    _, data, _ = look
    text = _ok(client.post("/v1/search", json={"text": "navy t-shirt", "k": 3, "shopper_id": "conformance"}))
    SearchResponse.model_validate(text)
    image = _ok(client.post("/v1/search", json={"image_base64": b64(data), "text": "but in navy", "k": 3}))
    SearchResponse.model_validate(image)
    similar = _ok(client.get(f"/v1/products/{text['products'][0]['product_id']}/similar?k=3"))
    SimilarResponse.model_validate(similar)


def test_an_undocumented_field_is_caught():
    with pytest.raises(ValueError, match="extra"):
        SimilarResponse.model_validate({"index_version": "v", "model_id": "m", "product_id": "p", "products": [],
                                        "timings_ms": {}, "degraded": [], "surprise": 1})  # fmt: skip
