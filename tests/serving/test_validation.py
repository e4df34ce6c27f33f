"""The validation layer (serving/validation.py, serving/models.py) on every endpoint through the Flask
app: nesting, non-finite and overflowing numbers, invalid Unicode, content types, bounds, unknown
fields; each a JSON 4xx naming the field, never a 5xx and never an index outage."""

from __future__ import annotations

import io
import json

import pytest

from serving.validation import MAX_JSON_DEPTH, RequestProblem, json_depth, parse_json


@pytest.fixture(scope="module")
def client(built_catalog, zeroshot):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    settings = built_catalog.settings
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache(), zeroshot=zeroshot)
    return create_app(settings, engine).test_client()


@pytest.fixture(scope="module")
def product_id(built_catalog):
    from looksync.index.factory import open_index

    index = open_index(built_catalog.settings)
    return next(iter(index.vectors([next(iter(built_catalog.ground_truth.values()))["products"]["footwear"]])))


def error(resp, status: int, field: str | None = "-") -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json
    err = resp.get_json()["error"]
    if field != "-":
        assert err.get("field") == field, err
    return err


def post_raw(client, route: str, text: str | bytes, content_type: str = "application/json"):
    return client.post(route, data=text, content_type=content_type)


JSON_ROUTES = ("/v1/looks/search", "/v1/search", "/v1/judgments")


# ---- the parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1), ("[[[]]]", 3), ('{"a": "[[[[[[["}', 1), ('["\\"[[[[", [1]]', 2), ('"]]]]"', 0), ("3", 0),
        ('{"a": [{"b": [1, {"c": "}}}"}]}]}', 5),
    ],
)  # fmt: skip
def test_depth_counts_brackets_outside_strings_only(text, depth):
    assert json_depth(text) == depth


def test_deep_documents_never_reach_the_recursive_parser():
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 100_000):
        with pytest.raises(RequestProblem) as caught:
            parse_json(deep)
        assert caught.value.code == "json_too_deep" and caught.value.status == 400
    nested = json.loads(json.dumps(parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)))
    assert nested == json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)


def test_the_depth_limit_is_exact_and_short_documents_skip_the_scan():
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(RequestProblem) as caught:
        parse_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert caught.value.code == "json_too_deep"
    assert parse_json(json.dumps([[1]] * (MAX_JSON_DEPTH + 1))) == [[1]] * (MAX_JSON_DEPTH + 1)  # many brackets, shallow


def test_strings_are_nfc_and_numbers_finite():
    assert parse_json('{"t": "e\\u0301"}') == {"t": "\u00e9"}
    for bad, field in (('{"a": [1, NaN]}', "a[1]"), ('{"a": {"b": Infinity}}', "a.b"), ('{"x": -1e999}', "x"),
                       ('{"s": "a\\u0000b"}', "s"), ('{"k\\ud800": 1}', "<key>"), ('["\\udfff"]', "[0]")):  # fmt: skip
        with pytest.raises(RequestProblem) as caught:
            parse_json(bad)
        assert caught.value.field == field, bad
    with pytest.raises(RequestProblem) as caught:
        parse_json(b'{"t": "\xff\xfe"}')
    assert caught.value.code == "invalid_json" and "UTF-8" in caught.value.message


# ---- every JSON endpoint -----------------------------------------------------------------------


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_deep_nesting_on_every_json_endpoint(client, route):
    for deep in ("[" * 10_000 + "]" * 10_000, '{"filters": ' * 10_000 + "{}" + "}" * 10_000):
        assert error(post_raw(client, route, deep), 400, None)["code"] == "json_too_deep"


@pytest.mark.parametrize("route", ["/v1/looks/search", "/v1/search"])
def test_deep_nesting_in_the_multipart_params_field(client, route, look):
    _, data, _ = look
    for params in ("[" * 10_000 + "]" * 10_000, '{"filters": {"sizes": ' + "[" * 5000 + "]" * 5000 + "}}"):
        resp = client.post(route, data={"params": params, "image": (io.BytesIO(data), "look.png")})
        assert error(resp, 400, "params")["code"] == "json_too_deep"


@pytest.mark.parametrize("route", ["/v1/looks/search", "/v1/search"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"text": "navy", "k": 1e999}', "k"),
        ('{"text": "navy", "k": NaN}', "k"),
        ('{"text": "navy", "k": 1' + "0" * 400 + "}", "k"),
        ('{"text": "navy", "k": 2.5}', "k"),
        ('{"text": "navy", "k": 0}', "k"),
        ('{"text": "navy", "k": 101}', "k"),
        ('{"text": "navy", "k": "ten"}', "k"),
        ('{"text": "navy", "filters": {"price_min": NaN}}', "filters.price_min"),
        ('{"text": "navy", "filters": {"price_max": Infinity}}', "filters.price_max"),
        ('{"text": "navy", "filters": {"price_max": -Infinity}}', "filters.price_max"),
        ('{"text": "navy", "filters": {"price_min": 1e999}}', "filters.price_min"),
        ('{"text": "navy", "filters": {"price_min": -1}}', "filters.price_min"),
        ('{"text": "navy", "filters": {"price_min": "cheap"}}', "filters.price_min"),
        ('{"text": "navy", "filters": {"colour": "red"}}', "filters.colour"),
        ('{"text": "navy", "filters": {"sizes": [1, 2]}}', "filters.sizes[0]"),
        ('{"text": "navy", "filters": {"in_stock": "maybe"}}', "filters.in_stock"),
        ('{"text": "navy", "filters": []}', "filters"),
        ('{"text": "navy", "market": 7}', "market"),
        ('{"text": "navy", "market": "U\\u0000S"}', "market"),
        ('{"text": "navy", "gender": "\\ud83d"}', "gender"),
        ('{"text": "navy", "layers": ["topwear", "\\udc00"]}', "layers[1]"),
        ('{"text": "navy", "layers": "' + ",".join(["topwear"] * 101) + '"}', "layers"),
        ('{"text": "navy", "image_url": 5}', "image_url"),
        ('{"text": "navy", "image_url": "http://' + "a" * 3000 + '.example/"}', "image_url"),
        ('{"text": "navy", "surprise": 1}', "surprise"),
    ],
)
def test_bad_fields_are_400_naming_the_field(client, route, body, field):
    if route == "/v1/looks/search":
        body = body.replace('"text": "navy"', '"image_url": "http://127.0.0.1/x.png"')
        if '"image_url": 5' in body or "a" * 3000 in body:
            body = body.replace('"image_url": "http://127.0.0.1/x.png", ', "")
    err = error(post_raw(client, route, body), 400, field)
    assert err["code"] in ("invalid_request", "invalid_text")


def test_price_filters_in_the_query_string(client, product_id):
    for value in ("NaN", "nan", "inf", "-Infinity", "1e999", "1" + "0" * 400, "-3", "cheap", ""):
        for name in ("price_min", "price_max"):
            resp = client.get(f"/v1/products/{product_id}/similar", query_string={name: value})
            error(resp, 400, name)
    for value in ("1e999", "NaN", "0", "1000", "x"):
        error(client.get(f"/v1/products/{product_id}/similar", query_string={"k": value}), 400, "k")
    error(client.get(f"/v1/products/{product_id}/similar?market=U%00S"), 400, "market")
    error(client.get(f"/v1/products/{product_id}/similar?k=2&k=3"), 400, "k")
    error(client.get(f"/v1/products/{product_id}/similar?surprise=1"), 400, "surprise")
    error(client.get("/v1/judgments/report", query_string={"model_id": "a\x00b"}), 400, "model_id")
    ok = client.get(f"/v1/products/{product_id}/similar", query_string={"price_min": "0", "price_max": "1e6", "k": "3"})
    assert ok.status_code == 200 and len(ok.get_json()["products"]) <= 3


def test_path_parameters_are_bounded_and_clean(client):
    error(client.get("/v1/products/" + "p" * 201), 400, "product_id")
    error(client.get("/v1/products/a%00b"), 400, "product_id")
    error(client.get("/v1/products/" + "p" * 201 + "/similar"), 400, "product_id")
    assert client.get("/v1/products/" + "p" * 200).status_code == 404


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
def test_other_content_types_are_415(client, route, content_type):
    resp = client.post(route, data=b'{"text": "navy"}', headers={"Content-Type": content_type} if content_type else {})
    assert error(resp, 415, "Content-Type")["code"] == "unsupported_media_type"


def test_multipart_is_415_on_the_json_only_endpoint_and_text_is_nfc(client, look):
    _, data, _ = look
    resp = client.post("/v1/judgments", data={"params": "{}", "image": (io.BytesIO(data), "look.png")})
    error(resp, 415)
    body = client.post("/v1/search", json={"text": "cafe\u0301 navy t-shirt", "k": 2}).get_json()
    assert body["text"] == "caf\u00e9 navy t-shirt"
    resp = client.post("/v1/search", data={"text": "navy\x00", "image": (io.BytesIO(data), "look.png")})
    error(resp, 400, "text")
    resp = client.post("/v1/search", data={"params": '{"k": 1e999}', "image": (io.BytesIO(data), "look.png")})
    error(resp, 400, "k")
    resp = client.post("/v1/search", data={"params": '{"image_base64": "AAAA"}', "image": (io.BytesIO(data), "look.png")})
    error(resp, 400, "image_base64")


def test_a_document_that_is_not_an_object_or_not_json(client):
    for route in ("/v1/looks/search", "/v1/search"):
        for body in ("[1, 2]", '"text"', "nul", "{", "", '{"k": 1' + "0" * 5000 + "}", b"\xff\xfe{}"):
            assert error(post_raw(client, route, body), 400, None)["code"] == "invalid_json", body


def test_engine_checks_name_their_field_too(client):
    err = error(client.post("/v1/search", json={"text": "navy", "market": "XX"}), 400, "market")
    assert "is not one of" in err["message"]
    error(client.post("/v1/search", json={"text": "navy", "filters": {"price_min": 50, "price_max": 10}}), 400,
          "filters.price_min")  # fmt: skip
    error(client.post("/v1/search", json={"text": "n" * 501}), 400, "text")


def test_the_engine_refuses_non_finite_prices_from_any_caller(built_catalog):
    """Defence in depth: a Python caller that skips the service's models still gets InvalidRequest naming the
    filter, never the index's backend error."""
    from looksync.index import SearchFilters
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import InvalidRequest, SearchEngine, SearchRequest

    engine = SearchEngine(built_catalog.settings, built_catalog.encoder, open_index(built_catalog.settings), MemoryCache())
    for value in (float("nan"), float("inf"), float("-inf"), "12"):
        with pytest.raises(InvalidRequest) as caught:
            engine.search(SearchRequest(text="navy", filters=SearchFilters(price_max=value)))
        assert caught.value.field == "filters.price_max"
