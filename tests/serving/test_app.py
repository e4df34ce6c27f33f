"""The Flask app through its test client: auth, JSON bodies, readiness, model mismatch."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from looksync.index.factory import open_index
from looksync.search.cache import MemoryCache
from looksync.search.engine import SearchEngine
from serving import create_app


@pytest.fixture(scope="module")
def engine(built_catalog):
    return SearchEngine(built_catalog.settings, built_catalog.encoder, open_index(built_catalog.settings), MemoryCache())


def _look_b64(built_catalog) -> tuple[str, dict]:
    look_id, truth = sorted(built_catalog.ground_truth.items())[0]
    data = (Path(built_catalog.manifest.looks_dir) / f"{look_id}.png").read_bytes()
    return base64.b64encode(data).decode(), truth


def test_json_base64_look_with_filters(built_catalog, engine):
    client = create_app(built_catalog.settings, engine).test_client()
    image, truth = _look_b64(built_catalog)
    layers = sorted(truth["products"])
    resp = client.post(
        "/v1/looks/search",
        json={"image_base64": image, "market": truth["market"], "layers": layers, "k": 4, "filters": {"in_stock": True}},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert [layer["layer"] for layer in body["layers"]] == layers
    for layer in body["layers"]:
        assert all(p["in_stock"] and p["market"] == truth["market"] for p in layer["products"])
    assert resp.headers["X-Request-Id"]


def test_bad_base64_is_a_400(built_catalog, engine):
    client = create_app(built_catalog.settings, engine).test_client()
    resp = client.post("/v1/looks/search", json={"image_base64": "***"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_image"


def test_api_keys_guard_everything_but_health(built_catalog, engine):
    settings = built_catalog.settings.model_copy(update={"api_keys": [__import__("pydantic").SecretStr("s3cret")]})
    client = create_app(settings, engine).test_client()
    image, _ = _look_b64(built_catalog)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert (ready.get_json()["clip_runtime"], ready.get_json()["clip_runtime_degraded"]) == ("torch", [])
    denied = client.post("/v1/looks/search", json={"image_base64": image}, headers={"X-API-Key": "wrong"})
    assert denied.status_code == 401 and denied.get_json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/looks/search", json={"image_base64": image}).status_code == 401
    ok = client.post("/v1/looks/search", json={"image_base64": image, "k": 1}, headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200


def test_oversized_request_is_413(built_catalog, engine):
    settings = built_catalog.settings.model_copy(update={"max_upload_bytes": 1000})
    client = create_app(settings, engine).test_client()
    image, _ = _look_b64(built_catalog)
    resp = client.post("/v1/looks/search", json={"image_base64": image})
    assert resp.status_code == 413 and resp.get_json()["error"]["message"]


def test_not_ready_without_a_live_index_or_with_another_model(built_catalog, tmp_path):
    from embeddings import load_encoder

    empty = built_catalog.settings.model_copy(update={"data_dir": tmp_path, "index_path": None})
    client = create_app(empty, SearchEngine(empty, built_catalog.encoder, open_index(empty), MemoryCache())).test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 503 and "no live index version" in resp.get_json()["reason"]
    image, _ = _look_b64(built_catalog)
    resp = client.post("/v1/looks/search", json={"image_base64": image})
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "not_ready"

    other = load_encoder("LookSync-Tiny", "random:99", device="cpu")
    engine = SearchEngine(built_catalog.settings, other, open_index(built_catalog.settings), MemoryCache())
    resp = create_app(built_catalog.settings, engine).test_client().get("/readyz")
    assert resp.status_code == 503
    assert other.model_id in resp.get_json()["reason"] and built_catalog.encoder.model_id in resp.get_json()["reason"]


def test_text_embeddings_are_cached_per_model(built_catalog, engine, monkeypatch):
    calls = []
    original = engine.encoder.encode_texts

    def counting(texts, *args, **kwargs):
        calls.append(list(texts))
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(engine.encoder, "encode_texts", counting)
    degraded: list[str] = []
    first = engine.embed_text("women's navy striped t-shirt", degraded)
    second = engine.embed_text("women's navy striped t-shirt", degraded)
    assert calls == [["women's navy striped t-shirt"]]
    assert (first == second).all() and not degraded
    assert json.dumps(degraded) == "[]"


def test_redis_down_degrades_visibly_and_still_answers(built_catalog):
    from looksync.search.cache import RedisCache

    engine = SearchEngine(
        built_catalog.settings, built_catalog.encoder, open_index(built_catalog.settings), RedisCache("redis://127.0.0.1:1/0")
    )
    client = create_app(built_catalog.settings, engine).test_client()
    image, truth = _look_b64(built_catalog)
    resp = client.post("/v1/looks/search", json={"image_base64": image, "layers": sorted(truth["products"]), "k": 2})
    assert resp.status_code == 200
    body = resp.get_json()
    assert any(note.startswith("cache_unavailable") for note in body["degraded"])
    assert all(layer["products"] for layer in body["layers"])
