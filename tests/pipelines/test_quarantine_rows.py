"""Every quarantine of an ingest run names the feed row it came from, image faults included."""

from __future__ import annotations

import re
from pathlib import Path

from looksync.catalog.quarantine import read_quarantine
from looksync.pipelines.ingest import ingest_feed

IMAGE_REASONS = {"image_unreachable", "image_not_image", "image_too_large", "image_empty", "image_svg", "image_blank"}


def _row_text(feed: Path, row_ref: str) -> str:
    kind, number = row_ref.split()
    if kind == "line":  # a physical line (the sample writes one record per line)
        return feed.read_bytes().splitlines()[int(number) - 1].decode("utf-8", "replace")
    items = re.findall(rb"<item>.*?</item>", feed.read_bytes(), re.S)
    return items[int(number) - 1].decode("utf-8", "replace")


def test_image_quarantines_name_the_feed_row_and_the_sku(settings, faulty_sample, tiny_encoder):
    image_faults: set[str] = set()
    for vendor, feed in faulty_sample.manifest.feeds.items():
        report = ingest_feed(settings, vendor, feed, tiny_encoder, "run-rows")
        for record in read_quarantine(Path(report.quarantine_path)):
            assert re.fullmatch(r"(line|record) \d+", record["row_ref"]), record
            if record["reason"] in IMAGE_REASONS:
                image_faults.add(record["reason"])
                assert record["message"].startswith(f"{record['row_ref']}, sku {record['vendor_sku']}: ")
                assert record["vendor_sku"] in _row_text(feed, record["row_ref"])
    assert image_faults == {"image_unreachable", "image_not_image", "image_too_large"}  # the sample's planted ones
