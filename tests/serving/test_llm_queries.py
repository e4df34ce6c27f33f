"""LLM query generation against a local OpenAI-compatible endpoint: the valid path, and every failure
falling back to the local generator with a ``degraded`` note."""

from __future__ import annotations

from looksync.catalog.taxonomy import get_taxonomy
from tests.serving.conftest import b64
from tests.serving.llm_server import Step, closed_port_url


def _post(client, look, **params):
    _, data, truth = look
    body = {"image_base64": b64(data), "market": truth["market"], "k": 3, "rerank": "off", **params}
    resp = client.post("/v1/looks/search", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_llm_queries_are_used_and_the_request_is_strict_json_schema(make_client, scripted_llm, look):
    answer = {layer: None for layer in get_taxonomy().layers}
    answer.update(topwear="Women's navy striped t-shirt, crew neck", footwear="Women's white leather sneakers")
    scripted_llm.script(Step(answer))
    body = _post(make_client(scripted_llm.url), look)
    assert body["query_source"] == "llm" and body["degraded"] == []
    assert {layer["layer"]: layer["query"] for layer in body["layers"]} == {
        "topwear": "Women's navy striped t-shirt, crew neck",
        "footwear": "Women's white leather sneakers",
    }
    assert body["gender"] == "women"  # read from the queries
    for layer in body["layers"]:
        assert layer["products"] and all(p["layer"] == layer["layer"] for p in layer["products"])
        assert layer["gender_filter"] in ("inferred", "relaxed")  # an inferred gender may be widened
        if layer["gender_filter"] == "inferred":
            assert all(p["gender"] in ("women", "unisex") for p in layer["products"])

    (sent,) = scripted_llm.requests
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert set(schema["properties"]) == set(get_taxonomy().layers) and schema["additionalProperties"] is False
    assert sent["model"] == "scripted-vlm"
    image_parts = [p for p in sent["messages"][-1]["content"] if p["type"] == "image_url"]
    assert image_parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_requested_layers_narrow_the_schema(make_client, scripted_llm, look):
    scripted_llm.script(Step({"bottomwear": "men's blue jeans"}))
    body = _post(make_client(scripted_llm.url), look, layers=["bottomwear"])
    assert [layer["query"] for layer in body["layers"]] == ["men's blue jeans"]
    schema = scripted_llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["bottomwear"]


def _assert_fell_back(body, kind):
    assert body["query_source"] == "local"
    notes = [n for n in body["degraded"] if n.startswith("llm_unavailable: used local query generator")]
    assert notes and f"({kind}" in notes[0], body["degraded"]
    assert body["layers"] and all(layer["products"] for layer in body["layers"])


def test_invalid_json_falls_back(make_client, scripted_llm, look):
    scripted_llm.script(Step("Sure! Here are the queries: topwear = red shirt"))
    _assert_fell_back(_post(make_client(scripted_llm.url), look), "invalid_json")


def test_unknown_layers_fall_back(make_client, scripted_llm, look):
    scripted_llm.script(Step({"topwear": "red shirt", "cape": "a red cape"}))
    body = _post(make_client(scripted_llm.url), look)
    _assert_fell_back(body, "schema")
    assert "cape" in body["degraded"][0]


def test_timeout_falls_back(make_client, scripted_llm, look):
    scripted_llm.script(Step({"topwear": "red shirt"}, delay_s=1.5))
    _assert_fell_back(_post(make_client(scripted_llm.url, llm_timeout_s=0.4), look), "timeout")


def test_http_500_falls_back(make_client, scripted_llm, look):
    scripted_llm.script(Step(status=500))
    _assert_fell_back(_post(make_client(scripted_llm.url), look), "http_500")
    assert len(scripted_llm.requests) == 1  # no retries configured


def test_http_500_is_retried_when_configured(make_client, scripted_llm, look):
    scripted_llm.script(Step(status=500), Step({layer: None for layer in get_taxonomy().layers} | {"bag": "black tote bag"}))
    body = _post(make_client(scripted_llm.url, llm_retries=1), look)
    assert body["query_source"] == "llm" and [layer["layer"] for layer in body["layers"]] == ["bag"]
    assert len(scripted_llm.requests) == 2


def test_connection_refused_falls_back(make_client, look):
    _assert_fell_back(_post(make_client(closed_port_url()), look), "connection")


def test_local_generator_alone_reports_nothing_degraded(make_client, look):
    body = _post(make_client(None), look)
    assert body["query_source"] == "local" and body["degraded"] == []
    for layer in body["layers"]:
        assert layer["query"] and layer["region"] and layer["attributes"]["colour"]
