"""The Airflow UI check: a real ``airflow standalone`` on 127.0.0.1 (scheduler, dag-processor, triggerer,
api-server) with this repo's dags/ and plugins/, driven through the Airflow 3 REST API only — login
with the generated admin password, the three DAGs listed without import errors, ``catalog_backfill``
triggered with Params (a dry run of a tiny sample) and run to success by the real scheduler — then
every process stopped. See ``infra/airflow_standalone_check.py``."""

from __future__ import annotations

import importlib.util
import socket
import sys
import uuid
from pathlib import Path

import pytest

from tests.pipelines.conftest import REDIS_URL

REPO = Path(__file__).resolve().parents[2]


def _check_module():
    if "airflow_standalone_check" in sys.modules:
        return sys.modules["airflow_standalone_check"]
    spec = importlib.util.spec_from_file_location("airflow_standalone_check", REPO / "infra" / "airflow_standalone_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _alive(psutil, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.slow
def test_standalone_lists_dags_and_runs_backfill_with_params(tmp_path):
    import psutil
    import redis

    from looksync.index.factory import open_index
    from looksync.settings import load_settings

    check = _check_module()
    prefix = f"looksync-standalone-test:{uuid.uuid4().hex[:8]}"
    sample = check.tiny_backfill(tmp_path, REDIS_URL, prefix)
    try:
        result = check.run_standalone_check(sample.conf, sample.env, home=tmp_path / "airflow", timeout_s=240)  # eleven task instances since the shards (was 3)
    finally:
        sample.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + ":*", count=1000))
        if keys:
            client.delete(*keys)

    assert set(check.EXPECTED_DAGS) <= set(result.dags)
    # the pool came from looksync.airflow.pools over the REST API, and a second setup changed nothing
    assert [(p["name"], p["slots"], p["action"]) for p in result.pools] == [("embedding", 2, "created"), ("embedding", 2, "unchanged")]
    assert result.run["state"] == "success" and result.run["conf"] == sample.conf
    # one feed, one shard (the default shard size): each ingest stage one task instance
    stages = ("parse", "detect_changes", "split_shards", "fetch_images", "embed", "standardise", "apply_shard", "apply_changes")
    assert result.tasks == {"plan[-1]": "success", "shards[-1]": "success", "reindex_if_new_model[-1]": "success"} | {
        f"{stage}[0]": "success" for stage in stages
    }
    # the Params reached the tasks: the one vendor's feed was parsed, fetched and embedded, nothing written
    report = result.xcom["apply_changes[0]"]
    assert report["vendor"] == sample.vendor and report["rows_read"] == sample.products
    assert report["embedded"] == sample.products and report["products_stored"] == 0
    assert "dry run: nothing written" in report["notes"]
    assert result.xcom["reindex_if_new_model[-1]"]["reindexed"] is False
    settings = load_settings(**{k.removeprefix("LOOKSYNC_").lower(): v for k, v in sample.env.items()})
    assert open_index(settings).live_version() is None

    # every process it started is gone and the API port is free again
    assert len(result.pids) >= 5  # standalone + scheduler, dag-processor, triggerer, api-server
    assert not [pid for pid in result.pids if _alive(psutil, pid)]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", result.port)) != 0
