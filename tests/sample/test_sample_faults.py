"""Planted faults: listed with their expected reasons, matched exactly by read_feed, real over HTTP."""

from __future__ import annotations

from collections import Counter

from PIL import Image

from looksync.catalog.quarantine import Reason
from looksync.catalog.vendors import load_vendor_config, read_feed
from looksync.sample import FAULT_REASONS, generate_sample
from looksync.sample.faults import IMAGE_FAULTS


def test_every_fault_kind_is_planted_in_every_vendor_with_its_reason(served_sample):
    faults = served_sample.faults
    assert Counter(f["kind"] for f in faults) == {kind: 3 for kind in FAULT_REASONS}
    assert {(f["vendor"], f["kind"]) for f in faults} == {(v, k) for v in served_sample.rows for k in FAULT_REASONS}
    for fault in faults:
        assert fault["expected_reason"] == FAULT_REASONS[fault["kind"]]
        assert Reason(fault["expected_reason"])  # a real quarantine reason
        assert (fault["vendor_sku"] is None) == (fault["kind"] == "missing_sku")


def test_read_feed_rejections_match_the_planted_parse_faults_exactly(served_sample):
    expected = {
        (f["vendor"], f["row_ref"], f["expected_reason"]) for f in served_sample.faults if f["kind"] not in IMAGE_FAULTS
    }
    got = {
        (vendor, r.rejection.row_ref, str(r.rejection.reason))
        for vendor, rows in served_sample.rows.items()
        for r in rows
        if r.rejection
    }
    assert got == expected
    for rows in served_sample.rows.values():
        assert all(r.rejection.message for r in rows if r.rejection)


def test_image_fault_rows_parse_into_valid_products(served_sample):
    by_ref = {(v, r.row_ref): r for v, rows in served_sample.rows.items() for r in rows}
    for fault in (f for f in served_sample.faults if f["kind"] in IMAGE_FAULTS):
        row = by_ref[(fault["vendor"], fault["row_ref"])]
        assert row.product is not None and row.product.vendor_sku == fault["vendor_sku"]


def test_image_fault_urls_really_fail_over_http(served_sample, get):
    by_ref = {(v, r.row_ref): r for v, rows in served_sample.rows.items() for r in rows}
    seen = Counter()
    for fault in (f for f in served_sample.faults if f["kind"] in IMAGE_FAULTS):
        [url] = by_ref[(fault["vendor"], fault["row_ref"])].product.image_urls
        assert url.startswith(served_sample.server.url)
        reply = get(url)
        if fault["kind"] == "dead_image_url":
            assert reply.status == 404
        elif fault["kind"] == "non_image_content":
            assert reply.status == 200 and reply.content_type.startswith("text/html") and b"<html>" in reply.body
        else:
            assert reply.status == 200 and reply.content_type == "image/png"
            assert len(reply.body) < 1_000_000  # cheap to store and fetch: only the pixel count is over the cap
            with Image.open(__import__("io").BytesIO(reply.body)) as image:
                assert image.format == "PNG" and image.width * image.height > 25_000_000
        seen[fault["kind"]] += 1
    assert seen == {kind: 3 for kind in IMAGE_FAULTS}


def test_a_normal_product_image_is_served_as_png(served_sample, get):
    product = next(r.product for r in served_sample.rows["desi_threads"] if r.product)
    reply = get(product.image_urls[0])
    assert (reply.status, reply.content_type) == (200, "image/png") and reply.body.startswith(b"\x89PNG")


def test_even_a_tiny_sample_gets_one_fault_of_each_kind(tmp_path):
    manifest = generate_sample(tmp_path, size=4, fault_rate=0.01, n_looks=1)
    assert manifest.fault_counts == {kind: 1 for kind in FAULT_REASONS}
    rows = [r for v, p in manifest.feeds.items() for r in read_feed(load_vendor_config(v), p)]
    assert sum(r.product is not None for r in rows) == 4 + len(IMAGE_FAULTS)
    assert Counter(str(r.rejection.reason) for r in rows if r.rejection) == {
        str(reason): 1 for kind, reason in FAULT_REASONS.items() if kind not in IMAGE_FAULTS
    }


def test_more_faults_in_proportion_to_the_rate(tmp_path):
    low = generate_sample(tmp_path / "low", size=200, fault_rate=0.05, n_looks=0)
    high = generate_sample(tmp_path / "high", size=200, fault_rate=0.2, n_looks=0)
    assert set(low.fault_counts.values()) == {1} and set(high.fault_counts.values()) == {4}
