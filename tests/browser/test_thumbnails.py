"""Product pictures on the /demo and /judge pages come from the service's thumbnails, so they still show
when the vendor's image host is gone; a card without a thumbnail shows the vendor's image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.browser.conftest import screenshot
from tests.browser.test_pages import KEY, _css, _enter_key, _one, _pick_sample, _results_or_error, _wait


@dataclass
class GoneHostCatalog:
    data_dir: Path
    looks_dir: Path
    look_id: str
    image_server_url: str


@pytest.fixture(scope="module")
def gone_host_catalog(built_catalog, tmp_path_factory) -> GoneHostCatalog:
    """A small catalog of its own, ingested and indexed (session model) while its image server ran, then
    that server stopped for good: the vendors' host is gone. (The session catalog's image server stays up
    for the other tests.)"""
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.reindex import build_index
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample

    root = tmp_path_factory.mktemp("gone_host")
    sample_dir = root / "sample"
    sample_dir.mkdir()
    settings = built_catalog.settings.model_copy(update={"data_dir": root / "data"})
    server = serve_sample(sample_dir, port=0)
    try:
        manifest = generate_sample(sample_dir, size=30, seed=13, image_base_url=server.url, n_looks=2)
        for vendor, feed in manifest.feeds.items():
            report = ingest_feed(settings, vendor, feed, built_catalog.encoder)
            assert report.thumbnails["failed"] == 0 and report.thumbnails["written"] == report.outcomes["new"] > 0
        build_index(settings, open_index(settings), built_catalog.encoder.model_id)
    finally:
        server.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/manifest.json", timeout=5)
    look_id = sorted(Path(manifest.looks_dir).glob("*.png"))[0].stem
    return GoneHostCatalog(root / "data", Path(manifest.looks_dir), look_id, server.url)


_SETTLED = (  # drawn, or failed for good: a failed thumbnail is "complete" a moment before its error handler
    "const img = arguments[0]; return img.complete && (img.naturalWidth > 0 || img.dataset.source === 'vendor')"
)  # switches it to the vendor's image


def _card_images(driver) -> list[dict]:
    """Each product card's picture once it has settled (scrolled to: the pages load them lazily): where
    it came from, and whether it was drawn."""
    from selenium.common.exceptions import TimeoutException

    states = []
    for image in _css(driver, "#results article.product img"):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        try:
            _wait(driver, lambda d, image=image: d.execute_script(_SETTLED, image), timeout=20)
        except TimeoutException:
            pass  # the state below says what it is stuck at
        states.append(driver.execute_script(
            "const img = arguments[0]; return {src: img.currentSrc, source: img.dataset.source, "
            "drawn: img.complete && img.naturalWidth > 0, width: img.naturalWidth, height: img.naturalHeight}", image))  # fmt: skip
    return states


def _assert_thumbnails_drawn(driver, service_url: str, vendor_url: str) -> None:
    states = _card_images(driver)
    assert states and len(states) == len(_css(driver, "#results article.product"))
    for state in states:
        assert state["source"] == "thumbnail" and state["src"].startswith(f"{service_url}/v1/thumbnails/"), state
        assert state["drawn"] and max(state["width"], state["height"]) <= 256, state
        assert not state["src"].startswith(vendor_url)


def test_pages_show_product_pictures_after_the_image_server_is_gone(browser, live_service, gone_host_catalog):
    catalog = gone_host_catalog
    # API keys on: the pictures load anyway (an <img> sends no key; thumbnails are open)
    service = live_service(data_dir=catalog.data_dir, judging_looks_dir=catalog.looks_dir, api_keys=[KEY])
    browser.get(f"{service.url}/demo")
    _enter_key(browser, KEY)
    _pick_sample(browser, catalog.look_id)
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    # what the cards would have shown before: the vendor URLs, on a host that no longer answers
    answer = requests.post(f"{service.url}/v1/looks/search", headers={"X-API-Key": KEY}, timeout=60,
                           files={"image": (catalog.look_id + ".png", (catalog.looks_dir / f"{catalog.look_id}.png").read_bytes())},
                           data={"params": '{"k": 5}'}).json()  # fmt: skip
    products = [p for layer in answer["layers"] for p in layer["products"]]
    assert products and all(p["image_url"].startswith(catalog.image_server_url) for p in products)
    _assert_thumbnails_drawn(browser, service.url, catalog.image_server_url)
    screenshot(browser, "demo-thumbnails-image-server-gone")

    browser.get(f"{service.url}/judge")  # the key stays in this tab's sessionStorage
    _pick_sample(browser, catalog.look_id)
    _one(browser, "#load-look").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    _assert_thumbnails_drawn(browser, service.url, catalog.image_server_url)
    screenshot(browser, "judge-thumbnails-image-server-gone")


def test_a_card_without_a_thumbnail_shows_the_vendor_image(browser, live_service, built_catalog, product_images, tmp_path):
    """The session catalog's index with an empty thumbnails area (as after an ingest that predates
    thumbnails): every thumbnail answers 404 and each card falls back to the vendor's image, still served."""
    service = live_service(data_dir=tmp_path / "no-thumbnails", index_path=built_catalog.settings.resolved_index_path)
    browser.get(f"{service.url}/demo")
    _pick_sample(browser, sorted(built_catalog.ground_truth)[0])
    k = _one(browser, "#k")
    k.clear()
    k.send_keys("2")
    _one(browser, "#search").click()
    _wait(browser, _results_or_error)
    assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
    states = _card_images(browser)
    assert states
    for state in states:
        assert state["source"] == "vendor" and state["src"].startswith(product_images.url) and state["drawn"], state
    screenshot(browser, "demo-vendor-image-fallback")
