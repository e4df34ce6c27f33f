"""
### catalog_model_rollout — change the model without fear: shadow, compare, promote on evidence

**candidate**: embed with the candidate model (`model`, `weights`) only the product images the embeddings
store lacks for it, build a new index version from the stores, validate it, and mark it **shadow** (built
beside live, serving no one) -> **offline**: the evaluation set (`eval_sample`, default
`<LOOKSYNC_DATA_DIR>/sample`) asked of live and of the candidate, Recall@10 compared per query with a
paired bootstrap interval (as `looksync eval` does) -> **shadow**: comparisons of mirrored queries
(overlap@10, rank correlation, score shift per layer): `shadow_source=service` waits up to
`shadow_wait_minutes` for the service (started with `LOOKSYNC_SHADOW_SHARE` = `shadow_share` and
`LOOKSYNC_SHADOW_CLIP_WEIGHTS` = `weights`) to log `gate_min_mirrored` of them; `replay` asks the evaluation
set through the service's mirroring code path now -> **decide**: every `gate_*` bound (docs/rollout.md),
the HTML evidence report (its path is in this task's log) -> **promote** (one atomic swap; the old live
version is what `looksync index rollback` returns to) or **stop** (candidate dropped, live untouched).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from airflow.sdk import Param, dag, task

from looksync.airflow.dag_support import DEFAULT_ARGS, EMBEDDING_POOL, EMBEDDING_QUEUE
from looksync.quality.rollout.gates import GateParams

_GATE_PARAMS = {
    f"gate_{f.name}": Param(
        list(f.default) if isinstance(f.default, tuple) else f.default,
        type="array" if isinstance(f.default, tuple) else "integer" if isinstance(f.default, int) else "number",
        description=f"rollout gate bound {f.name} (docs/rollout.md)",
    )
    for f in fields(GateParams)
}


@dag(
    dag_id="catalog_model_rollout",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["looksync", "index", "quality", "rollout"],
    params={
        "model": Param(None, type=["null", "string"], description="Candidate CLIP model (default LOOKSYNC_CLIP_MODEL)"),
        "weights": Param(
            "",
            type="string",
            minLength=1,
            description="Candidate weights: a pretrained tag, a checkpoint path, s3:// URI or random:<seed>",
        ),
        "shadow_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of live queries the service mirrors to the shadow version",
        ),
        "shadow_source": Param(
            "service",
            enum=["service", "replay"],
            description="service: wait for the service's mirrored queries; replay: replay the eval set",
        ),
        "shadow_wait_minutes": Param(
            60, type="number", minimum=0, description="service: longest wait for mirrored queries"
        ),
        "eval_sample": Param(
            None, type=["null", "string"], description="Evaluation sample (default <data_dir>/sample)"
        ),
        **_GATE_PARAMS,
    },  # fmt: skip
)
def catalog_model_rollout():
    @task(pool=EMBEDDING_POOL, queue=EMBEDDING_QUEUE)  # it embeds what the store lacks for the candidate
    def candidate(params: dict | None = None) -> dict:
        from embeddings import load_encoder
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.quality.rollout.steps import build_candidate

        settings = airflow_settings()
        encoder = load_encoder(params["model"] or settings.clip_model, params["weights"], device=settings.device)
        return build_candidate(settings, open_index(settings), encoder) | {
            "model": encoder.name, "weights": params["weights"], "share": params["shadow_share"]}  # fmt: skip

    @task
    def offline(built: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        from embeddings import load_encoder, load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.quality.rollout.steps import offline_evidence, rollout_dir, sample_root

        settings = airflow_settings()
        return offline_evidence(settings, open_index(settings), sample_root(settings, params["eval_sample"]), built,
                                load_encoder_from_settings(settings), load_encoder(built["model"], built["weights"], device=settings.device),
                                rollout_dir(settings, run_id or "manual"), text_products=params["eval_text_products"])  # fmt: skip

    @task
    def shadow(built: dict, params: dict | None = None) -> dict:
        from embeddings import load_encoder, load_encoder_from_settings
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.quality.rollout.steps import sample_root, shadow_evidence

        settings = airflow_settings()
        replay = params["shadow_source"] == "replay"
        return shadow_evidence(
            settings, open_index(settings), built, params["shadow_source"], min_mirrored=params["gate_min_mirrored"],
            wait_s=60 * params["shadow_wait_minutes"], sample_root=sample_root(settings, params["eval_sample"]),
            live_encoder=load_encoder_from_settings(settings) if replay else None,
            candidate_encoder=load_encoder(built["model"], built["weights"], device=settings.device) if replay else None,
            text_products=params["eval_text_products"],
        )  # fmt: skip

    @task.branch
    def decide(built: dict, offline_figures: dict, shadow_figures: dict, params: dict | None = None,
               run_id: str | None = None) -> str:  # fmt: skip
        from looksync.airflow.dag_support import airflow_settings
        from looksync.quality.rollout.steps import decide as decide_on
        from looksync.quality.rollout.steps import rollout_dir

        settings = airflow_settings()
        gates = {k.removeprefix("gate_"): v for k, v in params.items() if k.startswith("gate_")}
        decision = decide_on(settings, built, offline_figures, shadow_figures, gates, rollout_dir(settings, run_id or "manual"),
                             {"run": run_id})  # fmt: skip
        print(f"rollout evidence report: file://{decision['report']}")  # noqa: T201 - the link in the task log
        return "promote" if decision["promote"] else "stop"

    @task
    def promote(built: dict) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.quality.rollout.steps import promote as promote_candidate

        return promote_candidate(open_index(airflow_settings()), built)

    @task
    def stop(built: dict) -> dict:
        from looksync.airflow.dag_support import airflow_settings
        from looksync.index.factory import open_index
        from looksync.quality.rollout.steps import stop as stop_rollout

        return stop_rollout(open_index(airflow_settings()), built)

    built = candidate()
    decide(built, offline(built), shadow(built)) >> [promote(built), stop(built)]


catalog_model_rollout()
