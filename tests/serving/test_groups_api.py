"""One card per item: searches collapse a product group to one result with its offers (the best in-stock
offer in the shopper's market first), /v1/products/<id> lists the group's offers, a broken group store
degrades visibly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from looksync.catalog.groups import GROUPS_AREA, GROUPS_KEY, order_offers
from serving.responses import LookResponse, ProductResponse, SearchResponse, SimilarResponse
from tests.serving.conftest import b64
from tests.serving.grouped_catalog import build_grouped_catalog


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """A sample where a third of the items are also sold by other vendors, ingested, grouped and indexed."""
    catalog = build_grouped_catalog(tmp_path_factory.mktemp("grouped"))
    return catalog.settings, catalog.encoder, catalog.manifest


@pytest.fixture(scope="module")
def client(grouped):
    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    settings, encoder, _ = grouped
    engine = SearchEngine(settings, encoder, open_index(settings), MemoryCache())
    return create_app(settings, engine).test_client()


def _ok(resp):
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _records(settings) -> dict:
    return json.loads((Path(settings.data_dir) / GROUPS_AREA / GROUPS_KEY).read_text())["groups"]


def _member_groups(settings) -> dict[str, str]:
    return {o["product_id"]: gid for gid, r in _records(settings).items() for o in r["offers"]}


def _picture(manifest, product_id: str, records: dict) -> bytes:
    offer = next(o for r in records.values() for o in r["offers"] if o["product_id"] == product_id)
    sku = next(m["sku"] for g in json.loads(manifest.groups_path.read_text())["groups"] for m in g["products"]
               if m["product_id"] == product_id)  # fmt: skip
    return (Path(manifest.images_dir) / offer["vendor"] / f"{sku}.png").read_bytes()


def test_an_item_at_several_shops_is_one_card_with_every_offer(client, grouped):
    settings, _, manifest = grouped
    records, members = _records(settings), _member_groups(settings)
    gid, record = next((g, r) for g, r in records.items() if len(r["offers"]) >= 2)
    original = next(o["product_id"] for o in record["offers"] if o["product_id"] in
                    {g["item"] for g in json.loads(manifest.groups_path.read_text())["groups"]})  # fmt: skip
    body = _ok(client.post("/v1/search", json={"image_base64": b64(_picture(manifest, original, records)), "k": 20}))
    SearchResponse.model_validate(body)
    cards = [p for p in body["products"] if members.get(p["product_id"]) == gid]
    assert len(cards) == 1  # its listings at the other shops are the same card, not results of their own
    card = cards[0]
    assert card["group_id"] == gid
    assert sorted(o["product_id"] for o in card["offers"]) == sorted(o["product_id"] for o in record["offers"])
    assert card["offers"] == order_offers(record["offers"], None)
    groups_shown = [members[p["product_id"]] for p in body["products"] if p["product_id"] in members]
    assert len(groups_shown) == len(set(groups_shown))  # one card per item, for every item
    ungrouped = [p for p in body["products"] if p["product_id"] not in members]
    assert all("offers" not in p and "group_id" not in p for p in ungrouped)


@pytest.mark.parametrize("market", ["IN", "US", "JP"])
def test_offers_put_the_best_in_stock_offer_in_the_shoppers_market_first(client, grouped, market):
    settings, _, _ = grouped
    body = _ok(client.post("/v1/search", json={"text": "a product", "market": market, "k": 30}))
    SearchResponse.model_validate(body)
    cards = [p for p in body["products"] if p.get("offers")]
    assert cards, "no grouped item among the results"
    for card in cards:
        assert card["market"] == market  # the card itself obeys the market filter
        offers = card["offers"]
        here = [o for o in offers if o["market"] == market and o["in_stock"]]
        if here:
            assert offers[0] == min(here, key=lambda o: o["price"])
        in_stock = [o["in_stock"] for o in offers]
        assert in_stock == sorted(in_stock, reverse=True)  # out of stock last
        assert offers == order_offers(_records(settings)[card["group_id"]]["offers"], market)


def test_product_endpoint_lists_the_groups_offers(client, grouped):
    settings, _, _ = grouped
    records, members = _records(settings), _member_groups(settings)
    pid, gid = next(iter(sorted(members.items())))
    body = _ok(client.get(f"/v1/products/{pid}"))
    ProductResponse.model_validate(body)
    group = body["group"]
    assert group["group_id"] == gid and group["canonical_product_id"] in members
    assert group["offers"] == order_offers(records[gid]["offers"], body["product"]["market"])
    assert {o["vendor"] for o in group["offers"]} == set(group["vendors"]) and len(group["vendors"]) >= 2
    lone = _ok(client.post("/v1/search", json={"text": "a product", "k": 30}))["products"]
    alone = next(p["product_id"] for p in lone if p["product_id"] not in members)
    body = _ok(client.get(f"/v1/products/{alone}"))
    ProductResponse.model_validate(body)
    assert body["group"] is None and body["degraded"] == []


def test_similar_leaves_out_the_products_own_group_and_looks_carry_offers(client, grouped):
    settings, _, manifest = grouped
    members = _member_groups(settings)
    pid = next(iter(sorted(members)))
    body = _ok(client.get(f"/v1/products/{pid}/similar?k=20"))
    SimilarResponse.model_validate(body)
    assert all(members.get(p["product_id"]) != members[pid] for p in body["products"])
    look = next(Path(manifest.looks_dir).glob("*.png")).read_bytes()
    answer = _ok(client.post("/v1/looks/search", json={"image_base64": b64(look), "market": "JP", "k": 10}))
    LookResponse.model_validate(answer)
    for layer in answer["layers"]:
        shown = [members[p["product_id"]] for p in layer["products"] if p["product_id"] in members]
        assert len(shown) == len(set(shown))


def test_unreadable_groups_degrade_visibly_and_results_stay(grouped, tmp_path):
    import shutil

    from looksync.index.factory import open_index
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine
    from serving import create_app

    settings, encoder, _ = grouped
    broken = settings.model_copy(update={"groups_refresh_s": 0.0})
    engine = SearchEngine(broken, encoder, open_index(broken), MemoryCache())
    client = create_app(broken, engine).test_client()
    path = Path(settings.data_dir) / GROUPS_AREA / GROUPS_KEY
    kept = tmp_path / "groups.json"
    shutil.copy(path, kept)
    try:
        path.write_text("{not json")
        body = _ok(client.post("/v1/search", json={"text": "a product", "k": 5}))
        assert len(body["products"]) == 5
        assert any(note.startswith("groups_unavailable") for note in body["degraded"])
        product = _ok(client.get(f"/v1/products/{body['products'][0]['product_id']}"))
        assert product["group"] is None and product["degraded"]
    finally:
        shutil.copy(kept, path)
    body = _ok(client.post("/v1/search", json={"text": "a product", "k": 5}))
    assert not any(note.startswith("groups_unavailable") for note in body["degraded"])
