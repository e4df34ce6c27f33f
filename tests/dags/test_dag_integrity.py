"""Every DAG imports without errors, quickly, without torch, with doc, tags, owner and retries.

(boto3 is not checked: Airflow's amazon provider imports it to normalise asset URIs whenever a DAG
declares an Asset.)"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

EXPECTED = {"catalog_ingest", "catalog_reindex", "catalog_backfill", "catalog_model_rollout"}


def test_dagbag_imports_fast_without_heavy_modules(airflow_env):
    script = f"""
import sys, time, json
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag({str(REPO / 'dags')!r})
seconds = time.perf_counter() - t0
heavy = sorted(m for m in ("torch", "open_clip", "pandas", "lancedb", "pyarrow") if m in sys.modules)
dags = {{d.dag_id: {{"tags": sorted(d.tags), "doc": bool(d.doc_md), "owner": d.owner,
        "retries": [t.retries for t in d.tasks], "backoff": [t.retry_exponential_backoff for t in d.tasks],
        "callbacks": [bool(t.on_failure_callback) for t in d.tasks]}} for d in bag.dags.values()}}
print("RESULT" + json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "seconds": seconds, "heavy": heavy, "dags": dags}}))
"""
    done = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    assert line, done.stderr[-4000:]
    import json

    result = json.loads(line[0][6:])
    assert result["errors"] == {}
    assert set(result["dags"]) == EXPECTED
    assert result["heavy"] == [], f"DAG parsing imported {result['heavy']}"
    assert result["seconds"] < 10, result["seconds"]
    for dag_id, d in result["dags"].items():
        assert d["doc"] and "looksync" in d["tags"] and d["owner"] == "catalog-data", dag_id
        assert all(r >= 1 for r in d["retries"]) and all(d["backoff"]) and all(d["callbacks"]), dag_id


def test_embedding_tasks_go_to_the_configured_celery_queue(airflow_env):
    """The tasks in the `embedding` pool (and only they) are sent to LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE, the
    queue the compose file's GPU workers serve (infra/compose.yaml)."""
    script = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({str(REPO / 'dags')!r})
print("RESULT" + json.dumps({{f"{{d.dag_id}}.{{t.task_id}}": [t.pool, t.queue] for d in bag.dags.values() for t in d.tasks}}))
"""
    env = {**airflow_env, "LOOKSYNC_AIRFLOW_EMBEDDING_QUEUE": "embedding"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    assert line, done.stderr[-4000:]
    import json

    tasks = json.loads(line[0][6:])
    embedding = {name for name, (pool, _) in tasks.items() if pool == "embedding"}
    assert embedding == {"catalog_ingest.embed", "catalog_backfill.embed", "catalog_model_rollout.candidate"}
    assert {name for name, (_, queue) in tasks.items() if queue == "embedding"} == embedding
    assert all(queue == "default" for name, (_, queue) in tasks.items() if name not in embedding)
