"""
### catalog_ingest — vendor feeds into the live catalog

One run ingests one batch of vendor feeds: the update messages that triggered it (the
`looksync_vendor_updates` asset, watched on the Redis stream), anything left waiting in the queue
(the 6-hourly safety-net run), and feeds given in the run's `feeds` param.

Per feed: **parse** with the vendor's mapping (bad rows -> quarantine with a reason) -> **detect changes**
against the stored products -> **fetch** new/changed images (guarded; each new image's thumbnail stored
for the service's result cards) -> **embed** (pool `embedding`;
stored vectors reused by image hash + model) -> **standardise** (rules, then CLIP zero-shot) -> **apply**
(product store, live index upsert / metadata update / delete, Redis attribute mirror).
Deletions of vanished products are **held** (products left live, a warning in the detect task's log and
the report's notes) when a feed was not read completely or too large a share vanished; trigger with
`confirm_deletions: true` to release them. Then once per
run: **group near-duplicates** and **write the run report** (counts per outcome, quarantine reasons,
coverage chart: the `write_report` task's return value has its URI).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from looksync.airflow.dag_support import DEFAULT_ARGS, EMBEDDING_POOL, EMBEDDING_QUEUE, vendor_update_asset

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
    def parse(ref: dict) -> str:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.feed_ref import FeedRef
        from looksync.pipelines.ingest import parse_stage

        return str(parse_stage(airflow_settings(), FeedRef(**ref), get_current_context()["run_id"]).path)

    @task
    def detect_changes(workspace: str) -> str:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.ingest import Workspace, detect_stage

        settings = airflow_settings()
        model_id = load_encoder_from_settings(settings).model_id
        confirm = bool(get_current_context()["params"].get("confirm_deletions", False))
        return str(detect_stage(settings, Workspace(workspace), model_id, confirm_deletions=confirm).path)

    @task
    def fetch_images(workspace: str) -> str:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.ingest import Workspace, fetch_stage

        return str(fetch_stage(airflow_settings(), Workspace(workspace)).path)

    @task(pool=EMBEDDING_POOL, queue=EMBEDDING_QUEUE)
    def embed(workspace: str) -> str:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.ingest import Workspace, embed_stage

        settings = airflow_settings()
        return str(embed_stage(settings, Workspace(workspace), load_encoder_from_settings(settings)).path)

    @task
    def standardise(workspace: str) -> str:
        from embeddings import ZeroShot, load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.pipelines.ingest import Workspace, standardise_stage

        settings = airflow_settings()
        encoder = load_encoder_from_settings(settings)
        return str(standardise_stage(settings, Workspace(workspace), encoder.model_id, ZeroShot(encoder)).path)

    @task(max_active_tis_per_dagrun=1)  # one writer at a time on the stores and the index
    def apply_changes(workspace: str) -> dict:
        from dataclasses import asdict

        from looksync.airflow.connections import attribute_mirror
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.ingest import Workspace, apply_stage

        settings = airflow_settings()
        report = apply_stage(settings, Workspace(workspace), open_index(settings), attribute_mirror(settings))
        return asdict(report)

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
        report = report_stage(settings, run_id, list(reports), {"dedup": groups}, attribute_mirror(settings))
        return {"uris": report["uris"], "outcomes": report["outcomes"], "quarantine": report["quarantine_reasons"]}

    workspaces = standardise.expand(
        workspace=embed.expand(workspace=fetch_images.expand(workspace=detect_changes.expand(workspace=parse.expand(ref=collect_feeds()))))
    )
    reports = apply_changes.expand(workspace=workspaces)
    write_report(reports, group_duplicates(reports))


catalog_ingest()
