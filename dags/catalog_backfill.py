"""
### catalog_backfill — manual re-ingestion with parameters

Trigger it from the UI ("Trigger DAG" shows the form): pick **vendors** and their **feeds** (paths or
`s3://` URIs, one per vendor, same order), **force re-embed** (fetch every image again and recompute
its vector), a **CLIP model / weights** (a model other than the live index's: the products are embedded
with it and a new index version is built, validated and swapped in at the end), and **dry run** (parse,
detect, fetch and embed, but write nothing to the product store, the index or Redis).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from looksync.airflow.dag_support import DEFAULT_ARGS, EMBEDDING_POOL, EMBEDDING_QUEUE


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
    },
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

    @task(pool=EMBEDDING_POOL, queue=EMBEDDING_QUEUE)
    def ingest(ref: dict, params: dict | None = None) -> dict:
        from dataclasses import asdict

        from embeddings import ZeroShot, load_encoder_from_settings
        from looksync.airflow.connections import attribute_mirror
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.ingest import ingest_feed

        settings = airflow_settings(clip_model=params["clip_model"], clip_weights=params["clip_weights"])
        encoder = load_encoder_from_settings(settings)
        report = ingest_feed(
            settings, ref["vendor"], ref["feed"], encoder, get_current_context()["run_id"],
            index=open_index(settings), mirror=attribute_mirror(settings), zeroshot=lambda: ZeroShot(encoder),
            force_embed=params["force_reembed"], dry_run=params["dry_run"],
        )  # fmt: skip
        return asdict(report) | {"model_id": encoder.model_id}

    @task
    def reindex_if_new_model(reports: list[dict], params: dict | None = None) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import build_index

        settings = airflow_settings(clip_model=params["clip_model"], clip_weights=params["clip_weights"])
        index = open_index(settings)
        model_id = reports[0]["model_id"]
        if params["dry_run"] or index.live_model_id() == model_id:
            return {"reindexed": False, "live": index.live_version(), "model_id": model_id}
        report = build_index(settings, index, model_id, keep=settings.reindex_keep)
        return {"reindexed": True, "live": report.version, "model_id": model_id, "indexed": report.indexed}

    reindex_if_new_model(ingest.expand(ref=plan()))


catalog_backfill()
