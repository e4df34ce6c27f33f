"""The ingest tasks `catalog_ingest` and `catalog_backfill` share: per feed parse -> detect_changes ->
split_shards, then the heavy stages mapped over every shard of every feed (dynamic task mapping:
each shard is one task instance, which CeleryExecutor / KubernetesExecutor workers run in parallel):
fetch_images -> embed (pool `embedding`, queue LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE) -> standardise ->
apply_shard (index and store upserts, in parallel per shard), then once per feed apply_changes
(deletions decided over the whole feed, the feed's report). Domain code: ``looksync.pipelines.shards``.

The tasks read the run's Params where the DAG has them: ``shard_size`` (default
LOOKSYNC_INGEST_SHARD_SIZE), ``confirm_deletions``, and the backfill's ``clip_model``, ``clip_weights``,
``force_reembed``, ``dry_run``. Imported by DAG files at parse time: nothing heavy at module level.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

from looksync.airflow.dag_support import EMBEDDING_POOL, EMBEDDING_QUEUE


def _params() -> dict[str, Any]:
    return dict(get_current_context()["params"] or {})


def _settings():
    from looksync.airflow.dag_support import airflow_settings

    params = _params()
    return airflow_settings(clip_model=params.get("clip_model"), clip_weights=params.get("clip_weights"))


def _encoder(settings):
    from embeddings import load_encoder_from_settings

    return load_encoder_from_settings(settings)


def sharded_ingest(refs):
    """Add the ingest tasks to the DAG being defined, fed by ``refs`` (an XComArg of ``FeedRef`` dicts);
    returns the XComArg of ``apply_changes``: one ``IngestReport`` dict per feed."""

    @task
    def parse(ref: dict) -> str:
        from looksync.pipelines.feed_ref import FeedRef
        from looksync.pipelines.ingest import parse_stage

        return str(parse_stage(_settings(), FeedRef(**ref), get_current_context()["run_id"]).path)

    @task
    def detect_changes(workspace: str) -> str:
        from looksync.pipelines.ingest import Workspace, detect_stage

        settings, params = _settings(), _params()
        ws = detect_stage(settings, Workspace(workspace), _encoder(settings).model_id,
                          refetch=bool(params.get("force_reembed", False)),
                          confirm_deletions=bool(params.get("confirm_deletions", False)))  # fmt: skip
        return str(ws.path)

    @task
    def split_shards(workspace: str) -> list[str]:
        from looksync.pipelines.ingest import Workspace
        from looksync.pipelines.shards import split_stage

        shards = split_stage(_settings(), Workspace(workspace), _params().get("shard_size"))
        return [str(s.path) for s in shards]

    @task
    def shards(per_feed: list[list[str]]) -> list[str]:
        """Every shard of every feed, one list: what the shard tasks are mapped over."""
        return [path for paths in per_feed for path in paths]

    @task
    def fetch_images(shard: str) -> str:
        from looksync.pipelines.ingest import fetch_stage
        from looksync.pipelines.shards import ShardWorkspace, run_shard_stage

        settings, ws = _settings(), ShardWorkspace(shard)
        run_shard_stage(ws, "fetch", lambda: fetch_stage(settings, ws))
        return shard

    @task(pool=EMBEDDING_POOL, queue=EMBEDDING_QUEUE)
    def embed(shard: str) -> str:
        from looksync.pipelines.ingest import embed_stage
        from looksync.pipelines.shards import ShardWorkspace, run_shard_stage

        settings, ws = _settings(), ShardWorkspace(shard)
        encoder, force = _encoder(settings), bool(_params().get("force_reembed", False))
        run_shard_stage(ws, "embed", lambda: embed_stage(settings, ws, encoder, force=force))
        return shard

    @task
    def standardise(shard: str) -> str:
        from embeddings import ZeroShot
        from looksync.pipelines.ingest import standardise_stage
        from looksync.pipelines.shards import ShardWorkspace, run_shard_stage

        settings, ws = _settings(), ShardWorkspace(shard)
        encoder = _encoder(settings)
        run_shard_stage(ws, "standardise", lambda: standardise_stage(settings, ws, encoder.model_id, ZeroShot(encoder)))
        return shard

    @task
    def apply_shard(shard: str) -> dict:
        from dataclasses import asdict

        from looksync.airflow.connections import attribute_mirror
        from looksync.index.factory import open_index
        from looksync.pipelines.shards import ShardWorkspace
        from looksync.pipelines.shards import apply_shard as apply

        settings = _settings()
        report = apply(settings, ShardWorkspace(shard), open_index(settings), attribute_mirror(settings),
                       dry_run=bool(_params().get("dry_run", False)))  # fmt: skip
        return asdict(report) | {"shard": ShardWorkspace(shard).shard}

    @task
    def apply_changes(workspace: str) -> dict:
        from dataclasses import asdict

        from looksync.airflow.connections import attribute_mirror
        from looksync.index.factory import open_index
        from looksync.pipelines.ingest import Workspace
        from looksync.pipelines.shards import finish_feed, shards_of

        settings, ws = _settings(), Workspace(workspace)
        report = finish_feed(settings, ws, open_index(settings), attribute_mirror(settings),
                             dry_run=bool(_params().get("dry_run", False)))  # fmt: skip
        return asdict(report) | {"shards": len(shards_of(ws))}

    feeds = detect_changes.expand(workspace=parse.expand(ref=refs))
    every_shard = shards(split_shards.expand(workspace=feeds))
    applied = apply_shard.expand(
        shard=standardise.expand(shard=embed.expand(shard=fetch_images.expand(shard=every_shard)))
    )
    reports = apply_changes.expand(workspace=feeds)
    applied >> reports  # every shard applied before any feed's deletions
    return reports
