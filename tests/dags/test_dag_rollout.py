"""``dag.test()`` runs of catalog_model_rollout on a sample catalog: a better candidate (a checkpoint tuned
on the catalog, over a random-weights live model) is promoted; a worse one (random weights over the tuned
live model) is stopped with live unchanged; the promotion rolls back. Mirrored queries come from replaying
the evaluation looks and texts through the service's mirroring code path (``shadow_source=replay``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL
from tests.dags.conftest import run_dag_test, sample_for_dag_runs

# The decision in these runs rests on the offline gate: with a few products per (layer, market) every look
# query's top 10 holds all of them whatever the model, so the shadow agreement of two unrelated models says
# little here. Its bounds are loosened; tests/quality/test_rollout_gates.py tests them.
GATES = {"gate_min_mirrored": 20, "gate_min_overlap": 0.0, "gate_min_layer_overlap": 0.0,
         "gate_min_rank_correlation": -1.0, "gate_max_score_shift": 2.0,
         "gate_recall_tasks": ["look", "text_caption", "text_title"]}  # fmt: skip


def _settings(env):
    from looksync.settings import load_settings

    return load_settings(
        **{k.removeprefix("LOOKSYNC_").lower(): v for k, v in env.items() if k.startswith("LOOKSYNC_")}
    )


@pytest.fixture(scope="module")
def rollout_catalog(tmp_path_factory, s3_endpoint):
    """A sample with looks, ingested and indexed with a random-weights model (live), and a checkpoint
    fine-tuned on the sample's products (the better candidate)."""
    from embeddings import load_encoder
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.reindex import build_index
    from looksync.quality.finetune import FinetuneConfig, finetune, sample_pairs

    root = tmp_path_factory.mktemp("rollout")
    made = sample_for_dag_runs(root, s3_endpoint, size=120, seed=8, fault_rate=0.0, name="rollout", n_looks=10)
    env = made["env"]
    settings = _settings(env)
    encoder = load_encoder(TINY_MODEL, str(made["checkpoint"]), device="cpu")
    for vendor, feed in made["manifest"].feeds.items():
        ingest_feed(settings, vendor, feed, encoder)
    live = build_index(settings, open_index(settings), encoder.model_id).version
    tuned = finetune(sample_pairs(made["manifest"].root), FinetuneConfig(epochs=10, batch_size=32, lr=2e-3, warmup_steps=5,
                                                                         holdout=0.0, seed=1), root / "tuned.pt")  # fmt: skip
    yield {"env": env, "settings": settings, "live": live, "random": str(made["checkpoint"]), "random_id": encoder.model_id,
           "tuned": tuned.checkpoint, "tuned_id": tuned.model_id, "sample": str(made["manifest"].root)}  # fmt: skip
    made["server"].close()


def _decision(settings, run_id: str) -> dict:
    from looksync.quality.rollout.steps import rollout_dir

    return json.loads((rollout_dir(settings, run_id) / "decision.json").read_text())


def test_a_better_model_is_promoted_a_worse_one_stopped_and_the_promotion_rolls_back(airflow_env, rollout_catalog):
    from looksync.index.factory import open_index
    from looksync.quality.rollout.steps import rollout_dir
    from looksync.search.shadow import ShadowLog

    c = rollout_catalog
    settings = c["settings"]
    conf = {"shadow_source": "replay", "eval_sample": c["sample"], "eval_text_products": 50, **GATES}

    # 1. tuned checkpoint over random-weights live: promoted in one swap, the old live the rollback target
    better = run_dag_test(airflow_env, "catalog_model_rollout", {**conf, "weights": c["tuned"]}, c["env"], timeout=900)
    assert better["state"] == "success", better["log_tail"]
    tasks = better["tasks"]
    assert tasks["promote[-1]"] == "success" and tasks["stop[-1]"] == "skipped", tasks
    candidate = better["xcom"]["candidate[-1]"]
    assert candidate["embedded"] > 0 and candidate["reused"] == 0 and candidate["model_id"] == c["tuned_id"]
    index = open_index(settings)
    assert index.live_version() == candidate["version"] and index.live_model_id() == c["tuned_id"]
    assert index.shadow_version() is None and index.previous_version().name == c["live"]
    decision = _decision(settings, better["run_id"])
    assert decision["promote"] and all(g["passed"] for g in decision["gates"])
    offline = decision["gates"][0]["figures"]
    assert (
        offline["text_caption"]["difference"] > 0 and offline["text_caption"]["ci_low"] > 0
    )  # better, not only no worse
    records = ShadowLog(settings.resolved_shadow_log_dir, candidate["version"]).read()
    assert len(records) == decision["shadow"]["mirrored"] >= GATES["gate_min_mirrored"]
    assert {r["kind"] for r in records} == {"look", "text"} and all(r["live_version"] == c["live"] for r in records)
    report = rollout_dir(settings, better["run_id"]) / "report.html"
    assert f"rollout evidence report: file://{report}" in better["log_tail"] and "promote" in report.read_text()
    assert "looksync_rollout_promoted{" in (report.parent / "rollout.prom").read_text()

    # 2. random weights over the tuned live model: stopped, live untouched, the candidate dropped
    tuned_env = {**c["env"], "LOOKSYNC_CLIP_WEIGHTS": c["tuned"]}  # the service now runs the tuned model
    worse = run_dag_test(airflow_env, "catalog_model_rollout", {**conf, "weights": c["random"]}, tuned_env, timeout=900)
    assert worse["state"] == "success", worse["log_tail"]
    assert worse["tasks"]["stop[-1]"] == "success" and worse["tasks"]["promote[-1]"] == "skipped", worse["tasks"]
    stopped = worse["xcom"]["candidate[-1]"]
    assert stopped["embedded"] == 0 and stopped["reused"] > 0  # the store already held the random model's vectors
    index = open_index(settings)
    assert index.live_version() == candidate["version"] and index.shadow_version() is None
    assert stopped["version"] not in {i.name for i in index.list_versions()}
    decision = _decision(settings, worse["run_id"])
    failed = [g for g in decision["gates"] if not g["passed"]]
    assert not decision["promote"] and [g["name"] for g in failed] == ["offline_recall"]
    assert "text_caption: Recall@10 candidate - live = -" in failed[0]["reason"]
    assert "stop: live left as it was" in (rollout_dir(settings, worse["run_id"]) / "report.html").read_text()

    # 3. rollback: one swap back to the random-weights version the promotion replaced
    assert index.rollback(allow_model_change=True) == (candidate["version"], c["live"])
    assert open_index(settings).live_model_id() == c["random_id"]


def test_a_rollout_without_a_live_version_fails_at_the_candidate_step(airflow_env, tmp_path):
    from tests.conftest import tiny_model_env

    env = {**tiny_model_env(tmp_path / "data", Path("unused.pt")), "LOOKSYNC_AIRFLOW_RETRIES": "0"}
    result = run_dag_test(airflow_env, "catalog_model_rollout", {"weights": "random:3", "shadow_source": "replay"}, env)
    assert result["state"] == "failed" and result["tasks"]["candidate[-1]"] == "failed"
    assert "no live index version" in result["log_tail"]
