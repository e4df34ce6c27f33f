"""Quarantine: rows that cannot become products, each with a reason code and a message.

Every stage that rejects a row (feed parsing, validation, image fetch) reports it here, so nothing a
vendor sent disappears silently. Records are appended as JSON Lines under the run's directory.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Reason(StrEnum):
    """Why a row was quarantined. The sample generator's planted faults use the same codes."""

    MISSING_SKU = "missing_sku"
    DUPLICATE_SKU = "duplicate_sku"
    BAD_PRICE = "bad_price"
    NEGATIVE_PRICE = "negative_price"  # below zero, -0 included
    PRICE_OUT_OF_RANGE = "price_out_of_range"  # zero (unless the vendor allows it) or above the market's max_price
    UNKNOWN_CATEGORY = "unknown_category"
    BAD_ENCODING = "bad_encoding"
    TRUNCATED_ROW = "truncated_row"  # a row cut off before its end (a record begun and never closed)
    MALFORMED_ROW = "malformed_row"  # a row that is not JSON / XML at all, or broken in its middle
    URL_SCHEME = "url_scheme"  # an image or product URL whose scheme is not http(s) (gopher:, data:, ftp:, javascript:)
    INVALID_FIELD = "invalid_field"  # any other schema violation (message names the field)
    IMAGE_UNREACHABLE = "image_unreachable"  # DNS/connect/timeout/HTTP error status
    IMAGE_NOT_IMAGE = "image_not_image"  # wrong content type or bytes that do not decode as an image
    IMAGE_EMPTY = "image_empty"  # an empty body
    IMAGE_SVG = "image_svg"  # a vector (SVG) image: not embedded, send a raster image
    IMAGE_BLANK = "image_blank"  # nothing visible: one colour, or fully transparent
    IMAGE_TOO_LARGE = "image_too_large"  # over the byte or pixel cap
    IMAGE_BLOCKED = "image_blocked"  # address refused by the fetch guard (private/loopback/link-local)
    IMAGE_URL_INVALID = "image_url_invalid"  # an image URL the fetch guard cannot parse (scheme, host, port)


@dataclass
class QuarantineRecord:
    vendor: str
    reason: Reason
    message: str
    row_ref: str  # where the row was in the feed: "line 17" (CSV, JSON Lines), "record 4" (XML)
    raw: Any = None  # the row as read (a dict, or text for rows that could not be parsed)
    vendor_sku: str | None = None
    line: int | None = None  # the physical line of the feed the row starts on (XML records too)
    run_id: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        data = asdict(self)
        data["reason"] = str(self.reason)
        return json.dumps(data, ensure_ascii=False, default=str)


class QuarantineWriter:
    """Appends quarantine records for one run to ``<dir>/<run_id>.jsonl`` (thread-safe)."""

    def __init__(self, directory: Path, run_id: str):
        self.path = Path(directory) / f"{run_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, record: QuarantineRecord) -> None:
        record.run_id = self.run_id
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(record.to_json() + "\n")
            self.counts[str(record.reason)] = self.counts.get(str(record.reason), 0) + 1


def read_quarantine(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
