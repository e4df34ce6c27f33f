"""
### catalog_ingest — vendor feeds into the live catalog

One run ingests one batch of vendor feeds: the update messages that triggered it (the
`looksync_vendor_updates` asset, watched on the Redis stream), anything left waiting in the queue
(the 6-hourly safety-net run), and feeds given in the run's `feeds` param.

Per feed: **parse** with the vendor's mapping (bad rows -> quarantine with a reason) -> **detect changes**
against the stored products (vanished products decided here, over the whole feed) -> **split** into
shards of `shard_size` products; per shard (mapped: workers run the shards in parallel): **fetch**
new/changed images (guarded; each new image's thumbnail stored for the service's result cards) ->
**embed** (pool `embedding`; stored vectors reused by image hash + model) -> **standardise** (rules, then CLIP zero-shot) -> **apply_shard**
(product store, live index upsert / metadata update, Redis attribute mirror); then per feed, once every
shard is in, **apply_changes** (deletions of vanished products, the feed's report).
Deletions of vanished products are **held** (products left live, a warning in the detect task's log and
the report's notes) when a feed was not read completely or too large a share vanished; trigger with
`confirm_deletions: true` to release them. Then once per
run: **group near-duplicates** (one item sold by several vendors or in several markets becomes one group:
group ids stored with the products, group records with each group's offers for the service) and **write
the run report** (counts per outcome, quarantine reasons, product groups, coverage chart: the
`write_report` task's return value has its URI).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from looksync.airflow.dag_support import DEFAULT_ARGS, vendor_update_asset
from looksync.airflow.sharded_ingest import sharded_ingest

VENDOR_UPDATES = vendor_update_asset()


@dag(
    dag_id="catalog_ingest",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 */6 * * *", timezone="UTC"), assets=VENDOR_UPDATES),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["looksync", "catalog", "ingest"],
    params={
        "feeds": Param([], type="array", description="Extra feeds: [{vendor, feed, mode}] (mode: full|delta)"),
        "confirm_deletions": Param(False, type="boolean",
                                   description="Delete vanished products even where the run would hold its deletions"),
        "shard_size": Param(None, type=["null", "integer"], minimum=1, title="Shard size",
                            description="Products per shard (default LOOKSYNC_INGEST_SHARD_SIZE)"),
    },  # fmt: skip
)
def catalog_ingest():
    @task
    def collect_feeds() -> list[dict]:
        from dataclasses import asdict

        from looksync.airflow.connections import vendor_update_queue
        from looksync.airflow.dag_support import airflow_settings, feeds_from_asset_events
        from looksync.pipelines.feed_ref import FeedRef
        from looksync.pipelines.vendor_queue import take_feeds

        context = get_current_context()
        settings = airflow_settings()
        payloads = feeds_from_asset_events(context.get("triggering_asset_events"))
        refs = [FeedRef(**f) for f in context["params"]["feeds"]]
        scheduled = context["dag_run"].run_type == "scheduled"
        if payloads or scheduled:
            refs += take_feeds(vendor_update_queue(settings), payloads, poll=scheduled)
        return [asdict(r) for r in refs]

    @task
    def group_duplicates(reports: list[dict]) -> dict:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.connections import attribute_mirror
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.dedup import group_catalog

        settings = airflow_settings()
        model_id = load_encoder_from_settings(settings).model_id
        return group_catalog(settings, model_id, attribute_mirror(settings))

    @task
    def write_report(reports: list[dict], groups: dict) -> dict:
        from looksync.airflow.connections import attribute_mirror
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.run_report import report_stage

        settings = airflow_settings()
        run_id = get_current_context()["run_id"]
        report = report_stage(settings, run_id, list(reports), {"groups": groups}, attribute_mirror(settings))
        return {"uris": report["uris"], "outcomes": report["outcomes"], "quarantine": report["quarantine_reasons"]}

    reports = sharded_ingest(collect_feeds())
    write_report(reports, group_duplicates(reports))


catalog_ingest()
