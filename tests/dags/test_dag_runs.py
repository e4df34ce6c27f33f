"""``dag.test()`` runs of the three DAGs on a real sample catalog (planted faults), real Redis (DB 7),
the embedded index, and snapshots on moto's S3 server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.dags.conftest import run_dag_test, sample_for_dag_runs
from tests.pipelines.conftest import REDIS_URL


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, s3_endpoint):
    """A sample with planted faults, served on loopback, and the LookSync environment for the runs."""
    made = sample_for_dag_runs(tmp_path_factory.mktemp("dagcat"), s3_endpoint, size=45, seed=4, fault_rate=0.25,
                               name="dagtest")  # fmt: skip
    server, manifest, bucket, prefix = made["server"], made["manifest"], made["bucket"], made["prefix"]
    env = {
        **made["env"],
        "LOOKSYNC_REDIS_URL": REDIS_URL,
        "LOOKSYNC_S3_BUCKET": bucket,
        "LOOKSYNC_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "looksync-test",
        "AWS_SECRET_ACCESS_KEY": "looksync-test",
    }
    faults = [json.loads(x) for x in Path(manifest.faults_path).read_text().splitlines() if x.strip()]
    yield {"manifest": manifest, "env": env, "faults": faults, "bucket": bucket, "endpoint": s3_endpoint, "prefix": prefix}
    server.close()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + ":*", count=1000))
    if keys:
        client.delete(*keys)


def _settings(env):
    from looksync.settings import load_settings

    return load_settings(**{k.removeprefix("LOOKSYNC_").lower(): v for k, v in env.items() if k.startswith("LOOKSYNC_")})


def test_ingest_reindex_backfill(airflow_env, catalog):
    from looksync.catalog.quarantine import read_quarantine
    from looksync.index.factory import open_index

    manifest, env = catalog["manifest"], catalog["env"]
    feeds = [{"vendor": v, "feed": str(f), "mode": "full"} for v, f in manifest.feeds.items()]

    # catalog_ingest on the sample with planted faults: no task fails, all valid rows indexed
    result = run_dag_test(airflow_env, "catalog_ingest", {"feeds": feeds}, env)
    assert result["state"] == "success", result["tasks"]
    assert all(state == "success" for state in result["tasks"].values()), result["tasks"]
    settings = _settings(env)
    index = open_index(settings)
    valid = sum(manifest.product_counts.values())
    assert index.count() == valid
    reports = [result["xcom"][f"apply_changes[{i}]"] for i in range(3)]
    quarantined = [q for r in reports for q in read_quarantine(Path(r["quarantine_path"]))]
    got = Counter((q["vendor"], q["reason"]) for q in quarantined)
    assert got == Counter((f["vendor"], f["expected_reason"]) for f in catalog["faults"])
    summary = result["xcom"]["write_report[-1]"]
    assert summary["outcomes"]["new"] == valid and summary["uris"]["html"].startswith(f"s3://{catalog['bucket']}/")

    # (reruns through dag.test(): metadata-only and changed-image runs are in test_dag_reruns.py)

    # catalog_reindex: new version live, old kept, snapshot in S3
    before = index.live_version()
    result = run_dag_test(airflow_env, "catalog_reindex", {}, env)
    assert result["state"] == "success", result["tasks"]
    live = index.live_version()
    assert live != before and {before, live} <= {v.name for v in index.list_versions()}
    snap = result["xcom"]["snapshot[-1]"]
    assert snap["version"] == live and snap["location"].startswith(f"s3://{catalog['bucket']}/")
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=catalog["endpoint"], region_name="us-east-1")
            .list_objects_v2(Bucket=catalog["bucket"]).get("Contents", [])]  # fmt: skip
    assert any(live in k for k in keys)

    # a failure before the swap (a model without vectors): the run fails, the live version stays
    failed = run_dag_test(airflow_env, "catalog_reindex", {"model_id": "LookSync-Tiny@nothing"}, env)
    assert failed["state"] == "failed" and failed["tasks"]["build[-1]"] == "failed"
    assert failed["tasks"].get("swap[-1]") != "success"
    assert index.live_version() == live

    # catalog_backfill with Params: one vendor, forced re-embed
    vendor, feed = next(iter(manifest.feeds.items()))
    params = {"vendors": [vendor], "feeds": [str(feed)], "force_reembed": True, "clip_model": None,
              "clip_weights": None, "dry_run": False}  # fmt: skip
    result = run_dag_test(airflow_env, "catalog_backfill", params, env)
    assert result["state"] == "success", result["tasks"]
    report = result["xcom"]["apply_changes[0]"]  # the feed's report (over its shards)
    assert report["embedded"] == manifest.product_counts[vendor]
    assert result["xcom"]["reindex_if_new_model[-1]"]["reindexed"] is False
    assert index.live_version() == live and index.count() == valid
