"""
### catalog_reindex — rebuild the whole index from the embeddings store

**build** a new index version from the product store and the embeddings store (no embedding is
recomputed): the products are cut into shards of `shard_size` and **load_shard** (mapped, one task
instance per shard, run in parallel by the workers) bulk-loads each, then **end_load** ends the bulk
load and checks the count -> **validate** it (document count, sampled recall@10 against exact search) -> **swap** the
live alias to it (atomic) -> **snapshot** the new version (S3 when `LOOKSYNC_S3_BUCKET` or the
`looksync_s3` connection names a bucket) -> **prune** old versions (keeps `LOOKSYNC_REINDEX_KEEP`).

A failure at any step before the swap leaves the live version serving. The `model_id` param builds for
another model (its vectors must be in the embeddings store: run `catalog_backfill` with that model first).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from looksync.airflow.dag_support import DEFAULT_ARGS


@dag(
    dag_id="catalog_reindex",
    doc_md=__doc__,
    schedule="@weekly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["looksync", "catalog", "index"],
    params={
        "model_id": Param(None, type=["null", "string"], description="Model id to index (default: the configured model)"),
        "shard_size": Param(None, type=["null", "integer"], minimum=1, title="Shard size",
                            description="Products per bulk-load shard (default LOOKSYNC_INGEST_SHARD_SIZE)"),
    },  # fmt: skip
)
def catalog_reindex():
    @task
    def build(params: dict | None = None) -> dict:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import plan_build

        settings = airflow_settings()
        model_id = params.get("model_id") or load_encoder_from_settings(settings).model_id
        return plan_build(settings, open_index(settings), model_id, params.get("shard_size") or settings.ingest_shard_size)

    @task
    def shard_ranges(plan: dict) -> list[list[int]]:
        return plan["ranges"]

    @task
    def load_shard(plan: dict, rows: list[int]) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import load_build_shard

        settings = airflow_settings()
        loaded = load_build_shard(settings, open_index(settings), plan["version"], plan["model_id"], *rows)
        return loaded | {"failures": loaded["failures"][:100]}

    @task
    def end_load(plan: dict, loaded: list[dict]) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import finish_build

        report = finish_build(open_index(airflow_settings()), plan, list(loaded))
        return {"version": report.version, "model_id": report.model_id, "indexed": report.indexed,
                "failures": report.failures[:100], "missing_vectors": plan["missing_count"],
                "previous_live": report.previous_live, "shards": len(plan["ranges"])}  # fmt: skip

    @task
    def validate(built: dict) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import validate_build

        settings = airflow_settings()
        return validate_build(settings, open_index(settings), built["version"], built["model_id"], built["failures"])

    @task
    def swap(built: dict, validation: dict) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import swap as swap_live

        previous = swap_live(open_index(airflow_settings()), built["version"])
        return {"live": built["version"], "previous": previous, "recall": validation["recall"]}

    @task
    def snapshot(swapped: dict) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import snapshot as take_snapshot

        return take_snapshot(open_index(airflow_settings()), swapped["live"])

    @task
    def prune(snapshot_info: dict) -> list[str]:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import prune as prune_versions

        settings = airflow_settings()
        return prune_versions(open_index(settings), settings.reindex_keep)

    plan = build()
    built = end_load(plan, load_shard.partial(plan=plan).expand(rows=shard_ranges(plan)))
    prune(snapshot(swap(built, validate(built))))


catalog_reindex()
