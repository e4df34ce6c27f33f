"""DAG runs for the DAG tests: ``dag.test()`` in a subprocess on the session's temporary AIRFLOW_HOME
(the ``airflow_env`` fixture of tests/conftest.py), so the Airflow config (read at import) is the
temporary one whatever else the session imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def run_dag_test(airflow_env: dict[str, str], dag_id: str, conf: dict, looksync_env: dict[str, str], timeout: int = 240,
                 prelude: str = "") -> dict:  # fmt: skip
    """``dag.test(run_conf=conf)`` in a subprocess; returns {"state", "tasks": {task_id[map_index]: state},
    "xcom", "log_tail"} (the run's output, to show when an assertion fails). ``prelude``: Python run in
    that process before the DAG is loaded (dag.test runs the tasks in it: a fault can be planted there)."""
    script = f"""
import json, sys
{prelude}
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({str(REPO / 'dags')!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags[{dag_id!r}]
run = dag.test(run_conf=json.loads(sys.argv[1]))
def decode(value):
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value
from airflow.utils.session import create_session
from airflow.models import TaskInstance
from airflow.models.xcom import XComModel
with create_session() as s:
    tis = s.query(TaskInstance).filter(TaskInstance.dag_id == {dag_id!r}, TaskInstance.run_id == run.run_id).all()
    tasks = {{f"{{t.task_id}}[{{t.map_index}}]": str(t.state) for t in tis}}
    xcoms = s.query(XComModel).filter(XComModel.dag_id == {dag_id!r}, XComModel.run_id == run.run_id).all()
    values = {{f"{{x.task_id}}[{{x.map_index}}]": decode(x.value) for x in xcoms if x.key == "return_value"}}
print("RESULT" + json.dumps({{"state": str(run.state), "run_id": run.run_id, "tasks": tasks, "xcom": values}}, default=str))
"""
    env = {**airflow_env, **looksync_env}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(conf)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-6000:]
    result = json.loads(lines[-1][len("RESULT"):])
    result["log_tail"] = (done.stdout[:-len(lines[-1])] + done.stderr)[-8000:]  # for failure messages
    return result


def sample_for_dag_runs(root: Path, s3_endpoint: str, *, size: int, seed: int, fault_rate: float, name: str,
                        n_looks: int = 0) -> dict:  # fmt: skip
    """A sample catalog served on loopback, a tiny random-weight checkpoint, an S3 bucket on moto's server
    and a Redis key prefix, each unique to the caller, plus the LOOKSYNC_* environment every DAG run needs.
    The caller adds how it reaches Redis and S3 (settings or Airflow connections) and closes ``server``."""
    import uuid

    import boto3

    from embeddings import save_random_checkpoint
    from looksync.sample import generate_sample
    from looksync.sample.server import serve_sample
    from tests.conftest import TINY_MODEL, tiny_model_env

    server = serve_sample(root / "sample", port=0)
    manifest = generate_sample(root / "sample", size=size, seed=seed, fault_rate=fault_rate, image_base_url=server.url,
                               n_looks=n_looks)  # fmt: skip
    checkpoint = save_random_checkpoint(TINY_MODEL, root / "tiny.pt", seed=5)
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    prefix = f"looksync-{name}:{uuid.uuid4().hex[:8]}"
    env = {
        **tiny_model_env(root / "data", checkpoint),
        "LOOKSYNC_INDEX_BACKEND": "embedded",
        "LOOKSYNC_ATTRIBUTES_PREFIX": f"{prefix}:attr",
        "LOOKSYNC_QUEUE_STREAM": f"{prefix}:updates",
        "LOOKSYNC_AIRFLOW_RETRIES": "0",
    }
    return {"server": server, "manifest": manifest, "checkpoint": checkpoint, "bucket": bucket, "prefix": prefix,
            "env": env}  # fmt: skip
