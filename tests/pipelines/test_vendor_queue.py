"""The durable queue on real Redis: a burst published while nothing consumes is ingested exactly once
per message through the trigger's own code path; malformed messages land in the dead-letter list."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import pytest

from looksync.pipelines.ingest import ingest_feed
from looksync.pipelines.vendor_queue import VendorUpdateQueue, take_feeds


@pytest.fixture
def queue(settings):
    q = VendorUpdateQueue.from_settings(settings)
    yield q
    q.clear()


def _trigger(settings, claim_idle_s=600):
    from looksync.airflow.dag_support import VendorUpdateTrigger

    return VendorUpdateTrigger(settings.queue_redis_url, settings.queue_stream, settings.queue_group,
                               block_ms=200, claim_idle_s=claim_idle_s)  # fmt: skip


def _collect(trigger, expected: int, timeout: float = 20.0) -> list[dict]:
    async def go():
        events = []
        agen = trigger.run()
        try:
            while len(events) < expected:
                events.append((await asyncio.wait_for(agen.__anext__(), timeout)).payload)
        except TimeoutError:
            pass
        finally:
            await agen.aclose()
        return events

    return asyncio.run(go())


def test_burst_while_nobody_listens_is_ingested_once_per_message(settings, queue, clean_sample, tiny_encoder):
    feeds = list(clean_sample.manifest.feeds.items())
    ids = [queue.publish(*feeds[i % 3], mode="delta") for i in range(20)]
    queue.publish_raw({"vendor": "nobody", "feed": "/tmp/x.csv"})
    queue.publish_raw({"feed": "/tmp/x.csv"})
    assert queue.redis.xlen(settings.queue_stream) == 22  # nothing consumed yet, nothing lost

    events = _collect(_trigger(settings), expected=20)
    assert sorted(e["message_id"] for e in events) == sorted(ids)
    dead = queue.dead_letters()
    assert [d["reason"].split(" ")[0:2] for d in dead] == [["vendor", "'nobody'"], ["field", "'vendor'"]]
    assert queue.pending() == 20  # delivered, not acknowledged: no run exists yet

    # the triggerer restarts before any run was created: the same messages come again once stale
    again = _collect(_trigger(settings, claim_idle_s=1), expected=20, timeout=5) if _sleep(1.1) else []
    assert sorted(e["message_id"] for e in again) == sorted(ids)

    # the runs: each takes its events (acknowledging them) and ingests; the re-delivered copies are skipped
    ingested = []
    for batch in (events[:7], events[7:], again):
        for ref in take_feeds(queue, batch):
            report = ingest_feed(settings, ref.vendor, ref.feed, tiny_encoder, f"run-{ref.message_id}",
                                 mode=ref.mode, message_id=ref.message_id)  # fmt: skip
            ingested.append(report.message_id)
    assert sorted(ingested) == sorted(ids)
    assert queue.pending() == 0
    assert _collect(_trigger(settings, claim_idle_s=1), expected=1, timeout=2) == []


def _sleep(seconds: float) -> bool:
    import time

    time.sleep(seconds)
    return True


def test_publish_refuses_a_malformed_update(queue):
    from looksync.pipelines.vendor_queue import MalformedMessage

    with pytest.raises(MalformedMessage, match="mode 'sometimes'"):
        queue.publish("desi_threads", "/feeds/x.csv", mode="sometimes")
    with pytest.raises(MalformedMessage, match="absolute path"):
        queue.publish("desi_threads", "feeds/x.csv")


def test_trigger_serializes_to_its_own_class(settings):
    classpath, kwargs = _trigger(settings).serialize()
    from airflow.sdk.module_loading import import_string

    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs) and asdict  # round-trips through the triggerer's form


def test_a_worker_killed_before_acknowledging_its_message_leaves_it_for_one_ingest(settings, queue, clean_sample, tiny_encoder):
    """A consumer process reads a message (pending to it) and is killed with SIGKILL before any run takes it:
    the message is not lost (another consumer claims it once idle), it is ingested once, and every later
    delivery of it (a second claim, a duplicate trigger event) is acknowledged without a second ingest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    vendor, feed = next(iter(clean_sample.manifest.feeds.items()))
    message_id = queue.publish(vendor, feed, mode="delta")
    doomed = subprocess.Popen(
        [sys.executable, "-c", (
            "import time\n"
            "from looksync.catalog.attribute_mirror import open_redis\n"
            "from looksync.pipelines.vendor_queue import VendorUpdateQueue\n"
            f"q = VendorUpdateQueue(open_redis({settings.queue_redis_url!r}), {settings.queue_stream!r}, "
            f"{settings.queue_group!r})\n"
            "print(*[m.message_id for m in q.read('doomed-worker', block_ms=5000)], flush=True)\n"
            "time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    try:
        assert doomed.stdout.readline().split() == [message_id]  # it has the message...
    finally:
        doomed.send_signal(signal.SIGKILL)  # ...and dies before a run acknowledged it
        doomed.wait(10)
    (pending,) = queue.redis.xpending_range(settings.queue_stream, settings.queue_group, "-", "+", 10)
    assert pending["consumer"] == "doomed-worker" and queue.pending() == 1

    ingested = []

    def run(payloads, poll=False):
        for ref in take_feeds(queue, payloads, poll=poll):
            report = ingest_feed(settings, ref.vendor, ref.feed, tiny_encoder, f"run-{ref.message_id}",
                                 mode=ref.mode, message_id=ref.message_id)  # fmt: skip
            ingested.append(report.message_id)

    time.sleep(0.3)
    claimed = queue.read("survivor", claim_idle_ms=200)  # redelivered once idle
    assert [m.message_id for m in claimed] == [message_id]
    payload = {"message_id": message_id, "vendor": vendor, "feed": str(feed), "mode": "delta"}
    run([payload])
    assert ingested == [message_id] and queue.pending() == 0
    run([payload])  # the trigger fired twice for it: a duplicate event
    time.sleep(0.3)
    run([], poll=True)  # and the scheduled run polls the queue
    assert ingested == [message_id]  # one ingest, no duplicate
    assert queue.read("late", claim_idle_ms=1) == [] and queue.pending() == 0
