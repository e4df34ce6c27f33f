"""Display text from feeds: HTML reduced to text, controls and invisible overrides removed, whitespace
collapsed, a length cap; what was removed is reported. Through every feed format too."""

from __future__ import annotations

import pytest

from looksync.catalog.text import LIMITS, clean_display
from looksync.catalog.vendors import read_feed


@pytest.mark.parametrize(
    "value, expected, changes",
    [
        ("Navy Cotton Tee", "Navy Cotton Tee", []),
        ("<b>Navy</b> Cotton <i>Tee</i>", "Navy Cotton Tee", ["html"]),
        ("Tee<script>alert(1)</script> navy", "Tee navy", ["html"]),
        ("Tee <img src=x onerror=alert(1)>navy", "Tee navy", ["html"]),
        ("Tee &amp; Co &lt;b&gt;", "Tee & Co <b>", ["html"]),  # entities become the characters they name
        ("Tee\x00 na\x07vy", "Tee navy", ["control"]),
        ("Tee\u202enavy", "Teenavy", ["control"]),  # a right-to-left override would reverse what a reader sees
        ("Tee\u200bnavy", "Teenavy", ["control"]),  # zero-width space
        ("क्‍ष Kurta", "क्‍ष Kurta", []),  # a zero-width joiner inside Devanagari is kept
        ("  Navy \r\n Tee\t ", "Navy Tee", []),
        ("Cafe\u0301", "Café", []),  # NFC
    ],
)
def test_titles(value, expected, changes):
    assert clean_display("title", value) == (expected, changes)


def test_long_text_is_cut_near_a_word_boundary_under_the_cap():
    text, changes = clean_display("title", "navy " * 200)
    assert changes == ["truncated"] and len(text) <= LIMITS["title"] and text.endswith("navy…")
    desc, changes = clean_display("description", "x" * 6_000_000)  # a 6 MB description
    assert changes == ["truncated"] and len(desc) == LIMITS["description"]


def test_descriptions_keep_paragraphs():
    text, changes = clean_display("description", "<p>Soft cotton.</p><p>Machine wash.<br>Made in India.</p>")
    assert text == "Soft cotton.\n\nMachine wash.\nMade in India." and changes == ["html"]


@pytest.mark.parametrize("vendor", ["desi_threads", "northwind_apparel", "sakura_mode"])
def test_every_format_stores_clean_titles_and_says_what_changed(tmp_path, feeds, vendor):
    feed = feeds[vendor]
    rows = list(read_feed(feed.config, feed.write(tmp_path, [
        feed.record(sku="A1", title="<b>Navy</b> Tee\u202e"),
        feed.record(sku="A2", title="Plain Tee", brand="Acme"),
        feed.record(sku="A3", title="<script>alert(1)</script>"),  # nothing left: refused, not stored empty
    ])))  # fmt: skip
    assert rows[0].product.title == "Navy Tee" and rows[0].cleaned == {"title": ["html", "control"]}
    assert rows[1].product.title == "Plain Tee" and rows[1].cleaned == {}
    assert rows[2].product is None and "title" in rows[2].rejection.message
