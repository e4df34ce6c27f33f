"""Every quarantine of an ingest run names the feed row it came from, image faults included."""

from __future__ import annotations

import re
from pathlib import Path

from looksync.catalog.quarantine import read_quarantine
from looksync.pipelines.ingest import ingest_feed

IMAGE_REASONS = {"image_unreachable", "image_not_image", "image_too_large", "image_empty", "image_svg", "image_blank"}


def _line_text(feed: Path, line: int) -> str:
    return feed.read_bytes().splitlines()[line - 1].decode("utf-8", "replace")  # the sample: a record per line


def test_image_quarantines_name_the_feed_row_and_the_sku(settings, faulty_sample, tiny_encoder):
    image_faults: set[str] = set()
    for vendor, feed in faulty_sample.manifest.feeds.items():
        report = ingest_feed(settings, vendor, feed, tiny_encoder, "run-rows")
        for record in read_quarantine(Path(report.quarantine_path)):
            assert re.fullmatch(r"(line|record) \d+", record["row_ref"]), record
            assert isinstance(record["line"], int) and record["line"] >= 1
            if record["reason"] in IMAGE_REASONS:
                image_faults.add(record["reason"])
                assert record["message"].startswith(f"{record['row_ref']}, sku {record['vendor_sku']}: ")
                assert record["vendor_sku"] in _line_text(feed, record["line"])
    assert image_faults == {"image_unreachable", "image_not_image", "image_too_large"}  # the sample's planted ones
