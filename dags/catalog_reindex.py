"""
### catalog_reindex — rebuild the whole index from the embeddings store

**build** a new index version from the product store and the embeddings store (no embedding is
recomputed) -> **validate** it (document count, sampled recall@10 against exact search) -> **swap** the
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
    params={"model_id": Param(None, type=["null", "string"], description="Model id to index (default: the configured model)")},
)
def catalog_reindex():
    @task
    def build(params: dict | None = None) -> dict:
        from embeddings import load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.pipelines.reindex import build_version

        settings = airflow_settings()
        model_id = params.get("model_id") or load_encoder_from_settings(settings).model_id
        report = build_version(settings, open_index(settings), model_id)
        return {"version": report.version, "model_id": model_id, "indexed": report.indexed,
                "failures": report.failures[:100], "missing_vectors": len(report.missing_vectors),
                "previous_live": report.previous_live}  # fmt: skip

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

    built = build()
    prune(snapshot(swap(built, validate(built))))


catalog_reindex()
