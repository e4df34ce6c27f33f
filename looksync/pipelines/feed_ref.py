"""A reference to one vendor feed to ingest: what the vendor-update queue hands the ingest pipeline.

Its own small module so the queue and the ingest stages both use it without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class FeedRef:
    """One feed to ingest: a vendor and where its feed is (a local path, ``file://`` or ``s3://`` URI).

    ``mode`` "full" means the feed lists every current product of the vendor (absent ones are deleted);
    "delta" means it lists only changed products."""

    vendor: str
    feed: str
    mode: str = "full"
    message_id: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("full", "delta"):
            raise ValueError(f"feed mode must be 'full' or 'delta', got {self.mode!r}")
        self.feed = str(self.feed)

    @property
    def key(self) -> str:
        digest = hashlib.sha1(f"{self.feed}\x00{self.message_id or ''}".encode()).hexdigest()[:8]
        return f"{self.vendor}-{digest}"
