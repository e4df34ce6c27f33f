"""What the DAGs need from Airflow and nothing else: settings from Airflow connections (falling back
to ``LOOKSYNC_*`` settings, so the same code runs from the CLI), failure callbacks, default args, and
the event trigger that turns the vendor-update queue into asset events.

Connections (all optional: ``looksync_s3``, ``looksync_redis``, ``looksync_es``, ``looksync_llm``) are
resolved in ``looksync.airflow.connections`` through the providers' hooks.
Everything heavy is imported inside functions; this module is imported by DAG files at parse time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from looksync.settings import Settings, load_settings

log = logging.getLogger(__name__)

EMBEDDING_POOL = "embedding"
EMBEDDING_QUEUE = load_settings().airflow_embedding_queue  # LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE, read at parse time
OWNER = "catalog-data"


def connection_overrides() -> dict[str, Any]:
    """Settings values from the defined Airflow connections, read through the providers' hooks (see
    ``looksync.airflow.connections``); a malformed connection raises ``ConnectionConfigError`` naming it."""
    from looksync.airflow.connections import connection_overrides as overrides

    return overrides()


def airflow_settings(**overrides: Any) -> Settings:
    """Settings for a task: ``LOOKSYNC_*`` environment, then Airflow connections, then ``overrides``.
    Also makes the ``looksync_s3`` connection's boto3 session the task process's default, so the object
    stores (which make their clients with ``boto3.client``) sign with the connection's credentials."""
    from looksync.airflow.connections import use_s3_connection_credentials

    use_s3_connection_credentials()
    return load_settings(**{**connection_overrides(), **{k: v for k, v in overrides.items() if v is not None}})


def on_failure(context: dict[str, Any]) -> None:
    """Failure callback: one log line an engineer can act on (DAG, run, task, try, error)."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.error(
        "LookSync task failed: dag=%s run=%s task=%s try=%s error=%s: %s",
        getattr(ti, "dag_id", "?"), getattr(context.get("dag_run"), "run_id", "?"), getattr(ti, "task_id", "?"),
        getattr(ti, "try_number", "?"), type(error).__name__ if error else "-", error,
    )  # fmt: skip


DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": load_settings().airflow_retries,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": on_failure,
}


class VendorUpdateTrigger(BaseEventTrigger):
    """Fires one event per vendor-update message on the Redis stream (see ``looksync.pipelines.vendor_queue``).

    It reads with the consumer group and does not acknowledge: the ``catalog_ingest`` run created from
    the event acknowledges. A message whose run never came is delivered again after ``claim_idle_s``.
    """

    def __init__(self, redis_url: str, stream: str, group: str, consumer: str = "airflow-triggerer",
                 block_ms: int = 5000, claim_idle_s: int = 600, **kwargs: Any):  # fmt: skip
        super().__init__(**kwargs)
        self.redis_url, self.stream, self.group, self.consumer = redis_url, stream, group, consumer
        self.block_ms, self.claim_idle_s = block_ms, claim_idle_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "looksync.airflow.dag_support.VendorUpdateTrigger",
            {"redis_url": self.redis_url, "stream": self.stream, "group": self.group, "consumer": self.consumer,
             "block_ms": self.block_ms, "claim_idle_s": self.claim_idle_s},
        )  # fmt: skip

    def _queue(self):
        from looksync.catalog.attribute_mirror import open_redis
        from looksync.pipelines.vendor_queue import VendorUpdateQueue

        return VendorUpdateQueue(open_redis(self.redis_url), self.stream, self.group)

    async def run(self):
        queue = self._queue()
        while True:
            # redis-py's blocking client in a worker thread: the triggerer's event loop never blocks
            messages = await asyncio.to_thread(
                queue.read, self.consumer, 100, self.block_ms, self.claim_idle_s * 1000
            )
            for message in messages:
                ref = message.ref
                yield TriggerEvent({"message_id": message.message_id, "vendor": ref.vendor, "feed": ref.feed, "mode": ref.mode})
            if not messages:
                await asyncio.sleep(0)


def vendor_update_asset(settings: Settings | None = None):
    """The asset that stands for the vendor-update queue, watched by ``VendorUpdateTrigger``."""
    from airflow.sdk import Asset, AssetWatcher

    from looksync.airflow.connections import redis_overrides

    settings = settings or load_settings()
    # parse time: only the Redis URL, from AIRFLOW_CONN_LOOKSYNC_REDIS when set (no hook imports here)
    url = settings.queue_redis_url or redis_overrides().get("redis_url") or settings.redis_url or "redis://127.0.0.1:6379/0"
    trigger = VendorUpdateTrigger(url, settings.queue_stream, settings.queue_group, claim_idle_s=settings.queue_claim_idle_s)
    return Asset(
        name="looksync_vendor_updates",
        uri=f"redis://{url.split('://', 1)[-1].split('@')[-1]}/{settings.queue_stream}",
        watchers=[AssetWatcher(name="vendor_update_watcher", trigger=trigger)],
    )


def feeds_from_asset_events(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The vendor-update messages carried by the asset events that triggered a run (every event:
    the scheduler may fold several messages into one run)."""
    out = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            payload = (getattr(event, "extra", None) or {}).get("payload") or {}
            if payload.get("message_id"):
                out.append(payload)
    return out
