"""Property tests (hypothesis) over every endpoint's parameters with the hostile classes of
tests/serving/hostile.py: whatever a client sends, the answer is JSON, never a 5xx, and a 4xx says what
was wrong. Seeded (derandomized) and bounded so the whole module runs in a few seconds.

Image URLs resolve through a stub (every name -> 127.0.0.1) and private addresses are refused
(``fetch_allow_private=False``), so no generated URL can make a request leave loopback or wait on DNS."""

from __future__ import annotations

import io
import json
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import hostile

PROPERTY = settings(max_examples=int(os.environ.get("HOSTILE_FUZZ_CASES", "100")), derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
MODEL_FIELDS = {
    "/v1/looks/search": ["image_base64", "image_url", "market", "gender", "layers", "k", "filters", "rerank"],
    "/v1/search": ["image_base64", "image_url", "text", "market", "gender", "layers", "categories", "k", "filters"],
}
FILTER_FIELDS = ["brands_include", "brands_exclude", "price_min", "price_max", "sizes", "in_stock"]
SIMILAR_QUERY = ["market", "gender", "k", "layers", "categories", *FILTER_FIELDS]
CAP = 64_000


@pytest.fixture(scope="module")
def no_dns():
    """Every host name resolves to loopback (refused by the guard), without asking a resolver."""
    patch = pytest.MonkeyPatch()
    real = socket.getaddrinfo

    def loopback(host, port, *args, **kwargs):
        if host in ("127.0.0.1", "localhost", "::1"):
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 80))]

    patch.setattr(socket, "getaddrinfo", loopback)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def app(built_catalog, zeroshot, no_dns, tmp_path_factory):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    judging = tmp_path_factory.mktemp("hostile-judging") / "ratings.sqlite3"
    settings_ = built_catalog.settings.model_copy(update={
        "fetch_allow_private": False, "max_upload_bytes": CAP, "judging_db_url": f"sqlite:///{judging}",
        "look_cache_ttl_s": 0,
    })  # fmt: skip
    engine = SearchEngine(settings_, built_catalog.encoder, open_index(settings_), MemoryCache(), zeroshot=zeroshot)
    return create_app(settings_, engine)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def product_id(built_catalog):
    return next(iter(built_catalog.ground_truth.values()))["products"]["footwear"]


def answered(resp, allowed=(200, 201, 400, 404, 413, 415)):
    """Not a 5xx; a JSON error with a code and a message for every 4xx."""
    assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:400])
    assert resp.status_code in allowed, (resp.status_code, resp.get_data(as_text=True)[:400])
    if resp.status_code >= 400:
        error = resp.get_json()["error"]
        assert error["code"] and error["message"]
        return error
    return None


# ---- bodies of every JSON endpoint ---------------------------------------------------------------


@PROPERTY
@given(
    route=st.sampled_from(["/v1/looks/search", "/v1/search", "/v1/judgments"]),
    text=st.one_of(hostile.deep_json_text(), hostile.json_values.map(hostile.json_text),
                   st.tuples(hostile.number_tokens, hostile.number_tokens).map(
                       lambda t: f'{{"text": "navy", "k": {t[0]}, "filters": {{"price_max": {t[1]}}}}}'),
                   st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "application/problem+json",
                                  "text/plain", "application/x-www-form-urlencoded", ""]),
)  # fmt: skip
def test_any_body_on_any_json_endpoint(client, route, text, content_type):
    resp = client.post(route, data=text.encode("utf-8", "surrogatepass"), headers={"Content-Type": content_type} if content_type else {})
    error = answered(resp)
    if content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        assert resp.status_code == 415 and error["code"] == "unsupported_media_type"


@PROPERTY
@given(
    route=st.sampled_from(sorted(MODEL_FIELDS)),
    fields=st.data(),
)
def test_every_model_field_with_hostile_values(client, route, fields):
    names = fields.draw(st.lists(st.sampled_from(MODEL_FIELDS[route]), min_size=1, max_size=3, unique=True))
    body = {name: fields.draw(hostile.hostile_values, label=name) for name in names}
    if fields.draw(st.booleans(), label="hostile filters"):
        body["filters"] = fields.draw(st.dictionaries(st.sampled_from([*FILTER_FIELDS, "colour"]), hostile.hostile_values,
                                                      max_size=3), label="filters")  # fmt: skip
    resp = client.post(route, data=hostile.json_text(body), content_type="application/json")
    error = answered(resp, allowed=(200, 400, 404, 413))
    if error is not None and error["code"] in ("invalid_request", "invalid_text"):
        assert error.get("field") or "give a text" in error["message"], error


@PROPERTY
@given(route=st.sampled_from(sorted(MODEL_FIELDS)), params=st.data())
def test_the_multipart_params_field_and_form_fields(client, route, params, sample_looks):
    raw = params.draw(st.one_of(hostile.deep_json_text(), hostile.json_values.map(hostile.json_text),
                                st.dictionaries(st.sampled_from(MODEL_FIELDS[route]), hostile.hostile_values,
                                                max_size=3).map(hostile.json_text)))  # fmt: skip
    form = {"params": raw.encode("utf-8", "surrogatepass")}
    if params.draw(st.booleans(), label="text field"):
        form["text"] = params.draw(hostile.bad_text(), label="text").encode("utf-8", "surrogatepass")
    if params.draw(st.booleans(), label="with image"):
        form["image"] = (io.BytesIO(sample_looks[0][1] if params.draw(st.booleans()) else b"\x89PNG\r\n\x1a\n" + b"\0" * 50), "x.png")
    answered(client.post(route, data=form, content_type="multipart/form-data"), allowed=(200, 400, 413))


# ---- image URLs ----------------------------------------------------------------------------------


@PROPERTY
@given(route=st.sampled_from(sorted(MODEL_FIELDS)), url=hostile.hostile_urls())
def test_malformed_and_internal_image_urls(client, route, url):
    resp = client.post(route, data=json.dumps({"image_url": url}), content_type="application/json")
    error = answered(resp, allowed=(400, 413))
    assert error["code"] in ("image_url_invalid", "image_blocked", "invalid_request", "invalid_text", "image_unreachable")


# ---- oversized bodies ----------------------------------------------------------------------------


@settings(max_examples=15, derandomize=True, deadline=None, database=None)
@given(route=st.sampled_from(["/v1/looks/search", "/v1/search", "/v1/judgments"]), size=st.integers(CAP - 10, 4 * CAP),
       multipart=st.booleans())  # fmt: skip
def test_oversized_bodies_are_413(client, route, size, multipart):
    if multipart and route != "/v1/judgments":
        resp = client.post(route, data={"params": "{}", "image": (io.BytesIO(b"\0" * size), "big.png")})
    else:
        resp = client.post(route, data=b'{"text": "' + b"a" * size + b'"}', content_type="application/json")
    error = answered(resp, allowed=(400, 413))
    if size > CAP:
        assert resp.status_code == 413 and error["code"] == "request_entity_too_large"


# ---- query strings and paths ---------------------------------------------------------------------


@PROPERTY
@given(query=st.dictionaries(st.sampled_from([*SIMILAR_QUERY, "surprise"]),
                             st.one_of(hostile.query_numbers, hostile.unicode_text, st.sampled_from(["true", "no", "2"])),
                             max_size=4))  # fmt: skip
def test_similar_query_strings(client, product_id, query):
    resp = client.get(f"/v1/products/{product_id}/similar", query_string=query)
    error = answered(resp, allowed=(200, 400, 404))
    if error is not None and error["code"] == "invalid_request":
        assert error["field"].split("[")[0].split(".")[0] in (*SIMILAR_QUERY, "surprise", "filters"), error


@PROPERTY
@given(product=st.one_of(hostile.unicode_text, st.text(alphabet="%0123456789abcdefABCDEF/.", max_size=60)),
       suffix=st.sampled_from(["", "/similar", "/thumbnail"]))  # fmt: skip
def test_product_paths(client, product, suffix):
    from urllib.parse import quote

    resp = client.get("/v1/products/" + quote(product.encode("utf-8", "surrogatepass"), safe="%/") + suffix)
    answered(resp, allowed=(200, 308, 400, 404, 405))  # 308: werkzeug merges a doubled slash by redirecting


@PROPERTY
@given(model_id=st.one_of(hostile.unicode_text, hostile.query_numbers),
       image_hash=st.text(alphabet="0123456789abcdefABCDEF%", max_size=70))  # fmt: skip
def test_report_and_thumbnail_parameters(client, model_id, image_hash):
    answered(client.get("/v1/judgments/report", query_string={"model_id": model_id}), allowed=(200, 400))
    answered(client.get(f"/v1/thumbnails/{image_hash}"), allowed=(400, 404, 405))
