"""A vendor feed with hostile titles, ingested and served for real, shown on the /demo and /judge pages in
headless Chromium: markup in a title is stripped at ingest, markup that survives as text (written as HTML
entities, which the cleaner decodes to plain '<' and '>') shows as text on the cards, and no script runs."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_pages import _css, _one, _pick_sample, _results_or_error, _wait
from tests.quality.judging.service import judging_app, serve

RAW = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"  # markup: stripped at ingest
# written as entities: stored as the text below, which must show as text
ESCAPED = "&lt;img src=x onerror=window.__pwned=3&gt;&lt;script&gt;window.__pwned=4&lt;/script&gt;"
SHOWN = "<img src=x onerror=window.__pwned=3><script>window.__pwned=4</script>"


@pytest.fixture(scope="module")
def hostile_catalog(built_catalog, tmp_path_factory):
    """desi_threads' sample feed with every title made hostile, ingested and indexed by the CLI into a data
    directory of its own, with the session's tiny model and image server."""
    from click.testing import CliRunner

    from looksync.catalog.stores import ProductStore
    from looksync.cli import main
    from looksync.settings import load_settings

    root = tmp_path_factory.mktemp("hostile")
    src = Path(built_catalog.manifest.feeds["desi_threads"])
    with src.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:  # planted latin-1 rows kept
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        row["Product Name"] = f"{RAW}{ESCAPED} {row['Product Name']}"
    feed = root / "desi_threads.csv"
    with feed.open("w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    env = {**built_catalog.env, "LOOKSYNC_DATA_DIR": str(root / "data")}
    result = CliRunner().invoke(main, ["ingest", "--vendor", "desi_threads", "--feed", str(feed)], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["outcomes"]["new"] > 5
    result = CliRunner().invoke(main, ["index", "build"], env=env)
    assert result.exit_code == 0, result.output
    settings = load_settings(**{k.removeprefix("LOOKSYNC_").lower(): v for k, v in env.items()})
    titles = [p.title for p in ProductStore(settings.data_dir).by_vendor("desi_threads").values()]
    assert titles and all(t.startswith(SHOWN + " ") for t in titles), titles[:3]  # stored as text, markup gone
    return replace(built_catalog, settings=settings)


def _no_script_ran(driver) -> None:
    assert driver.execute_script("return window.__pwned === undefined"), driver.execute_script("return window.__pwned")
    assert not _css(driver, "#results script, #results img[src='x'], #results img[src$='/x']")


def _hostile_cards(driver) -> list:
    titles = [e.text for e in _css(driver, "#results article.product .title")]
    assert titles and all(t.startswith(SHOWN + " ") for t in titles), titles
    assert all("<img src=x onerror=window.__pwned=1>" not in t for t in titles)  # stripped at ingest
    return titles


def test_hostile_titles_show_as_text_on_the_demo_and_judge_pages(browser, hostile_catalog, tmp_path):
    look_id = sorted(hostile_catalog.ground_truth)[0]
    with serve(judging_app(hostile_catalog, tmp_path)) as service:
        for page, button in (("demo", "#search"), ("judge", "#load-look")):
            browser.get(f"{service.url}/{page}")
            _pick_sample(browser, look_id)
            _one(browser, button).click()
            _wait(browser, _results_or_error)
            assert not _css(browser, "#results .error"), _one(browser, "#results .error").text
            _hostile_cards(browser)
            _no_script_ran(browser)
            screenshot(browser, f"{page}-hostile-titles")
