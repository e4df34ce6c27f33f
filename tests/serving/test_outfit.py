"""POST /v1/looks/search with ``outfit``: one in-stock product per layer within the budget, the best
summed score, the cheapest outfit when nothing fits, and clear 400s for a bad outfit."""

from __future__ import annotations

import itertools

import pytest

from looksync.catalog.taxonomy import get_taxonomy
from tests.serving.conftest import b64


def _search(client, look, **outfit):
    _, data, truth = look
    market = truth["market"]
    body = {"image_base64": b64(data), "market": market, "gender": truth.get("gender"), "k": 4,
            "layers": sorted(truth["products"]), "rerank": "local"}
    if outfit:
        body["outfit"] = outfit
    return client.post("/v1/looks/search", json=body), market


def test_the_outfit_fits_the_budget_and_beats_every_outfit_from_the_shown_lists(client, look):
    resp, market = _search(client, look)
    currency = get_taxonomy().currency_of(market)
    lists = [[p for p in layer["products"] if p["in_stock"]] for layer in resp.get_json()["layers"]]
    cheapest = sum(min(p["price"] for p in products) for products in lists)
    budget = round(cheapest * 1.5, 2)

    resp, _ = _search(client, look, budget=budget, currency=currency)

    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    outfit = body["outfit"]
    assert outfit["within_budget"] and outfit["missing_layers"] == [] and outfit["note"] is None
    assert [i["layer"] for i in outfit["items"]] == [layer["layer"] for layer in body["layers"]]
    assert all(i["in_stock"] and i["currency"] == currency and i["market"] == market for i in outfit["items"])
    assert outfit["total"] == pytest.approx(sum(i["price"] for i in outfit["items"])) and outfit["total"] <= budget
    assert outfit["score"] == pytest.approx(sum(i["score"] for i in outfit["items"]), abs=1e-5)
    assert all(i["thumbnail_url"] for i in outfit["items"])
    # the solver searched every layer's candidates, a superset of the shown lists: no outfit from them is better
    shown_best = max(
        sum(p["rerank_score"] if "rerank_score" in p else p["score"] for p in combo)
        for combo in itertools.product(*lists)
        if sum(p["price"] for p in combo) <= budget
    )
    assert outfit["score"] >= shown_best - 1e-5


def test_a_budget_nothing_fits_gives_the_cheapest_outfit_and_says_so(client, look):
    _, _, truth = look
    resp, market = _search(client, look, budget=0.01, currency=get_taxonomy().currency_of(truth["market"]))
    outfit = resp.get_json()["outfit"]
    assert resp.status_code == 200
    assert not outfit["within_budget"] and "cheapest complete outfit" in outfit["note"]
    assert outfit["total"] > 0.01 and len(outfit["items"]) == len(truth["products"])


@pytest.mark.parametrize(
    ("outfit", "field", "message"),
    [
        ({"budget": 100, "currency": "XXX"}, "outfit.currency", "prices in"),
        ({"budget": -5, "currency": "__MARKET__"}, "outfit.budget", "greater than 0"),
        ({"budget": 0, "currency": "__MARKET__"}, "outfit.budget", "greater than 0"),
        ({"budget": "150", "currency": "__MARKET__"}, "outfit.budget", "valid number"),
        ({"budget": True, "currency": "__MARKET__"}, "outfit.budget", "valid number"),
        ({"budget": 1e300, "currency": "__MARKET__"}, "outfit.budget", "less than or equal"),
        ({"currency": "__MARKET__"}, "outfit.budget", "required"),
        ({"budget": 100}, "outfit.currency", "required"),
        ({"budget": 100, "currency": "__MARKET__", "tip": 3}, "outfit.tip", "not permitted"),
        ([150, "USD"], "outfit", "valid dictionary"),
    ],
)
def test_a_bad_outfit_is_a_400_that_names_it(client, look, outfit, field, message):
    _, data, truth = look
    currency = get_taxonomy().currency_of(truth["market"])
    if isinstance(outfit, dict):
        outfit = {k: currency if v == "__MARKET__" else v for k, v in outfit.items()}
    resp = client.post("/v1/looks/search", json={"image_base64": b64(data), "market": truth["market"], "outfit": outfit})
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["field"] == field and message in error["message"], error


def test_an_outfit_needs_a_market(client, look):
    _, data, _ = look
    resp = client.post("/v1/looks/search", json={"image_base64": b64(data), "outfit": {"budget": 100, "currency": "USD"}})
    assert resp.status_code == 400 and "needs market" in resp.get_json()["error"]["message"]
    assert resp.get_json()["error"]["field"] == "market"
