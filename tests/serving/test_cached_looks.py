"""Look cache hits sent from the worker's rendered answers (serving/cached_looks.py): a hit answers exactly
what the miss answered (apart from ``cache`` and ``timings_ms``) without parsing the stored answer again,
follows the stored bytes when they change under the same key, carries the request's application root in
its thumbnail URLs, and never lets one shopper's personalised order reach another answer."""

from __future__ import annotations

import json

import pytest

from looksync.search.cache import MemoryCache
from looksync.search.engine import CachedLookAnswer
from tests.serving.conftest import b64


def _body(look, **params):
    _, data, truth = look
    return {"image_base64": b64(data), "market": truth["market"], "k": 3, "layers": sorted(truth["products"]), **params}


def _post(client, body, **kwargs):
    resp = client.post("/v1/looks/search", json=body, **kwargs)
    assert resp.status_code == 200, resp.get_json()
    return resp


def _ordered(resp) -> list:
    """The answer as nested (key, value) pairs, so key order counts too; cache and timings left out."""
    pairs = json.loads(resp.get_data(), object_pairs_hook=list)
    return [(k, v) for k, v in pairs if k not in ("cache", "timings_ms")]


def _layer_ids(resp) -> dict[str, list[str]]:
    return {layer["layer"]: [p["product_id"] for p in layer["products"]] for layer in resp.get_json()["layers"]}


@pytest.fixture
def counted_parses(monkeypatch):
    """How many times a stored look answer was parsed."""
    calls = []
    real = CachedLookAnswer.response
    monkeypatch.setattr(CachedLookAnswer, "response", lambda self: calls.append(self.key) or real(self))
    return calls


@pytest.mark.parametrize("extra", ["plain", "outfit", "rerank"])
def test_a_hit_answers_what_the_miss_answered_without_parsing_it_again(make_client, look, counted_parses, extra):
    from looksync.catalog.taxonomy import get_taxonomy

    client = make_client(None, cache=MemoryCache())
    currency = get_taxonomy().currency_of(look[2]["market"])
    body = _body(look, **{"plain": {}, "outfit": {"outfit": {"budget": 400.0, "currency": currency}},
                          "rerank": {"rerank": "local"}}[extra])  # fmt: skip
    miss = _post(client, body)
    assert miss.get_json()["cache"] == "miss" and miss.get_json()["degraded"] == []
    hits = [_post(client, body) for _ in range(3)]
    for hit in hits:
        answer = hit.get_json()
        assert answer["cache"] == "hit" and set(answer["timings_ms"]) == {"cache"}
        assert _ordered(hit) == _ordered(miss)  # same fields, same order, same values, thumbnail URLs included
        assert hit.mimetype == miss.mimetype == "application/json" and hit.get_data().endswith(b"}\n")
    assert len(counted_parses) == 1  # rendered once, then sent as bytes
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'looksync_stage_seconds_count{endpoint="/v1/looks/search",stage="cache"} 4.0' in metrics


def test_a_hit_follows_the_stored_bytes_when_they_change_under_the_same_key(make_client, look, counted_parses):
    cache = MemoryCache()
    client = make_client(None, cache=cache)
    body = _body(look)
    _post(client, body)
    assert _post(client, body).get_json()["cache"] == "hit"
    (key,) = [k for k in cache._items if k.startswith("look:")]
    stored = json.loads(cache.get(key))
    stored["layers"] = stored["layers"][:1]  # another worker stored another answer under this key
    cache.set(key, json.dumps(stored, separators=(",", ":")).encode())
    changed = _post(client, body).get_json()
    assert changed["cache"] == "hit" and [layer["layer"] for layer in changed["layers"]] == [stored["layers"][0]["layer"]]
    assert len(counted_parses) == 2


def test_thumbnail_urls_of_a_hit_carry_the_request_application_root(make_client, look):
    client = make_client(None, cache=MemoryCache())
    body = _body(look)
    _post(client, body)
    at_root = _post(client, body).get_json()
    mounted = _post(client, body, base_url="http://localhost/shop-api").get_json()  # SCRIPT_NAME /shop-api
    urls = [p["thumbnail_url"] for layer in at_root["layers"] for p in layer["products"]]
    assert urls and all(u.startswith("/v1/thumbnails/") for u in urls)
    assert [p["thumbnail_url"] for layer in mounted["layers"] for p in layer["products"]] == ["/shop-api" + u for u in urls]
    assert mounted["cache"] == "hit"


def test_personalised_answers_never_reach_other_shoppers_through_the_cache(make_client, look):
    client = make_client(None, cache=MemoryCache(), shopper_max_boost=0.5)
    body = _body(look)
    plain_miss = _post(client, body)
    ranked = plain_miss.get_json()["layers"][0]["products"]
    favourite = ranked[-1]  # the last product of the first layer becomes the shopper's taste
    events = [{"shopper_id": "shopper-c1", "product_id": favourite["product_id"], "type": kind,
               "size": (favourite["sizes"] or [None])[0]} for kind in ("view", "click", "add_to_cart", "purchase")]  # fmt: skip
    assert client.post("/v1/events", json={"events": events}).status_code == 201

    personal = _post(client, {**body, "shopper_id": "shopper-c1"}).get_json()
    assert personal["cache"] == "hit" and personal["preferences"]["shopper_id"] == "shopper-c1"
    assert personal["preferences"]["applied"]
    reordered = [p["product_id"] for p in personal["layers"][0]["products"]]
    assert reordered.index(favourite["product_id"]) < len(ranked) - 1  # the shopper's taste moved it up
    for _ in range(2):  # an anonymous hit and another shopper's hit keep the unpersonalised order
        anonymous = _post(client, body)
        assert _ordered(anonymous) == _ordered(plain_miss) and "preferences" not in anonymous.get_json()
        other = _post(client, {**body, "shopper_id": "shopper-c2"}).get_json()
        assert other["preferences"] == {"shopper_id": "shopper-c2", "applied": [], "note": "no profile yet"}
        assert _layer_ids(anonymous) == {layer["layer"]: [p["product_id"] for p in layer["products"]]
                                         for layer in other["layers"]}  # fmt: skip
        again = _post(client, {**body, "shopper_id": "shopper-c1"}).get_json()
        assert again["layers"] == personal["layers"]


def test_every_filter_is_in_the_cache_key(make_client, look):
    client = make_client(None, cache=MemoryCache())
    body = _body(look)
    assert _post(client, body).get_json()["cache"] == "miss"
    for filters in ({"price_max": 1e6}, {"price_max": 1e6, "in_stock": True}, {"sizes": ["M"]}, {"brands_exclude": ["x"]}):
        assert _post(client, {**body, "filters": filters}).get_json()["cache"] == "miss", filters
        assert _post(client, {**body, "filters": filters}).get_json()["cache"] == "hit", filters
    assert _post(client, body).get_json()["cache"] == "hit"
