"""``looksync airflow setup`` creates the ``embedding`` pool in a real Airflow metadata DB (the session's
temporary AIRFLOW_HOME) and is idempotent; the pool the DAGs name is the one it creates. (The REST API
path, ``--api-url``, runs in ``test_standalone.py`` through ``infra/airflow_standalone_check.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from looksync.airflow.dag_support import EMBEDDING_POOL
from looksync.airflow.pools import pool_specs

BIN = Path(sys.executable).parent


def _run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=240)


def _pool(env) -> dict | None:
    done = _run(env, "airflow", "pools", "get", EMBEDDING_POOL, "-o", "json")
    return json.loads(done.stdout[done.stdout.index("[") :])[0] if done.returncode == 0 else None


def test_setup_creates_then_leaves_then_updates_the_pool(airflow_env):
    assert _pool(airflow_env) is not None  # the session fixture ran `looksync airflow setup`
    deleted = _run(airflow_env, "airflow", "pools", "delete", EMBEDDING_POOL)
    assert deleted.returncode == 0 and _pool(airflow_env) is None
    try:
        created = _run(airflow_env, "looksync", "airflow", "setup")
        assert created.returncode == 0, created.stderr[-2000:]
        assert f"pool {EMBEDDING_POOL}: 2 slots (created)" in created.stdout
        pool = _pool(airflow_env)
        assert int(pool["slots"]) == 2 and pool["description"] == pool_specs()[0].description

        again = _run(airflow_env, "looksync", "airflow", "setup")
        assert f"pool {EMBEDDING_POOL}: 2 slots (unchanged)" in again.stdout

        resized = _run(airflow_env, "looksync", "airflow", "setup", "--embedding-slots", "3")
        assert f"pool {EMBEDDING_POOL}: 3 slots (updated)" in resized.stdout
        assert int(_pool(airflow_env)["slots"]) == 3

        refused = _run(airflow_env, "looksync", "airflow", "setup", "--embedding-slots", "0")
        assert refused.returncode != 0 and "embedding_slots must be at least 1, got 0" in refused.stderr
        assert int(_pool(airflow_env)["slots"]) == 3  # nothing changed by the refused call
    finally:
        _run(airflow_env, "looksync", "airflow", "setup", "--embedding-slots", "2")
    assert int(_pool(airflow_env)["slots"]) == 2


def test_the_dags_use_the_pool_setup_creates(airflow_env):
    from tests.conftest import REPO

    script = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({str(REPO / "dags")!r})
print("RESULT" + json.dumps({{d.dag_id: sorted({{t.pool for t in d.tasks}}) for d in bag.dags.values()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    assert line, done.stderr[-3000:]
    pools = json.loads(line[0][6:])
    assert EMBEDDING_POOL in pools["catalog_ingest"] and EMBEDDING_POOL in pools["catalog_backfill"]
    assert {p.name for p in pool_specs()} == {EMBEDDING_POOL}
