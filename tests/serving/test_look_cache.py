"""Whole look responses cached in real Redis (DB 6): hit, parameters in the key, invalidation by a live
index version swap, and Redis stopped mid-test (the service answers without cache and says so)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
import redis

from looksync.index.factory import open_index
from looksync.pipelines.reindex import build_version, swap
from looksync.search.cache import RedisCache
from tests.serving.conftest import b64
from tests.serving.llm_server import closed_port_url

REDIS_URL = "redis://127.0.0.1:6379/6"


def _cache() -> RedisCache:
    return RedisCache(REDIS_URL, ttl_s=60, prefix=f"test-{uuid.uuid4().hex}:")


def _post(client, look, **params):
    _, data, truth = look
    body = {"image_base64": b64(data), "market": truth["market"], "k": 3, "layers": ["topwear", "footwear"], **params}
    resp = client.post("/v1/looks/search", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _products(body):
    return {layer["layer"]: [p["product_id"] for p in layer["products"]] for layer in body["layers"]}


def test_look_response_cache_hit_and_parameters_in_the_key(make_client, look):
    cache = _cache()
    client = make_client(None, cache=cache)
    first = _post(client, look)
    assert first["cache"] == "miss" and first["degraded"] == []
    second = _post(client, look)
    assert second["cache"] == "hit" and set(second["timings_ms"]) == {"cache"}
    assert _products(second) == _products(first) and second["index_version"] == first["index_version"]
    assert _post(client, look, k=2)["cache"] == "miss"  # other parameters, other key
    keys = cache._client.keys(cache.prefix + "look:*")
    assert len(keys) == 2 and 0 < cache._client.ttl(keys[0]) <= built_ttl(client)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'looksync_cache_requests_total{cache="look",result="hit"} 1.0' in metrics
    assert 'looksync_cache_hit_ratio{cache="look"}' in metrics


def built_ttl(client) -> int:
    return client.application.extensions["looksync.settings"].look_cache_ttl_s


def test_degraded_answers_are_not_cached(make_client, look):
    client = make_client(closed_port_url(), cache=_cache())
    first = _post(client, look)
    assert first["degraded"] and first["cache"] == "miss"
    assert _post(client, look)["cache"] == "miss"


def test_a_live_version_swap_invalidates_cached_looks(make_client, built_catalog, tmp_path, look):
    data_dir = tmp_path / "data"
    shutil.copytree(built_catalog.settings.data_dir, data_dir)
    settings = built_catalog.settings.model_copy(update={"data_dir": data_dir})
    index = open_index(settings)
    client = make_client(None, cache=_cache(), index=index, data_dir=data_dir)
    before = _post(client, look)
    assert _post(client, look)["cache"] == "hit"

    report = build_version(settings, index, built_catalog.encoder.model_id)
    swap(index, report.version)
    after = _post(client, look)
    assert after["cache"] == "miss" and after["index_version"] == report.version != before["index_version"]
    assert _post(client, look)["cache"] == "hit"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of our own on a free loopback port, so the test can stop it."""
    from looksync.demo import free_port

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield port, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_stopped_mid_test_degrades_and_still_answers(make_client, look, own_redis):
    port, proc = own_redis
    client = make_client(None, cache=RedisCache(f"redis://127.0.0.1:{port}/6", ttl_s=60))
    assert _post(client, look)["cache"] == "miss"
    cached = _post(client, look)
    assert cached["cache"] == "hit"

    proc.terminate()
    proc.wait(timeout=10)
    down = _post(client, look)
    assert down["cache"] == "unavailable"
    assert any(n.startswith("cache_unavailable") for n in down["degraded"])
    assert _products(down) == _products(cached)  # same answer, computed without the cache
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'looksync_degraded_total{endpoint="/v1/looks/search",reason="cache_unavailable"}' in metrics
    assert 'looksync_cache_requests_total{cache="look",result="error"} 1.0' in metrics


def test_a_cache_hit_never_decodes_the_look(make_client, look, monkeypatch):
    """The response cache is keyed by the sha256 of the uploaded bytes: a hit answers without decoding
    the pixels (the costliest step of a hit); a miss decodes once; a corrupt upload is still a 400."""
    import serving.inputs
    from looksync.search.cache import MemoryCache

    decoded = []
    real_decode = serving.inputs.decode_image
    monkeypatch.setattr(serving.inputs, "decode_image", lambda data: decoded.append(len(data)) or real_decode(data))
    client = make_client(None, cache=MemoryCache())
    assert _post(client, look)["cache"] == "miss" and len(decoded) == 1
    assert _post(client, look)["cache"] == "hit" and len(decoded) == 1
    assert _post(client, look, k=2)["cache"] == "miss" and len(decoded) == 2
    _, data, truth = look
    truncated = data[: len(data) // 2]  # the header checks pass, the decode fails: on a miss, a 400
    resp = client.post("/v1/looks/search", json={"image_base64": b64(truncated), "market": truth["market"]})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] in ("image_not_image", "invalid_image")
