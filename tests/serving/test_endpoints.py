"""Every endpoint through the Flask app: text / image / image+text search, products and similar
products, image URLs under the fetch guards, filters honoured, uploads checked, metrics, OpenAPI,
docs, and structured logs with the request id."""

from __future__ import annotations

import io
import json
import logging
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from looksync.catalog.taxonomy import get_taxonomy
from looksync.index import SearchFilters
from serving.logs import JsonFormatter
from tests.serving.conftest import b64


@pytest.fixture(scope="module")
def catalog_products(built_catalog):
    from looksync.index.factory import open_index

    index = open_index(built_catalog.settings)
    hits = index.search(index.vectors([next(iter(built_catalog.ground_truth.values()))["products"]["footwear"]]).popitem()[1], k=200)
    return [h.product for h in hits]


def _ok(resp):
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_text_search_with_filters(client, catalog_products):
    brand = catalog_products[0]["brand"]
    body = _ok(client.post("/v1/search", json={"text": "navy t-shirt", "market": "US", "k": 5,
                                               "filters": {"brands_exclude": [brand], "in_stock": True}}))
    assert body["mode"] == "text" and body["products"]
    f = SearchFilters(market="US", brands_exclude=[brand], in_stock=True)
    assert all(f.matches(p) for p in body["products"])


def test_image_and_image_plus_text_search(client, look):
    _, data, truth = look
    image_only = _ok(client.post("/v1/search", json={"image_base64": b64(data), "market": truth["market"], "k": 5}))
    assert image_only["mode"] == "image" and len(image_only["products"]) == 5
    modified = _ok(client.post("/v1/search", data={"params": json.dumps({"market": truth["market"], "k": 5}),
                                                   "text": "but in navy",
                                                   "image": (io.BytesIO(data), "look.png")}))
    assert modified["mode"] == "image+text" and modified["text"] == "but in navy"
    assert [p["score"] for p in modified["products"]] != [p["score"] for p in image_only["products"]]
    assert all(p["market"] == truth["market"] for p in modified["products"])


def test_search_needs_text_or_image(client):
    resp = client.post("/v1/search", json={"market": "US"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_request"


def test_product_and_not_found(client, catalog_products):
    pid = catalog_products[0]["product_id"]
    body = _ok(client.get(f"/v1/products/{pid}"))
    assert body["product"]["product_id"] == pid and body["index_version"]
    resp = client.get("/v1/products/no-such-product")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get("/v1/products/no-such-product/similar").status_code == 404


def test_similar_products_same_layer_filters_and_not_itself(client, catalog_products):
    product = catalog_products[0]
    body = _ok(client.get(f"/v1/products/{product['product_id']}/similar",
                          query_string={"k": 4, "market": product["market"], "in_stock": "true"}))
    assert body["products"] and len(body["products"]) <= 4
    for p in body["products"]:
        assert p["product_id"] != product["product_id"] and p["layer"] == product["layer"]
        assert p["market"] == product["market"] and p["in_stock"] is True
    bad = client.get(f"/v1/products/{product['product_id']}/similar", query_string={"price_min": "cheap"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "filters",
    [
        {"price_min": 20, "price_max": 60},
        {"sizes": ["M"]},
        {"in_stock": False},
        {"brands_include": ["__BRAND__"]},
    ],
)
def test_look_search_honours_every_filter(client, look, catalog_products, filters):
    _, data, truth = look
    filters = {k: ([catalog_products[0]["brand"]] if v == ["__BRAND__"] else v) for k, v in filters.items()}
    body = _ok(client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"],
                                                     "k": 5, "filters": filters, "rerank": "local"}))
    check = SearchFilters(market=truth["market"], **filters)
    assert body["layers"]
    for layer in body["layers"]:
        assert all(check.matches(p) for p in layer["products"]), (filters, layer["products"])
        assert all(p["category"] in get_taxonomy().categories_of(layer["layer"]) for p in layer["products"])


@pytest.fixture
def image_server(built_catalog):
    handler = partial(SimpleHTTPRequestHandler, directory=str(built_catalog.manifest.looks_dir))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_url_input_uses_the_fetch_guards(client, make_client, image_server, look):
    look_id, _, truth = look
    url = f"{image_server}/{look_id}.png"
    body = _ok(client.post("/v1/looks/search", json={"image_url": url, "market": truth["market"], "k": 2}))
    assert body["layers"]
    assert _ok(client.post("/v1/search", json={"image_url": url, "k": 2}))["mode"] == "image"
    strict = make_client(None, fetch_allow_private=False)  # loopback is refused by default
    resp = strict.post("/v1/looks/search", json={"image_url": url})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "image_blocked"
    resp = client.post("/v1/looks/search", json={"image_url": f"{image_server}/missing.png"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "image_unreachable"
    # malformed addresses are the client's mistake (400 naming the problem), on every route that fetches
    for bad in ("http://127.0.0.1:99999/a.png", "http://127.0.0.1:x/a.png", "http://[::1/a.png",
                "http://" + "a" * 64 + ".example/a.png", "http://a..example/a.png", "gopher://example.com/"):  # fmt: skip
        for route in ("/v1/looks/search", "/v1/search"):
            resp = strict.post(route, json={"image_url": bad})
            assert resp.status_code == 400, (route, bad, resp.get_data(as_text=True))
            assert resp.get_json()["error"]["code"] == "image_url_invalid"
    for spelling in ("http://[::ffff:127.0.0.1]/a.png", "http://[64:ff9b::7f00:1]/a.png", "http://[2002:7f00:1::]/a.png",
                     "http://[::127.0.0.1]/a.png", "http://[ff02::1]/a.png", "http://224.0.0.1/a.png"):  # fmt: skip
        resp = strict.post("/v1/looks/search", json={"image_url": spelling})
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "image_blocked", spelling


def _png(size, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_bomb_non_image_and_oversized(client, make_client):
    bomb = _png((10_000, 10_000), mode="1")  # 100 megapixels in a few kilobytes: over the 25M cap
    assert len(bomb) < 100_000
    resp = client.post("/v1/looks/search", data={"image": (io.BytesIO(bomb), "bomb.png")})
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "image_too_large"
    assert "pixels" in resp.get_json()["error"]["message"]
    # past PIL's own bomb limit too: the project's cap is checked on the header first, so the reason is the same
    huge = _png((20_000, 20_000), mode="1")
    resp = client.post("/v1/looks/search", data={"image": (io.BytesIO(huge), "bomb.png")})
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "image_too_large"
    assert "20000x20000" in resp.get_json()["error"]["message"]
    resp = client.post("/v1/search", data={"image": (io.BytesIO(b"GIF89a not really"), "x.gif")})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "image_not_image"
    small = make_client(None, max_upload_bytes=2000)
    resp = small.post("/v1/looks/search", data={"image": (io.BytesIO(_png((300, 300)) + b"\0" * 4000), "big.png")})
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "request_entity_too_large"


def test_metrics_count_requests_stages_and_degraded(make_client, look):
    from tests.serving.llm_server import closed_port_url

    c = make_client(closed_port_url())
    _, data, _ = look
    _ok(c.post("/v1/looks/search", json={"image_base64": b64(data), "k": 2, "layers": ["topwear"]}))
    c.get("/v1/products/nope")
    text = c.get("/metrics").get_data(as_text=True)
    assert 'looksync_http_requests_total{endpoint="/v1/looks/search",method="POST",status="200"} 1.0' in text
    assert 'looksync_http_requests_total{endpoint="/v1/products/<product_id>",method="GET",status="404"} 1.0' in text
    for stage in ("query_generation", "text_embedding", "knn", "rerank"):
        assert f'looksync_stage_seconds_count{{endpoint="/v1/looks/search",stage="{stage}"}} 1.0' in text
    assert 'looksync_degraded_total{endpoint="/v1/looks/search",reason="llm_unavailable"} 1.0' in text
    assert 'looksync_http_request_seconds_bucket{endpoint="/v1/looks/search"' in text
    assert "looksync_encoder_forward_wait_seconds_total " in text  # the per-process forward queue, exported


def test_openapi_and_docs_page(client):
    doc = _ok(client.get("/openapi.json"))
    assert doc["openapi"].startswith("3.")
    assert {"/v1/looks/search", "/v1/search", "/v1/products/{product_id}", "/v1/products/{product_id}/similar",
            "/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "POST /v1/looks/search" in page.get_data(as_text=True)


def test_openapi_lists_every_json_endpoint_the_app_serves(client):
    """Drift check: an endpoint added to a blueprint must be documented (pages and static files are not API)."""
    import re

    doc = _ok(client.get("/openapi.json"))
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    pages = {"/openapi.json", "/docs", "/demo", "/judge", "/judge/report"}
    served = {
        (re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in client.application.url_map.iter_rules()
        if rule.rule not in pages and not rule.rule.startswith("/static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


def test_structured_log_line_carries_the_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="looksync.service"):
        resp = client.get("/v1/products/nope", headers={"X-Request-Id": "req-abc-123"})
    assert resp.headers["X-Request-Id"] == "req-abc-123"
    (record,) = [r for r in caplog.records if r.name == "looksync.service" and r.getMessage() == "request"]
    line = json.loads(JsonFormatter().format(record))
    assert line["status"] == 404 and line["endpoint"] == "/v1/products/<product_id>" and line["error"] == "not_found"
    with client.application.test_request_context("/x"):
        from flask import g

        g.request_id = "in-context"
        other = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "hello", "name": "looksync.search.engine"})))
    assert other["request_id"] == "in-context" and other["message"] == "hello"
    injected = client.get("/healthz", headers={"X-Request-Id": "bad id {json}"})
    assert injected.headers["X-Request-Id"] != "bad id {json}" and len(injected.headers["X-Request-Id"]) == 16
