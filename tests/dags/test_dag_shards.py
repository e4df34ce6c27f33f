"""Sharded ingest through ``dag.test()``: feeds split into several shards, the shard tasks mapped, the
result identical to the unsharded run, every product indexed exactly once, a failed shard rerun
without duplicates, deletions decided once per feed over all its shards.

One sample catalog (planted faults) served on loopback, real Redis (DB 7), the embedded index; each
run has its own data dir and Redis prefix so the runs can be compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.dags.conftest import run_dag_test, sample_for_dag_runs
from tests.pipelines.conftest import REDIS_URL

SHARD_SIZE = 4
CSV_VENDOR = "desi_threads"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, s3_endpoint):
    import redis

    root = tmp_path_factory.mktemp("dagshards")
    made = sample_for_dag_runs(root, s3_endpoint, size=30, seed=21, fault_rate=0.2, name="dagshards")
    yield {"root": root, "manifest": made["manifest"], "env": made["env"], "prefix": made["prefix"]}
    made["server"].close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=made["prefix"] + ":*", count=1000))
    if keys:
        client.delete(*keys)


def _env(catalog, name: str) -> dict[str, str]:
    return {**catalog["env"], "LOOKSYNC_DATA_DIR": str(catalog["root"] / name), "LOOKSYNC_REDIS_URL": REDIS_URL,
            "LOOKSYNC_ATTRIBUTES_PREFIX": f"{catalog['prefix']}:{name}:attr"}  # fmt: skip


def _settings(env):
    from looksync.settings import load_settings

    return load_settings(**{k.removeprefix("LOOKSYNC_").lower(): v for k, v in env.items() if k.startswith("LOOKSYNC_")})


def _backfill_conf(manifest, shard_size):
    vendors = sorted(manifest.feeds)
    return {"vendors": vendors, "feeds": [str(manifest.feeds[v]) for v in vendors], "force_reembed": False,
            "clip_model": None, "clip_weights": None, "dry_run": False, "shard_size": shard_size}  # fmt: skip


def _ok(result):
    failed = {t: s for t, s in result["tasks"].items() if s != "success"}
    assert result["state"] == "success" and not failed, f"{failed}\n{result['log_tail']}"
    return result


_VOLATILE = {"updated_at", "indexed_at"}


def _catalog_state(env) -> dict:
    """What a run leaves: every product (store record, index document, vector) and the Redis mirror,
    keyed by product id, with timestamps left out."""
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.catalog.stores import ProductStore
    from looksync.index.factory import open_index

    settings = _settings(env)
    index, mirror = open_index(settings), AttributeMirror.from_settings(settings)
    products = {p.product_id: p.model_dump(mode="json") for p in ProductStore(settings.data_dir).all()}
    ids = sorted(products)
    vectors = index.vectors(ids)
    docs = {}
    for pid in ids:
        doc = index.get(pid)
        assert doc is not None, pid
        docs[pid] = {k: v for k, v in doc.items() if k not in _VOLATILE}
    return {
        "count": index.count(),
        "products": {pid: {k: v for k, v in rec.items() if k not in _VOLATILE} for pid, rec in products.items()},
        "docs": docs,
        "vectors": {pid: np.asarray(vectors[pid], dtype=np.float32) for pid in ids},
        "mirror": sorted(mirror.members()),
    }


def _same(a: dict, b: dict) -> None:
    """Equal catalog states; vectors equal up to float rounding (a shard embeds in smaller batches)."""
    assert {k: v for k, v in a.items() if k != "vectors"} == {k: v for k, v in b.items() if k != "vectors"}
    assert a["vectors"].keys() == b["vectors"].keys()
    worst = max(float(np.abs(a["vectors"][pid] - b["vectors"][pid]).max()) for pid in a["vectors"])
    assert worst < 1e-4, worst


def _feed_reports(result) -> dict[str, dict]:
    return {r["vendor"]: r for key, r in result["xcom"].items() if key.startswith("apply_changes[")}


def _comparable(report: dict) -> dict:
    return {k: report[k] for k in ("rows_read", "products_stored", "outcomes", "quarantined", "standardised")}


@pytest.fixture(scope="module")
def unsharded(airflow_env, catalog):
    env = _env(catalog, "unsharded")
    result = _ok(run_dag_test(airflow_env, "catalog_backfill", _backfill_conf(catalog["manifest"], None), env))
    return {"result": result, "state": _catalog_state(env), "env": env}


def test_sharded_backfill_indexes_every_product_once_and_matches_the_unsharded_run(airflow_env, catalog, unsharded):
    manifest = catalog["manifest"]
    valid = sum(manifest.product_counts.values())
    env = _env(catalog, "sharded")
    result = _ok(run_dag_test(airflow_env, "catalog_backfill", _backfill_conf(manifest, SHARD_SIZE), env))

    # the feeds were split: several shards per feed, each shard's heavy stages one mapped task instance
    shard_reports = [r for key, r in result["xcom"].items() if key.startswith("apply_shard[")]
    per_feed = {vendor: len(result["xcom"][f"split_shards[{i}]"]) for i, vendor in enumerate(sorted(manifest.feeds))}
    assert all(n > 1 for n in per_feed.values()), per_feed
    n_shards = sum(per_feed.values())
    for stage in ("fetch_images", "embed", "standardise", "apply_shard"):
        assert sorted(k for k in result["tasks"] if k.startswith(stage + "[")) == [f"{stage}[{i}]" for i in range(n_shards)]
    assert all(r["shard"]["rows"] <= SHARD_SIZE for r in shard_reports)
    # the unsharded run had one shard per feed
    assert all(len(v) == 1 for k, v in unsharded["result"]["xcom"].items() if k.startswith("split_shards["))

    # every valid product indexed exactly once: the index count is the number of distinct products
    state = _catalog_state(env)
    assert state["count"] == valid == len(state["products"]) == len(state["docs"]) == len(state["mirror"])
    # ... and what the sharded run left is what the unsharded run left, product by product
    _same(state, unsharded["state"])
    reports, before = _feed_reports(result), _feed_reports(unsharded["result"])
    assert {v: _comparable(r) for v, r in reports.items()} == {v: _comparable(r) for v, r in before.items()}
    assert sum(r["outcomes"]["new"] for r in reports.values()) == valid
    for vendor, report in reports.items():  # the feed's quarantine file holds its parse and its shards' records
        from looksync.catalog.quarantine import read_quarantine

        assert len(read_quarantine(Path(report["quarantine_path"]))) == sum(report["quarantined"].values()), vendor
    assert result["xcom"]["reindex_if_new_model[-1]"]["reindexed"] is False

    # deletions are decided once per feed over all its shards: the same feed again deletes nothing,
    # the feed without one product deletes exactly that one (never a product of another shard)
    again = _ok(run_dag_test(airflow_env, "catalog_ingest", {"feeds": _ingest_feeds(manifest), "shard_size": SHARD_SIZE}, env))
    assert sum(r["outcomes"]["vanished"] for r in _feed_reports(again).values()) == 0
    assert sum(r["outcomes"]["unchanged"] for r in _feed_reports(again).values()) == valid
    feed = Path(manifest.feeds[CSV_VENDOR])
    stored_skus = sorted(p["vendor_sku"] for p in state["products"].values() if p["vendor"] == CSV_VENDOR)
    lines = feed.read_bytes().split(b"\n")  # bytes: the planted faults include a row in another encoding
    (row,) = [i for i, line in enumerate(lines) if line.startswith(stored_skus[0].encode() + b",")]
    dropped = [stored_skus[0]]
    shorter = catalog["root"] / "shorter.csv"
    shorter.write_bytes(b"\n".join(lines[:row] + lines[row + 1 :]))
    feeds = [f if f["vendor"] != CSV_VENDOR else f | {"feed": str(shorter)} for f in _ingest_feeds(manifest)]
    # (confirmed: the planted unreadable rows of the sample hold a run's deletions, docs/vendors.md)
    conf = {"feeds": feeds, "shard_size": SHARD_SIZE, "confirm_deletions": True}
    # without row keys, so every row is mapped again and the feed spans several shards (with them, rows
    # as stored never reach a shard: nothing to split)
    third = _ok(run_dag_test(airflow_env, "catalog_ingest", conf, env | {"LOOKSYNC_INGEST_ROW_KEYS": "false"}))
    assert third["xcom"]["apply_changes[0]"]["shards"] > 1
    outcomes = {v: r["outcomes"] for v, r in _feed_reports(third).items()}
    assert outcomes[CSV_VENDOR]["vanished"] == 1 and outcomes[CSV_VENDOR]["held"] == 0, outcomes
    assert sum(o["vanished"] for o in outcomes.values()) == 1
    after = _catalog_state(env)
    gone = {pid for pid in state["products"] if pid not in after["products"]}
    assert [state["products"][pid]["vendor_sku"] for pid in gone] == dropped
    assert after["count"] == valid - 1 == len(after["docs"]) == len(after["mirror"])


def _ingest_feeds(manifest) -> list[dict]:
    return [{"vendor": v, "feed": str(manifest.feeds[v]), "mode": "full"} for v in sorted(manifest.feeds)]


def test_a_failed_shard_rerun_indexes_nothing_twice(airflow_env, catalog, unsharded):
    """Shard 00001 of one feed fails after its writes went through (a worker lost before it reported):
    the run fails and no feed's deletions are applied; running that shard's task again and then the
    feeds' ``apply_changes`` (what clearing the failed task instance in the UI does) leaves exactly what
    the unsharded run left."""
    from looksync.airflow.connections import attribute_mirror
    from looksync.index.factory import open_index
    from looksync.pipelines.ingest import Workspace
    from looksync.pipelines.shards import ShardWorkspace, apply_shard, finish_feed

    env = _env(catalog, "rerun")
    marker = catalog["root"] / "failed-shard.txt"
    prelude = f"""
import pathlib
import looksync.pipelines.shards as _shards
_real, _mark = _shards.apply_shard, pathlib.Path({str(marker)!r})
def _fails_once_after_writing(settings, ws, *args, **kwargs):
    report = _real(settings, ws, *args, **kwargs)
    if ws.path.name == "00001" and not _mark.exists():
        _mark.write_text(str(ws.path))
        raise RuntimeError("planted: the worker was lost after shard 00001 was written")
    return report
_shards.apply_shard = _fails_once_after_writing
"""
    conf = {"feeds": _ingest_feeds(catalog["manifest"]), "shard_size": SHARD_SIZE}
    failed = run_dag_test(airflow_env, "catalog_ingest", conf, env, prelude=prelude)
    assert failed["state"] == "failed"
    bad = [t for t, s in failed["tasks"].items() if s == "failed"]
    assert len(bad) == 1 and bad[0].startswith("apply_shard["), failed["tasks"]
    assert {s for t, s in failed["tasks"].items() if t.startswith("apply_changes[")} == {"upstream_failed"}
    assert all(s == "success" for t, s in failed["tasks"].items() if t.startswith("apply_shard[") and t != bad[0])

    settings = _settings(env)
    index, mirror = open_index(settings), attribute_mirror(settings)
    shard = ShardWorkspace(marker.read_text())
    assert "apply" in shard.report().seconds  # its writes went through before the failure
    rerun = apply_shard(settings, shard, index, mirror)
    assert rerun.products_stored == len(shard.read_products("write")) > 0  # written again, same rows
    feeds = [Workspace(failed["xcom"][f"detect_changes[{i}]"]) for i in range(len(conf["feeds"]))]
    reports = {ws.ref.vendor: finish_feed(settings, ws, index, mirror) for ws in feeds}
    state = _catalog_state(env)
    assert state["count"] == sum(catalog["manifest"].product_counts.values())
    _same(state, unsharded["state"])
    before = _feed_reports(unsharded["result"])
    for vendor, report in reports.items():
        assert report.outcomes == before[vendor]["outcomes"], vendor
        assert report.products_stored == before[vendor]["products_stored"], vendor
    assert json.loads((shard.path / "state.json").read_text())["report"]["outcomes"] == shard.report().outcomes
