"""The /demo page shows an item sold by several shops as one card with its offers, in the API's order."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.browser.conftest import screenshot
from tests.browser.test_pages import WAIT_S, _css, _one, _results_or_error, _wait
from tests.quality.judging.service import judging_app, serve
from tests.serving.grouped_catalog import build_grouped_catalog


@pytest.fixture(scope="module")
def grouped_catalog(tmp_path_factory):
    return build_grouped_catalog(tmp_path_factory.mktemp("grouped-page"), rate=0.6)


def test_demo_card_lists_the_items_offers(browser, grouped_catalog, tmp_path):
    catalog = SimpleNamespace(settings=grouped_catalog.settings, encoder=grouped_catalog.encoder,
                              manifest=grouped_catalog.manifest)  # fmt: skip
    look_path = next(Path(grouped_catalog.manifest.looks_dir).glob("*.png"))
    with serve(judging_app(catalog, tmp_path)) as service:
        with look_path.open("rb") as f:
            answer = requests.post(f"{service.url}/v1/looks/search", files={"image": f},
                                   data={"params": json.dumps({"k": 10})}, timeout=WAIT_S).json()  # fmt: skip
        grouped = [p for layer in answer["layers"] for p in layer["products"] if p.get("offers")]
        assert grouped, "no grouped item among the look's results"
        browser.get(f"{service.url}/demo")
        _one(browser, "#look-file").send_keys(str(look_path))
        k = _one(browser, "#k")
        k.clear()
        k.send_keys("10")
        _one(browser, "#search").click()
        _wait(browser, _results_or_error)
        assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
        screenshot(browser, "demo-offers")
        for product in grouped:
            (card,) = _css(browser, f"#results section.layer article.product[data-product-id='{product['product_id']}']")
            assert card.get_attribute("data-group-id") == product["group_id"]
            rows = card.find_elements("css selector", "ol.offers li.offer")
            assert [r.get_attribute("data-product-id") for r in rows] == [o["product_id"] for o in product["offers"]]
            first = product["offers"][0]
            assert f"{first['vendor']} · {first['market']} · {first['price']:.2f} {first['currency']}" in rows[0].text
            assert [("in-stock" in r.get_attribute("class")) for r in rows] == [o["in_stock"] for o in product["offers"]]
            assert rows[0].find_element("css selector", "a").get_attribute("href") == first["product_url"]
        ungrouped = [p for layer in answer["layers"] for p in layer["products"] if not p.get("offers")]
        for product in ungrouped:
            (card,) = _css(browser, f"#results section.layer article.product[data-product-id='{product['product_id']}']")
            assert not card.find_elements("css selector", "ol.offers")
