"""Shopper events and profiles through the service: a bad batch stores nothing, the profile shows the
learned tastes, searches with shopper_id are reordered within their filters and say so, DELETE forgets
the shopper, and a profile store that is down is a 503 for events but only a degraded note for search."""

from __future__ import annotations

import json

import pytest

from tests.serving.conftest import b64


def _client(built_catalog, zeroshot, **overrides):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    settings = built_catalog.settings.model_copy(update=overrides)
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache(), zeroshot=zeroshot)
    return create_app(settings, engine).test_client()


@pytest.fixture(scope="module")
def client(built_catalog, zeroshot):
    return _client(built_catalog, zeroshot, shopper_max_boost=0.5)  # large, so the reordering is plain to see


def _text_search(client, **extra):
    resp = client.post("/v1/search", json={"text": "t-shirt", "market": "US", "k": 10, **extra})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_a_batch_with_one_bad_event_stores_nothing(client):
    products = _text_search(client)["products"]
    good = {"shopper_id": "shopper-bad-batch", "product_id": products[0]["product_id"], "type": "purchase"}
    for bad, field in [
        ({**good, "product_id": "no-such-product"}, "events[1].product_id"),
        ({**good, "type": "like"}, "events.1.type"),
        ({**good, "at": float("nan")}, None),
        ({**good, "shopper_id": ""}, "events.1.shopper_id"),
    ]:
        # the body as the stdlib writes it (NaN as the literal NaN): the app's own JSON provider would send null
        resp = client.post("/v1/events", data=json.dumps({"events": [good, bad]}), content_type="application/json")
        assert resp.status_code == 400, (bad, resp.get_json())
        if field:
            assert resp.get_json()["error"]["field"].replace("[", ".").replace("]", "") == field.replace("[", ".").replace("]", "")
        assert client.get("/v1/shoppers/shopper-bad-batch/profile").status_code == 404
    assert client.post("/v1/events", json={"events": []}).status_code == 400
    assert client.post("/v1/events", data="x", content_type="text/plain").status_code == 415


def test_learned_tastes_reorder_results_within_the_filters_and_forgetting_removes_them(client):
    baseline = _text_search(client)["products"]
    favourite = baseline[-1]  # the last result's brand, size and price band become the shopper's taste
    events = [{"shopper_id": "shopper-1", "product_id": favourite["product_id"], "type": kind,
               "size": (favourite["sizes"] or [None])[0]} for kind in ("view", "click", "add_to_cart", "purchase")]  # fmt: skip
    assert client.post("/v1/events", json={"events": events}).status_code == 201

    profile = client.get("/v1/shoppers/shopper-1/profile").get_json()
    assert profile["brands"] == {favourite["brand"]: pytest.approx(15.0, rel=1e-3)}
    assert profile["events"] == 4 and profile["recent_events"][0]["type"] == "purchase"

    body = _text_search(client, shopper_id="shopper-1")
    assert body["preferences"]["shopper_id"] == "shopper-1" and "brand" in body["preferences"]["applied"]
    ranked = [p["product_id"] for p in body["products"]]
    assert sorted(ranked) == sorted(p["product_id"] for p in baseline)  # the same products: only reordered
    assert ranked.index(favourite["product_id"]) < len(baseline) - 1  # the favourite moved up
    assert all(0 <= p["preference_boost"] <= 0.5 for p in body["products"])

    brand = favourite["brand"]  # an explicit filter wins over the preference
    excluded = _text_search(client, shopper_id="shopper-1", filters={"brands_exclude": [brand]})
    assert all(p["brand"] != brand for p in excluded["products"])

    erased = client.delete("/v1/shoppers/shopper-1/profile")
    assert erased.status_code == 200 and erased.get_json()["erased"] is True
    assert client.get("/v1/shoppers/shopper-1/profile").status_code == 404
    after = _text_search(client, shopper_id="shopper-1")
    assert after["preferences"]["applied"] == [] and [p["product_id"] for p in after["products"]] == [
        p["product_id"] for p in baseline
    ]


def test_look_search_uses_the_profile_too(client, look):
    _, data, truth = look
    body = client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"],
                                                 "layers": sorted(truth["products"]), "shopper_id": "nobody"}).get_json()  # fmt: skip
    assert body["preferences"] == {"shopper_id": "nobody", "applied": [], "note": "no profile yet"}


def test_a_profile_store_that_is_down(built_catalog, zeroshot):
    client = _client(built_catalog, zeroshot, redis_url="redis://127.0.0.1:1/0")
    products = client.post("/v1/search", json={"text": "t-shirt", "k": 3}).get_json()["products"]
    resp = client.post("/v1/events", json={"events": [{"shopper_id": "s", "product_id": products[0]["product_id"], "type": "view"}]})
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "profiles_unavailable"
    body = client.post("/v1/search", json={"text": "t-shirt", "k": 3, "shopper_id": "s"}).get_json()
    assert [p["product_id"] for p in body["products"]] == [p["product_id"] for p in products]
    assert any(note.startswith("profiles_unavailable") for note in body["degraded"])
