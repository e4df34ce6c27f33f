"""Deletions you can trust: a live product is never deleted because its row was unreadable, and a run
that would delete too much holds its deletions until confirmed. In each of the three feed formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from looksync.catalog.stores import ProductStore
from looksync.index.factory import open_index
from looksync.pipelines.ingest import ingest_feed

VENDORS = ("desi_threads", "northwind_apparel", "sakura_mode")


def _records(feed: Path) -> tuple[list[str], list[str], list[str]]:
    """(head lines, one line per record, tail lines) of a sample feed (one record per line in each format)."""
    lines = feed.read_text(encoding="utf-8").splitlines(keepends=True)
    first = 1 if feed.suffix == ".csv" else 2 if feed.suffix == ".xml" else 0
    last = len(lines) - 1 if feed.suffix == ".xml" else len(lines)
    return lines[:first], lines[first:last], lines[last:]


def _rewrite(feed: Path, dst: Path, change) -> Path:
    head, records, tail = _records(feed)
    dst.write_text("".join(head + [r for r in (change(i, line) for i, line in enumerate(records)) if r] + tail),
                   encoding="utf-8")  # fmt: skip
    return dst


def _live_skus(settings, vendor) -> set[str]:
    return {p.vendor_sku for p in ProductStore(settings.data_dir).by_vendor(vendor).values()}


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_row_cut_off_mid_record_never_deletes_its_product(settings, clean_sample, tiny_encoder, tmp_path, vendor):
    feed = clean_sample.manifest.feeds[vendor]
    index = open_index(settings)
    first = ingest_feed(settings, vendor, feed, tiny_encoder, "run-1", index=index)
    live = _live_skus(settings, vendor)
    assert first.outcomes["new"] == len(live) > 5

    cut = _rewrite(feed, tmp_path / f"cut{feed.suffix}", lambda i, line: line[: len(line) // 2] + "\n" if i == 3 else line)
    report = ingest_feed(settings, vendor, cut, tiny_encoder, "run-2", index=index)
    assert report.quarantined_total == 1 and report.outcomes["vanished"] == 0 and report.outcomes["held"] == 0
    assert _live_skus(settings, vendor) == live and index.count() == len(live)


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_unattributable_row_holds_every_deletion_until_confirmed(settings, clean_sample, tiny_encoder, tmp_path,
                                                                     vendor, caplog):  # fmt: skip
    feed = clean_sample.manifest.feeds[vendor]
    index = open_index(settings)
    ingest_feed(settings, vendor, feed, tiny_encoder, "run-1", index=index)
    live = _live_skus(settings, vendor)
    # record 2 is dropped (a real clearance) and record 5 garbled beyond recognition: the garbled row may be
    # any product, so the absence of record 2 cannot be trusted either
    garbled = {"csv": "\x7f\x7f garbled\n", "jsonl": '{"info": {"name": "gar\n', "xml": "  <item><shohin_mei>gar\n"}
    damaged = _rewrite(feed, tmp_path / f"damaged{feed.suffix}",
                       lambda i, line: None if i == 2 else garbled[feed.suffix[1:]] if i == 5 else line)  # fmt: skip
    report = ingest_feed(settings, vendor, damaged, tiny_encoder, "run-2", index=index)
    assert report.outcomes["vanished"] == 0 and report.outcomes["held"] == 2 == len(report.deletions_held)
    assert "unreadable row(s) not attributable" in report.hold_reasons[0]
    assert any("deletions held" in note and "--confirm-deletions" in note for note in report.notes)
    assert any("deletions held" in r.getMessage() for r in caplog.records)
    assert _live_skus(settings, vendor) == live and index.count() == len(live)

    confirmed = ingest_feed(settings, vendor, damaged, tiny_encoder, "run-3", index=index, confirm_deletions=True)
    assert confirmed.outcomes["vanished"] == 2 and confirmed.outcomes["held"] == 0
    assert len(_live_skus(settings, vendor)) == len(live) - 2 == index.count()


def test_a_large_share_vanishing_at_once_is_held(settings, clean_sample, tiny_encoder, tmp_path):
    vendor = "northwind_apparel"
    feed = clean_sample.manifest.feeds[vendor]
    index = open_index(settings)
    ingest_feed(settings, vendor, feed, tiny_encoder, "run-1", index=index)
    live = _live_skus(settings, vendor)

    one_gone = _rewrite(feed, tmp_path / "one.jsonl", lambda i, line: None if i == 0 else line)
    half = _rewrite(feed, tmp_path / "half.jsonl", lambda i, line: None if i % 2 else line)
    # nothing unreadable, and half the catalog missing: an export that stopped early, not a clearance
    report = ingest_feed(settings, vendor, half, tiny_encoder, "run-2", index=index)
    assert report.outcomes["vanished"] == 0 and report.outcomes["held"] == len(live) // 2
    assert "above the bound of 5%" in report.hold_reasons[0] and _live_skus(settings, vendor) == live
    # a small number of products vanishing is deleted as before
    report = ingest_feed(settings, vendor, one_gone, tiny_encoder, "run-3", index=index)
    assert report.outcomes["vanished"] == 1 and report.outcomes["held"] == 0 and not report.hold_reasons
    assert len(_live_skus(settings, vendor)) == len(live) - 1 == index.count()


def test_the_run_report_shows_held_deletions(settings, clean_sample, tiny_encoder, tmp_path):
    from looksync.pipelines.run_report import build_run_report, report_html

    vendor = "desi_threads"
    feed = clean_sample.manifest.feeds[vendor]
    ingest_feed(settings, vendor, feed, tiny_encoder, "run-1")
    empty = _rewrite(feed, tmp_path / "empty.csv", lambda i, line: None)  # the header alone
    report = ingest_feed(settings, vendor, empty, tiny_encoder, "run-2")
    assert report.outcomes["held"] == len(_live_skus(settings, vendor)) and report.outcomes["vanished"] == 0
    page = report_html(build_run_report("run-2", [report.__dict__]), None)
    assert "deletions held" in page and "confirm-deletions" in page
