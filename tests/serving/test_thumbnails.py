"""Thumbnails through the Flask app, over the session catalog (whose CLI ingest stored them): the
``thumbnail_url`` in every product answer, GET /v1/thumbnails/<hash> and /v1/products/<id>/thumbnail
(bytes, caching headers, 304, JSON errors), open to <img> tags when API keys are on, 503 when the
store cannot be read."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pydantic import SecretStr

from looksync.catalog.thumbnails import ThumbnailStore
from tests.serving.conftest import b64

KEY = "thumb-key"
NO_SUCH_HASH = "0" * 64


def _ok(resp):
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _error(resp, status: int, code: str) -> str:
    assert resp.status_code == status and resp.mimetype == "application/json", (resp.status_code, resp.data[:200])
    assert resp.get_json()["error"]["code"] == code
    return resp.get_json()["error"]["message"]


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
def product(client, built_catalog):
    """One catalog product as the product endpoint answers it."""
    truth = next(iter(built_catalog.ground_truth.values()))
    return _ok(client.get(f"/v1/products/{sorted(truth['products'].values())[0]}"))["product"]


def test_every_product_answer_carries_its_thumbnail_url(client, product, look):
    assert product["thumbnail_url"] == f"/v1/thumbnails/{product['image_hash']}"
    assert product["image_urls"]  # the existing fields stay as they were

    _, data, truth = look
    text = _ok(client.post("/v1/search", json={"text": "navy t-shirt", "market": "US", "k": 3}))
    looked = _ok(client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"], "k": 2,
                                                       "layers": sorted(truth["products"])}))  # fmt: skip
    cached = _ok(client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"], "k": 2,
                                                       "layers": sorted(truth["products"])}))  # fmt: skip
    similar = _ok(client.get(f"/v1/products/{product['product_id']}/similar?k=3"))
    assert cached["cache"] == "hit"
    answers = [text["products"], similar["products"], *(layer["products"] for r in (looked, cached) for layer in r["layers"])]
    products = [p for answer in answers for p in answer]
    assert len(products) >= 14
    for p in products:
        assert p["image_url"].startswith("http") and len(p["image_hash"]) == 64
        assert p["thumbnail_url"] == f"/v1/thumbnails/{p['image_hash']}"
    assert [p["thumbnail_url"] for layer in looked["layers"] for p in layer["products"]] == [
        p["thumbnail_url"] for layer in cached["layers"] for p in layer["products"]
    ]


def test_thumbnail_by_hash_is_an_immutable_jpeg(client, product, built_catalog):
    resp = client.get(product["thumbnail_url"])
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(resp.data))
    assert image.format == "JPEG" and max(image.size) <= 256
    assert resp.data == ThumbnailStore.from_settings(built_catalog.settings).get(product["image_hash"])
    assert resp.headers["ETag"] == f'"{product["image_hash"]}"'
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"

    again = client.get(product["thumbnail_url"], headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert client.head(product["thumbnail_url"]).status_code == 200


def test_thumbnail_by_product(client, product):
    resp = client.get(f"/v1/products/{product['product_id']}/thumbnail")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.data == client.get(product["thumbnail_url"]).data
    assert resp.headers["ETag"] == f'"{product["image_hash"]}"' and resp.headers["Cache-Control"] == "no-cache"
    # the product's image changes -> another hash -> the old ETag no longer matches
    assert client.get(f"/v1/products/{product['product_id']}/thumbnail", headers={"If-None-Match": '"old"'}).status_code == 200


def test_missing_thumbnails_and_bad_hashes_are_json_errors(client):
    message = _error(client.get(f"/v1/thumbnails/{NO_SUCH_HASH}"), 404, "thumbnail_not_found")
    assert NO_SUCH_HASH in message
    assert "64 lowercase hex" in _error(client.get("/v1/thumbnails/not-a-hash"), 400, "invalid_request")
    _error(client.get(f"/v1/thumbnails/{'AB' * 32}"), 400, "invalid_request")
    _error(client.get("/v1/products/no-such-product/thumbnail"), 404, "not_found")


def test_a_product_whose_thumbnail_was_never_made(make_client, product, built_catalog, tmp_path):
    """A catalog ingested before thumbnails (or whose thumbnail failed): thumbnail_url is still given,
    answers 404, and the pages fall back to image_url."""
    index_path = built_catalog.settings.resolved_index_path
    client = make_client(data_dir=tmp_path / "no-thumbnails", index_path=index_path)
    body = _ok(client.get(f"/v1/products/{product['product_id']}"))
    assert body["product"]["thumbnail_url"] == product["thumbnail_url"]
    _error(client.get(product["thumbnail_url"]), 404, "thumbnail_not_found")
    _error(client.get(f"/v1/products/{product['product_id']}/thumbnail"), 404, "thumbnail_not_found")


def test_with_api_keys_thumbnails_by_hash_stay_open(make_client, product):
    client = make_client(api_keys=[SecretStr(KEY)])
    resp = client.get(product["thumbnail_url"])  # what an <img> tag sends: no X-API-Key
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    _error(client.get(f"/v1/thumbnails/{NO_SUCH_HASH}"), 404, "thumbnail_not_found")
    # the product route reads the index: it needs the key like every data call
    _error(client.get(f"/v1/products/{product['product_id']}/thumbnail"), 401, "unauthorized")
    keyed = client.get(f"/v1/products/{product['product_id']}/thumbnail", headers={"X-API-Key": KEY})
    assert keyed.status_code == 200 and keyed.data == resp.data
    _error(client.get(f"/v1/products/{product['product_id']}"), 401, "unauthorized")
    assert _ok(client.get(f"/v1/products/{product['product_id']}", headers={"X-API-Key": KEY}))["product"]["thumbnail_url"]


def test_an_unreachable_thumbnail_store_is_a_503(make_client, product, built_catalog, caplog, monkeypatch):
    from tests.serving.llm_server import closed_port_url

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "looksync-test")  # credentials, so it is the connection that fails
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "looksync-test")
    endpoint = closed_port_url().removesuffix("/v1")
    client = make_client(s3_bucket="thumbs", s3_endpoint_url=endpoint, index_path=built_catalog.settings.resolved_index_path)
    with caplog.at_level("ERROR", logger="serving.thumbnails"):
        message = _error(client.get(product["thumbnail_url"]), 503, "thumbnails_unavailable")
    assert "see the service log" in message and endpoint not in message
    assert any("s3://thumbs/" in r.getMessage() and "Could not connect" in r.getMessage() for r in caplog.records)
