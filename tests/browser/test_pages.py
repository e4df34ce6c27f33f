"""The /demo and /judge pages in a real headless Chromium against the real service over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from looksync.catalog.taxonomy import get_taxonomy
from looksync.quality.judging import RatingStore
from tests.browser.conftest import screenshot

WAIT_S = 60  # a look search on the tiny CPU model is well under this, even on a busy 2-core machine
KEY = "browser-test-key"


def _wait(driver, condition, timeout: float = WAIT_S):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)  # the page re-renders while we look
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(condition)


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _one(driver, selector: str):
    (element,) = _css(driver, selector)
    return element


def _sample_looks_loaded(driver) -> bool:
    return len(_css(driver, "#sample-look option")) > 1


def _results_or_error(driver):
    return _css(driver, "#results section.layer article.product") or _css(driver, "#results .error")


def _pick_sample(driver, look_id: str) -> None:
    from selenium.webdriver.support.ui import Select

    _wait(driver, _sample_looks_loaded)
    Select(_one(driver, "#sample-look")).select_by_value(look_id)


def _enter_key(driver, key: str) -> None:
    box = _one(driver, "#api-key")
    box.clear()
    box.send_keys(key)
    _one(driver, "#save-key").click()


def _submit_ratings(driver, count: int) -> None:
    """Submit the page's ratings and wait for the page to say they were saved."""
    _one(driver, "#submit-ratings").click()
    _wait(driver, lambda d: "saved" in _one(d, "#submit-status").text or "error" in _one(d, "#submit-status").get_attribute("class"))
    assert _one(driver, "#submit-status").text.startswith(f"saved {count} rating(s)"), _one(driver, "#submit-status").text


def _stored_ratings(service) -> list:
    """What the service's rating store holds, read from its database."""
    store = RatingStore(service.app.extensions["looksync.settings"].judging_db_url)
    try:
        return store.ratings()
    finally:
        store.close()


def _api_layers(service, look_path: Path, k: int, headers=None) -> list[dict]:
    with look_path.open("rb") as f:
        resp = requests.post(f"{service.url}/v1/looks/search", files={"image": f}, data={"params": f'{{"k": {k}}}'},
                             headers=headers or {}, timeout=WAIT_S)  # fmt: skip
    resp.raise_for_status()
    return resp.json()["layers"]


def test_demo_page_upload_shows_each_layer_with_product_cards(browser, live_service, built_catalog, product_images):
    service = live_service()
    look_id = sorted(built_catalog.ground_truth)[0]
    look_path = Path(built_catalog.manifest.looks_dir) / f"{look_id}.png"
    browser.get(f"{service.url}/demo")
    _one(browser, "#look-file").send_keys(str(look_path))
    k = _one(browser, "#k")
    k.clear()
    k.send_keys("3")
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    _wait(browser, lambda d: d.execute_script(
        "return [...document.images].every(img => img.complete)"))  # fmt: skip
    screenshot(browser, "demo-upload")

    # the page shows what the public API answers for the same image, layer by layer
    expected = _api_layers(service, look_path, k=3)
    sections = _css(browser, "#results section.layer")
    assert [s.get_attribute("data-layer") for s in sections] == [layer["layer"] for layer in expected]
    for section, layer in zip(sections, expected, strict=True):
        assert section.find_element("css selector", "h2").text == layer["layer"]
        assert layer["query"] in section.find_element("css selector", "p.query").text
        cards = section.find_elements("css selector", "article.product")
        assert [c.get_attribute("data-product-id") for c in cards] == [p["product_id"] for p in layer["products"]]
        assert 1 <= len(cards) <= 3
        for card, product in zip(cards, layer["products"], strict=True):
            assert card.find_element("css selector", ".price").text == f"{product['price']:.2f} {product['currency']}"
            assert "score " in card.find_element("css selector", ".scores").text
            chips = card.find_elements("css selector", "ul.match li.chip")  # why it matches, as the API says
            assert [(c.get_attribute("data-attribute"), "agrees" in c.get_attribute("class")) for c in chips] == [
                (a["name"], a["agrees"]) for a in product["match"]["attributes"]
            ]
            assert f"knn {product['match']['score']['knn']:.3f}" in card.find_element("css selector", ".score-parts").text
            image = card.find_element("css selector", "img")
            if product_images is not None:  # images served again on their original port: really drawn
                assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    stages = [row.text.split()[0] for row in _css(browser, "table.timings tbody tr")]
    assert {"query_generation", "text_embedding", "knn"} <= set(stages)
    assert _css(browser, "p.ok") or _css(browser, "ul.degraded li")  # the degraded section is always there
    assert "model " in _one(browser, "#meta").text


def test_demo_page_sample_look(browser, live_service, built_catalog):
    service = live_service()
    look_id = sorted(built_catalog.ground_truth)[1]
    browser.get(f"{service.url}/demo")
    _pick_sample(browser, look_id)
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    assert _css(browser, "#results section.layer article.product img")
    screenshot(browser, "demo-sample-look")


def _rate(card, **scores) -> None:
    from selenium.webdriver.support.ui import Select

    for criterion, value in scores.items():
        Select(card.find_element("css selector", f"select[data-criterion='{criterion}']")).select_by_value(str(value))


def test_judge_page_rate_submit_and_find_it_in_the_report(browser, live_service, built_catalog):
    service = live_service()
    look_id = sorted(built_catalog.ground_truth)[0]
    browser.get(f"{service.url}/judge")
    _one(browser, "#judge-id").send_keys("judge-ana")
    _pick_sample(browser, look_id)
    _one(browser, "#load-look").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    cards = _css(browser, "#results article.product")
    assert len(cards) >= 2
    _rate(cards[0], colour=5, fit=4, sleeve="na", fabric=3, pattern=4, overall=5)
    _rate(cards[1], colour=2, overall=2)
    rated = [(c.get_attribute("data-layer"), c.get_attribute("data-product-id"), int(c.get_attribute("data-rank")))
             for c in cards[:2]]  # fmt: skip
    screenshot(browser, "judge-rated")
    _submit_ratings(browser, 2)

    # in the database, with what the page knew: judge, look, model, index version, query, rank
    stored = _stored_ratings(service)
    readyz = requests.get(f"{service.url}/readyz", timeout=10).json()
    assert [(r.layer, r.product_id, r.rank) for r in stored] == rated
    first = stored[0]
    assert (first.judge_id, first.look_id, first.model_id, first.index_version) == (
        "judge-ana", look_id, readyz["model_id"], readyz["index_version"])
    assert first.look_sha256 is not None and len(first.look_sha256) == 64  # 127.0.0.1 is a secure context
    assert first.scores == {"colour": 5, "fit": 4, "sleeve": None, "fabric": 3, "pattern": 4, "overall": 5}
    assert stored[1].scores == {"colour": 2, "fit": None, "sleeve": None, "fabric": None, "pattern": None, "overall": 2}
    assert first.query_text

    # and in the report page: overall 5 and 2 -> 3.50 ± t(0.975, 1) * sqrt(4.5) / sqrt(2) = 3.50 ± 19.06
    browser.find_element("link text", "see the report").click()
    _wait(browser, lambda d: _css(d, "#mos-models tbody tr") or _css(d, "#report .error"))
    (row,) = _css(browser, "#mos-models tbody tr")
    cells = [td.text for td in row.find_elements("css selector", "td")]
    assert cells[0] == readyz["model_id"] and cells[1] == "2"
    assert cells[2:] == ["3.50 ± 19.06", "4.00", "-", "3.00", "4.00", "3.50 ± 19.06"]
    assert "2 rating(s) by 1 judge(s)" in _one(browser, "#summary").text

    # a second judge rates the same two items (overall 4 and 1): agreement appears. Interval alpha by hand:
    # values 5,2,4,1 (mean 3, squared deviations 10); observed 2*(1+1) = 4; expected 2*4*10/3; 1 - 4/(80/3) = 0.85
    body = {"judge_id": "judge-bo", "look_id": look_id, "look_sha256": first.look_sha256, "model_id": first.model_id,
            "ratings": [{"layer": r.layer, "product_id": r.product_id, "scores": {"overall": o}}
                        for r, o in zip(stored, (4, 1), strict=True)]}  # fmt: skip
    assert requests.post(f"{service.url}/v1/judgments", json=body, timeout=10).status_code == 201
    browser.refresh()
    _wait(browser, lambda d: "4 rating(s) by 2 judge(s)" in d.find_element("id", "summary").text)
    rows = {tr.find_elements("css selector", "td")[0].text: [td.text for td in tr.find_elements("css selector", "td")]
            for tr in _css(browser, "#agreement tbody tr")}  # fmt: skip
    assert rows["overall"] == ["overall", "0.85", rows["overall"][2], "2"]
    assert rows["fit"][3] == "0"  # only judge-ana gave fit scores
    screenshot(browser, "judge-report")


def test_with_an_api_key_the_pages_work_after_entering_it(browser, live_service, built_catalog):
    service = live_service(api_keys=[KEY])
    # data calls without the key are refused; the shells and their scripts are not
    assert requests.get(f"{service.url}/v1/sample-looks", timeout=10).status_code == 401
    assert requests.get(f"{service.url}/v1/judgments/report", timeout=10).status_code == 401
    assert requests.get(f"{service.url}/static/judge.js", timeout=10).status_code == 200

    browser.get(f"{service.url}/demo")
    _wait(browser, lambda d: "unavailable" in _one(d, "#looks-status").text)
    assert "401" in _one(browser, "#looks-status").text
    look_path = Path(built_catalog.manifest.looks_dir) / f"{sorted(built_catalog.ground_truth)[0]}.png"
    _one(browser, "#look-file").send_keys(str(look_path))
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    error = _one(browser, "#results .error").text
    assert error.startswith("401 unauthorized") and "enter the API key" in error
    screenshot(browser, "demo-without-key")

    _enter_key(browser, KEY)
    _wait(browser, _sample_looks_loaded)
    _one(browser, "#search").click()
    _wait(browser, lambda d: _css(d, "#results section.layer article.product") or _css(d, "#results .error"))
    assert not _css(browser, "#results .error")
    screenshot(browser, "demo-with-key")

    # the key stays in this tab's sessionStorage for the next page; the report loads with it
    browser.get(f"{service.url}/judge/report")
    _wait(browser, lambda d: _css(d, "#mos-models") or _css(d, "#report .error"))
    assert _css(browser, "#mos-models") and "0 rating(s)" in _one(browser, "#summary").text
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    _wait(browser, lambda d: _css(d, "#mos-models") or _css(d, "#report .error"))
    assert _one(browser, "#report .error").text.startswith("401")


@pytest.mark.parametrize("hostile", ["<img src=x onerror=\"document.title='pwned'\">"])
def test_report_page_renders_data_as_text(browser, live_service, hostile):
    service = live_service()
    body = {"judge_id": hostile, "look_id": "look-x", "model_id": hostile,
            "ratings": [{"layer": "topwear", "product_id": hostile, "scores": {"overall": 4}}]}  # fmt: skip
    assert requests.post(f"{service.url}/v1/judgments", json=body, timeout=10).status_code == 201
    browser.get(f"{service.url}/judge/report")
    _wait(browser, lambda d: _css(d, "#mos-models tbody tr") or _css(d, "#report .error"))
    assert _css(browser, "#mos-models tbody tr td")[0].text == hostile
    assert not _css(browser, "#report img") and browser.title != "pwned"


def test_demo_page_outfit_within_a_budget(browser, live_service, built_catalog):
    from selenium.webdriver.support.ui import Select

    service = live_service()
    look_id = sorted(built_catalog.ground_truth)[0]
    truth = built_catalog.ground_truth[look_id]
    look_path = Path(built_catalog.manifest.looks_dir) / f"{look_id}.png"
    params = {"k": 3, "market": truth["market"]}
    with look_path.open("rb") as f:  # what the API answers without a budget: pick one that the cheapest outfit fits
        layers = requests.post(f"{service.url}/v1/looks/search", files={"image": f},
                               data={"params": json.dumps(params)}, timeout=WAIT_S).json()["layers"]  # fmt: skip
    budget = round(sum(min(p["price"] for p in layer["products"]) for layer in layers) * 2, 2)

    browser.get(f"{service.url}/demo")
    _one(browser, "#look-file").send_keys(str(look_path))
    _one(browser, "#k").clear()
    _one(browser, "#k").send_keys("3")
    _one(browser, "#budget").send_keys(str(budget))
    _one(browser, "#search").click()  # a budget without a market is refused on the page, before any request
    _wait(browser, _results_or_error)
    assert "choose a market" in _one(browser, "#results .error").text

    Select(_one(browser, "#market")).select_by_value(truth["market"])
    assert _one(browser, "#budget-currency").text == get_taxonomy().currency_of(truth["market"])
    _one(browser, "#search").click()
    _wait(browser, lambda d: _css(d, "#outfit article.product") or _css(d, "#results .error"))
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    screenshot(browser, "demo-outfit")

    with look_path.open("rb") as f:
        params["outfit"] = {"budget": budget, "currency": get_taxonomy().currency_of(truth["market"])}
        expected = requests.post(f"{service.url}/v1/looks/search", files={"image": f},
                                 data={"params": json.dumps(params)}, timeout=WAIT_S).json()["outfit"]  # fmt: skip
    assert expected["within_budget"]
    cards = _css(browser, "#outfit article.product")
    assert [c.get_attribute("data-product-id") for c in cards] == [i["product_id"] for i in expected["items"]]
    assert [c.find_element("css selector", ".rank").text for c in cards] == [i["layer"] for i in expected["items"]]
    assert f"total {expected['total']:.2f}" in _one(browser, "#outfit .outfit-total").text
    assert _one(browser, "#outfit").get_attribute("data-within-budget") == "true"


@pytest.fixture(scope="module")
def shadowed(built_catalog, tmp_path_factory):
    from tests.quality.judging.service import shadowed_data

    return shadowed_data(built_catalog, tmp_path_factory.mktemp("browser-shadow"))


def test_judge_page_blind_live_vs_shadow_stores_each_side_under_its_model(browser, live_service, built_catalog, shadowed):
    from tests.quality.judging.service import SHADOW_WEIGHTS

    data_dir, candidate = shadowed
    service = live_service(data_dir=data_dir, shadow_share=0.01, shadow_clip_weights=SHADOW_WEIGHTS)
    look_id = sorted(built_catalog.ground_truth)[0]
    browser.get(f"{service.url}/judge")
    _one(browser, "#judge-id").send_keys("judge-ana")
    _pick_sample(browser, look_id)
    _one(browser, "#blind-compare").click()
    _one(browser, "#load-look").click()
    _wait(browser, lambda d: len(_css(d, "#results div.side")) == 2 or _css(d, "#results .error"))
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    sides = _css(browser, "#results div.side")
    assert [s.get_attribute("data-side") for s in sides] == ["A", "B"]
    page = _one(browser, "#results").text
    live_id, shadow_id = built_catalog.encoder.model_id, candidate["model_id"]
    assert live_id not in page and shadow_id not in page and candidate["version"] not in page  # blind
    for side, overall in zip(sides, (5, 1), strict=True):
        _rate(side.find_elements("css selector", "article.product")[0], overall=overall)
    screenshot(browser, "judge-blind-rated")
    _submit_ratings(browser, 2)

    stored = _stored_ratings(service)
    assert sorted(r.model_id for r in stored) == sorted([live_id, shadow_id])  # one side each, under its own model
    assert {r.index_version for r in stored} == {candidate["live"], candidate["version"]}
    assert sorted(r.scores["overall"] for r in stored) == [1, 5]


def test_demo_page_records_a_purchase_and_the_next_search_applies_the_shoppers_preferences(
    browser, live_service, built_catalog
):
    """A shopper id on /demo: a card's "bought" button records a purchase through POST /v1/events, the
    profile holds the product's brand, and the next search says which preferences reordered it, as the API
    says for the same request."""
    from selenium.webdriver.support.ui import Select

    service = live_service()
    look_id = sorted(built_catalog.ground_truth)[0]
    truth = built_catalog.ground_truth[look_id]
    look_path = Path(built_catalog.manifest.looks_dir) / f"{look_id}.png"
    shopper = f"browser-shopper-{look_id}"
    requests.delete(f"{service.url}/v1/shoppers/{shopper}/profile", timeout=WAIT_S)  # a clean start

    browser.get(f"{service.url}/demo")
    _one(browser, "#look-file").send_keys(str(look_path))
    _one(browser, "#k").clear()
    _one(browser, "#k").send_keys("3")
    Select(_one(browser, "#market")).select_by_value(truth["market"])
    _one(browser, "#shopper").send_keys(shopper)
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    assert _one(browser, "#preferences").get_attribute("data-applied") == ""  # no profile yet
    assert "no preferences" in _one(browser, "#preferences").text

    card = _css(browser, "#results section.layer article.product")[-1]
    product_id = card.get_attribute("data-product-id")
    card.find_element("css selector", "button.buy").click()
    _wait(browser, lambda d: card.get_attribute("data-bought") == "true" or "not" in card.find_element(
        "css selector", "button.buy").text)  # fmt: skip
    assert card.find_element("css selector", "button.buy").text == "recorded"

    profile = requests.get(f"{service.url}/v1/shoppers/{shopper}/profile", timeout=WAIT_S)
    assert profile.status_code == 200, profile.text
    assert [e["product_id"] for e in profile.json()["recent_events"]] == [product_id]

    _one(browser, "#search").click()
    _wait(browser, lambda d: _css(d, "#preferences") and _one(d, "#preferences").get_attribute("data-applied"))
    shown = _one(browser, "#preferences").get_attribute("data-applied").split(",")
    with look_path.open("rb") as f:
        params = {"k": 3, "market": truth["market"], "shopper_id": shopper}
        api = requests.post(f"{service.url}/v1/looks/search", files={"image": f},
                            data={"params": json.dumps(params)}, timeout=WAIT_S).json()["preferences"]  # fmt: skip
    assert shown == api["applied"] and "brand" in shown
    screenshot(browser, "demo-shopper-preferences")
    assert requests.delete(f"{service.url}/v1/shoppers/{shopper}/profile", timeout=WAIT_S).json()["erased"] is True
