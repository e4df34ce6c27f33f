"""Rerank modes: LLM listwise (valid, timeout, invalid ids), crop-embedding cosine, off, and the
fallbacks between them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from looksync.index.factory import open_index
from tests.serving.conftest import alt_boxes, b64
from tests.serving.llm_server import Step

QUERIES = {"topwear": "women's navy t-shirt", "bottomwear": "women's blue jeans"}


def _post(client, look, **params):
    _, data, truth = look
    body = {"image_base64": b64(data), "market": truth["market"], "k": 3, "layers": sorted(QUERIES), **params}
    resp = client.post("/v1/looks/search", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _reverse_candidates(request_body):
    """A listwise answer: each layer's candidate ids (from the schema's enum) in reverse order."""
    props = request_body["response_format"]["json_schema"]["schema"]["properties"]
    return {layer: list(reversed(spec["items"]["enum"])) for layer, spec in props.items()}


def test_llm_rerank_orders_by_the_models_ranking(make_client, scripted_llm, look):
    scripted_llm.script(Step({k: QUERIES[k] for k in sorted(QUERIES)}), Step(_reverse_candidates))
    body = _post(make_client(scripted_llm.url), look, rerank="llm")
    assert body["rerank"] == "llm" and body["degraded"] == []
    rerank_request = scripted_llm.requests[1]
    assert rerank_request["response_format"]["json_schema"]["strict"] is True
    props = rerank_request["response_format"]["json_schema"]["schema"]["properties"]
    for layer in body["layers"]:
        candidates = props[layer["layer"]]["items"]["enum"]
        assert len(candidates) > 3  # more candidates than k are reranked
        assert [p["product_id"] for p in layer["products"]] == list(reversed(candidates))[:3]


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (Step(_reverse_candidates, delay_s=1.5), "timeout"),
        (Step({"topwear": ["not-a-candidate"], "bottomwear": []}), "schema"),
        (Step(status=500), "http_500"),
    ],
)
def test_llm_rerank_failures_fall_back_to_crop_cosine(make_client, scripted_llm, look, step, kind):
    scripted_llm.script(Step({k: QUERIES[k] for k in sorted(QUERIES)}), step)
    body = _post(make_client(scripted_llm.url, rerank_llm_budget_s=0.5), look, rerank="auto")
    assert body["query_source"] == "llm"
    assert body["rerank"] == "local"
    assert any(n.startswith("llm_rerank_unavailable") and f"({kind}" in n for n in body["degraded"]), body["degraded"]
    for layer in body["layers"]:
        scores = [p["rerank_score"] for p in layer["products"]]
        assert scores and scores == sorted(scores, reverse=True)


def test_local_rerank_blends_text_score_with_crop_cosine(make_client, built_catalog, look):
    body = _post(make_client(None, rerank_text_weight=0.25), look, rerank="local")
    assert body["rerank"] == "local" and body["degraded"] == []
    index = open_index(built_catalog.settings)
    image = Image.open(__import__("io").BytesIO(look[1])).convert("RGB")
    for layer in body["layers"]:
        boxes = [tuple(layer["region"]), *alt_boxes(image, layer["layer"])]  # bottomwear: short and long extents
        crops = built_catalog.encoder.encode_images([image.crop(box) for box in boxes])
        stored = index.vectors([p["product_id"] for p in layer["products"]])
        for p in layer["products"]:
            expected = 0.25 * p["score"] + 0.75 * float(np.max(crops @ stored[p["product_id"]]))
            assert p["rerank_score"] == pytest.approx(expected, abs=1e-4)
        scores = [p["rerank_score"] for p in layer["products"]]
        assert scores == sorted(scores, reverse=True)


def test_rerank_off_keeps_knn_order(make_client, look):
    body = _post(make_client(None), look, rerank="off")
    assert body["rerank"] == "off"
    for layer in body["layers"]:
        scores = [p["score"] for p in layer["products"]]
        assert scores == sorted(scores, reverse=True) and all("rerank_score" not in p for p in layer["products"])


def test_llm_mode_without_an_llm_says_so(make_client, look):
    body = _post(make_client(None), look, rerank="llm")
    assert body["rerank"] == "local"
    assert any(n.startswith("llm_rerank_unavailable: no LLM configured") for n in body["degraded"])


def test_index_without_stored_vectors_keeps_knn_order(make_client, built_catalog, look):
    class NoVectors(type(open_index(built_catalog.settings))):
        def vectors(self, product_ids, version=None):
            raise NotImplementedError("this backend keeps no vectors")

    index = NoVectors(built_catalog.settings.resolved_index_path)
    body = _post(make_client(None, index=index), look, rerank="local")
    assert body["rerank"] == "off"
    assert any(n.startswith("rerank_unavailable") for n in body["degraded"])
    for layer in body["layers"]:
        scores = [p["score"] for p in layer["products"]]
        assert scores == sorted(scores, reverse=True)


def test_unknown_rerank_mode_is_a_400(make_client, look):
    _, data, _ = look
    resp = make_client(None).post("/v1/looks/search", json={"image_base64": b64(data), "rerank": "magic"})
    assert resp.status_code == 400 and "rerank" in resp.get_json()["error"]["message"]


def test_crop_vector_dedup_drops_near_identical_images(make_client, look):
    body = _post(make_client(None, search_dedup_cosine=-1.0), look, rerank="local")
    # every candidate is "identical" to the first under a threshold of -1: one product per layer
    assert all(len(layer["products"]) == 1 for layer in body["layers"])
    assert np.isfinite([layer["products"][0]["rerank_score"] for layer in body["layers"]]).all()
