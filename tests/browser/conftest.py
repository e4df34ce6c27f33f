"""Real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, against the real
service on a loopback HTTP server. Screenshots go to var/test-artifacts/browser/.

Without Chromium the tests fail and say how to install it, unless LOOKSYNC_SKIP_BROWSER_TESTS=1."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.quality.judging.service import judging_app, serve

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver"))
# read at import: the autouse fixture of tests/conftest.py clears LOOKSYNC_* for each test
SKIP_BROWSER = os.environ.get("LOOKSYNC_SKIP_BROWSER_TESTS") == "1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends chromium chromium-driver "
    "(or set CHROMIUM_BINARY / CHROMEDRIVER_BINARY; LOOKSYNC_SKIP_BROWSER_TESTS=1 skips these tests)"
)


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    if SKIP_BROWSER:
        pytest.skip(f"browser tests skipped (LOOKSYNC_SKIP_BROWSER_TESTS=1); missing {', '.join(missing)}")
    pytest.fail(f"headless Chromium is needed for the browser tests; missing {', '.join(missing)}. Install: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def _chromium_checked() -> None:
    _require_chromium()


@pytest.fixture
def browser(_chromium_checked, tmp_path, request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1100", f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    try:
        screenshot(driver, f"{request.node.name}-final")
    finally:
        driver.quit()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def screenshot(driver, name: str) -> Path:
    """Save a screenshot of the whole page (beyond the window, through the DevTools protocol) under
    var/test-artifacts/browser/ and return its path."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{_slug(name)}.png"
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 10_000), "scale": 1},
    })  # fmt: skip
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.fixture(scope="session")
def product_images(built_catalog):
    """The sample's product images, served by the catalog fixture's image server at the URLs the feeds
    name for the whole session, so the cards show real images."""
    return built_catalog.image_server


@pytest.fixture
def live_service(built_catalog, tmp_path, product_images):
    """Start the service over HTTP; call with settings overrides (e.g. api_keys=[...])."""
    started = []

    def start(**overrides):
        context = serve(judging_app(built_catalog, tmp_path / f"db{len(started)}", **overrides))
        service = context.__enter__()
        started.append(context)
        return service

    yield start
    for context in reversed(started):
        context.__exit__(None, None, None)

