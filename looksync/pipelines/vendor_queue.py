"""The durable vendor-update queue: a Redis stream with a consumer group, acknowledgements and a
dead-letter list.

A vendor (or the ``looksync queue publish`` command) adds one stream entry per update::

    XADD looksync:vendor-updates * vendor desi_threads feed s3://bucket/feeds/desi_threads/2024-05-01.csv mode full

Fields: ``vendor`` (a configured vendor name), ``feed`` (local path, ``file://`` or ``s3://`` URI),
optional ``mode`` (``full``: absent products are deleted, the default; ``delta``: only listed products
change). Unlike pub/sub, an entry published while no consumer listens stays in the stream until the
consumer group reads it, and stays *pending* until acknowledged: the consumer (the Airflow trigger)
does not acknowledge; the ``catalog_ingest`` run that handles the message does, once it exists. An
entry left pending longer than ``claim_idle_s`` (a run was never created) is delivered again. A
malformed entry is moved to the dead-letter list ``<stream>:dead`` with its reason and acknowledged.
``<stream>:started`` remembers the messages a run has taken, so a re-delivered message whose run
already exists is acknowledged without a second ingest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from looksync.pipelines.feed_ref import FeedRef


class MalformedMessage(ValueError):
    """A queue entry that cannot name a feed to ingest; the message says which field and why."""


@dataclass
class QueueMessage:
    message_id: str
    ref: FeedRef


def parse_message(message_id: str, fields: dict[str, Any]) -> FeedRef:
    from looksync.catalog.vendors import list_vendors

    vendor = str(fields.get("vendor") or "").strip()
    feed = str(fields.get("feed") or "").strip()
    mode = str(fields.get("mode") or "full").strip()
    if not vendor:
        raise MalformedMessage("field 'vendor' is missing or empty")
    if vendor not in list_vendors():
        raise MalformedMessage(f"vendor {vendor!r} has no configuration; known: {', '.join(list_vendors())}")
    if not feed:
        raise MalformedMessage("field 'feed' is missing or empty")
    if not feed.startswith(("s3://", "file://", "/")):
        raise MalformedMessage(f"feed {feed!r} must be an absolute path, a file:// or an s3:// URI")
    if mode not in ("full", "delta"):
        raise MalformedMessage(f"mode {mode!r} must be 'full' or 'delta'")
    return FeedRef(vendor, feed, mode=mode, message_id=message_id)


def dead_letter_entry(message_id: str, fields: dict[str, Any], reason: str) -> str:
    return json.dumps({"message_id": message_id, "fields": fields, "reason": reason,
                       "at": datetime.now(UTC).isoformat()}, ensure_ascii=False)  # fmt: skip


class VendorUpdateQueue:
    def __init__(self, client: Any, stream: str = "looksync:vendor-updates", group: str = "catalog_ingest"):
        self.redis = client
        self.stream = stream
        self.group = group
        self.dead_key = f"{stream}:dead"
        self.started_key = f"{stream}:started"

    @classmethod
    def from_settings(cls, settings) -> VendorUpdateQueue:
        from looksync.catalog.attribute_mirror import open_redis

        url = settings.queue_redis_url or settings.redis_url
        if not url:
            raise RuntimeError("no Redis for the vendor-update queue: set LOOKSYNC_QUEUE_REDIS_URL or LOOKSYNC_REDIS_URL")
        return cls(open_redis(url), settings.queue_stream, settings.queue_group)

    def ensure_group(self) -> None:
        import redis

        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def publish(self, vendor: str, feed: str, mode: str = "full") -> str:
        """Add an update (validated first: a malformed one is refused here, not dead-lettered)."""
        parse_message("-", {"vendor": vendor, "feed": str(feed), "mode": mode})
        return self.publish_raw({"vendor": vendor, "feed": str(feed), "mode": mode})

    def publish_raw(self, fields: dict[str, str]) -> str:
        return self.redis.xadd(self.stream, fields)

    def sort(self, entries: list[tuple[str, dict[str, Any]]]) -> list[QueueMessage]:
        """Valid entries as messages; malformed ones dead-lettered with their reason and acknowledged."""
        good = []
        for message_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                self.redis.xack(self.stream, self.group, message_id)
                continue
            try:
                good.append(QueueMessage(message_id, parse_message(message_id, fields)))
            except MalformedMessage as exc:
                self.redis.rpush(self.dead_key, dead_letter_entry(message_id, fields, str(exc)))
                self.redis.xack(self.stream, self.group, message_id)
        return good

    def read(self, consumer: str, count: int = 100, block_ms: int | None = None, claim_idle_ms: int = 600_000) -> list[QueueMessage]:
        """Messages to hand to runs: first those pending too long (their run never came), then new ones.
        Nothing is acknowledged here except dead letters."""
        self.ensure_group()
        _next, claimed, *_ = self.redis.xautoclaim(self.stream, self.group, consumer, claim_idle_ms, "0-0", count=count)
        entries = list(claimed)
        if len(entries) < count:
            response = self.redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count - len(entries), block=block_ms)
            for _stream, items in response or []:
                entries.extend(items)
        return self.sort(entries)

    def start(self, message_id: str) -> bool:
        """Record that a run took this message and acknowledge it; False when a run already had it
        (a re-delivery), so the caller skips the ingest."""
        first = bool(self.redis.sadd(self.started_key, message_id))
        self.redis.xack(self.stream, self.group, message_id)
        return first

    def pending(self) -> int:
        self.ensure_group()
        return int(self.redis.xpending(self.stream, self.group)["pending"])

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange(self.dead_key, 0, -1)]

    def clear(self) -> None:
        self.redis.delete(self.stream, self.dead_key, self.started_key)


def take_feeds(queue: VendorUpdateQueue, payloads: list[dict[str, Any]], poll: bool = False,
               consumer: str = "catalog_ingest-run") -> list[FeedRef]:  # fmt: skip
    """What a ``catalog_ingest`` run ingests: the messages of its triggering events (and, on the
    scheduled safety-net run, whatever is waiting in the queue), each acknowledged now that the run
    exists. Messages another run already took are skipped, so a re-delivery never ingests twice."""
    refs = []
    for payload in payloads:
        try:
            ref = parse_message(payload["message_id"], payload)
        except (KeyError, MalformedMessage) as exc:
            queue.redis.rpush(queue.dead_key, dead_letter_entry(str(payload.get("message_id")), payload, str(exc)))
            continue
        if queue.start(ref.message_id):
            refs.append(ref)
    if poll:
        for message in queue.read(consumer, count=1000, block_ms=None, claim_idle_ms=60_000):
            if queue.start(message.message_id):
                refs.append(message.ref)
    return refs
