"""
### catalog_backfill — manual re-ingestion with parameters

Trigger it from the UI ("Trigger DAG" shows the form): pick **vendors** and their **feeds** (paths or
`s3://` URIs, one per vendor, same order), **force re-embed** (fetch every image again and recompute
its vector), a **CLIP model / weights** (a model other than the live index's: the products are embedded
with it and a new index version is built, validated and swapped in at the end), **dry run** (parse,
detect, fetch and embed, but write nothing to the product store, the index or Redis), and the **shard
size**: each feed is split into shards of that many products, and each shard's fetch, embed (pool
`embedding`) and index tasks are mapped task instances that the workers run in parallel; deletions
of vanished products are decided once per feed, over all its shards (docs/airflow.md).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from looksync.airflow.dag_support import DEFAULT_ARGS
from looksync.airflow.sharded_ingest import sharded_ingest


@dag(
    dag_id="catalog_backfill",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["looksync", "catalog", "backfill"],
    params={
        "vendors": Param([], type="array", items={"type": "string"}, title="Vendors", description="Vendor config names"),
        "feeds": Param([], type="array", items={"type": "string"}, title="Feeds", description="One feed path or s3:// URI per vendor"),
        "force_reembed": Param(False, type="boolean", title="Force re-embed"),
        "clip_model": Param(None, type=["null", "string"], title="CLIP model", description="Default: LOOKSYNC_CLIP_MODEL"),
        "clip_weights": Param(None, type=["null", "string"], title="CLIP weights", description="Default: LOOKSYNC_CLIP_WEIGHTS"),
        "dry_run": Param(False, type="boolean", title="Dry run"),
        "shard_size": Param(None, type=["null", "integer"], minimum=1, title="Shard size",
                            description="Products per shard, each fetched, embedded and indexed by its own tasks "
                                        "(default LOOKSYNC_INGEST_SHARD_SIZE)"),
    },  # fmt: skip
)
def catalog_backfill():
    @task
    def plan(params: dict | None = None) -> list[dict]:
        from looksync.catalog.vendors import list_vendors

        vendors, feeds = params["vendors"], params["feeds"]
        if len(vendors) != len(feeds) or not vendors:
            raise ValueError(f"give one feed per vendor: {len(vendors)} vendors, {len(feeds)} feeds")
        unknown = sorted(set(vendors) - set(list_vendors()))
        if unknown:
            raise ValueError(f"unknown vendors {unknown}; known: {list_vendors()}")
        return [{"vendor": v, "feed": f, "mode": "full"} for v, f in zip(vendors, feeds, strict=True)]

    @task
    def reindex_if_new_model(reports: list[dict], params: dict | None = None) -> dict:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import build_index

        settings = airflow_settings(clip_model=params["clip_model"], clip_weights=params["clip_weights"])
        index = open_index(settings)
        model_id = load_encoder_from_settings(settings).model_id
        if params["dry_run"] or index.live_model_id() == model_id:
            return {"reindexed": False, "live": index.live_version(), "model_id": model_id}
        report = build_index(settings, index, model_id, keep=settings.reindex_keep)
        return {"reindexed": True, "live": report.version, "model_id": model_id, "indexed": report.indexed}

    reindex_if_new_model(sharded_ingest(plan()))


catalog_backfill()
