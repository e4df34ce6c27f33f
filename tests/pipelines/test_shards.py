"""The sharded ingest's pieces without Airflow: the split partitions a feed by product id, a retried
shard stage counts once, and the sharded index build loads each product once even when a shard is
loaded twice. (The DAG runs over shards: tests/dags/test_dag_shards.py.)"""

from __future__ import annotations

from looksync.catalog.stores import ProductStore
from looksync.index.factory import open_index
from looksync.pipelines.feed_ref import FeedRef
from looksync.pipelines.ingest import detect_stage, fetch_stage, parse_stage
from looksync.pipelines.reindex import build_version, finish_build, load_build_shard, plan_build
from looksync.pipelines.shards import run_shard_stage, split_stage

VENDOR = "desi_threads"


def test_split_partitions_the_feed_and_a_retried_stage_counts_once(settings, clean_sample, tiny_encoder):
    ws = parse_stage(settings, FeedRef(VENDOR, str(clean_sample.manifest.feeds[VENDOR])), "shards-unit")
    detect_stage(settings, ws, tiny_encoder.model_id)
    incoming = [p.product_id for p in ws.read_products("incoming")]
    shards = split_stage(settings, ws, 4)
    assert len(shards) == -(-len(incoming) // 4) > 1
    parts = [[p.product_id for p in s.read_products("incoming")] for s in shards]
    assert [pid for part in parts for pid in part] == incoming  # row ranges, in feed order, disjoint
    assert all(len(part) <= 4 for part in parts)
    assert all(s.read_json("classes")["vanished"] == [] for s in shards)  # deletions stay with the feed
    assert {s.shard["index"] for s in shards} == set(range(len(shards)))
    assert split_stage(settings, ws, 4)[-1].path == shards[-1].path  # a retried split replaces, same shards

    shard = shards[0]
    run_shard_stage(shard, "fetch", lambda: fetch_stage(settings, shard))
    first = shard.report().thumbnails
    assert sum(first.values()) == len(parts[0])
    run_shard_stage(shard, "fetch", lambda: fetch_stage(settings, shard))  # a retry: starts from the saved state
    assert sum(shard.report().thumbnails.values()) == len(parts[0])  # not doubled


def test_sharded_index_build_loads_each_product_once(built_catalog, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_catalog.settings.data_dir, data)
    settings = built_catalog.settings.model_copy(update={"data_dir": data})
    index, model_id = open_index(settings), built_catalog.encoder.model_id
    n = ProductStore(data).count()
    plan = plan_build(settings, index, model_id, shard_size=40)
    assert plan["ranges"] == [[s, min(s + 40, n)] for s in range(0, n, 40)] and len(plan["ranges"]) > 2
    loaded = [load_build_shard(settings, index, plan["version"], model_id, *r) for r in plan["ranges"]]
    loaded.append(load_build_shard(settings, index, plan["version"], model_id, *plan["ranges"][1]))  # a rerun shard
    report = finish_build(index, plan, loaded)
    assert report.indexed == n == index.count(plan["version"])
    serial = build_version(settings, index, model_id)  # the one-task build: the same documents
    for pid in [p.product_id for p in ProductStore(data).all()][::7]:
        sharded_doc, serial_doc = index.get(pid, plan["version"]), index.get(pid, serial.version)
        assert {k: v for k, v in sharded_doc.items() if k != "updated_at"} == {
            k: v for k, v in serial_doc.items() if k != "updated_at"
        }


def test_a_reprice_read_for_its_offer_is_written_by_its_shard(settings, clean_sample, tiny_encoder, tmp_path):
    from looksync.pipelines.ingest import ingest_feed
    from looksync.pipelines.shards import ingest_sharded
    from tests.pipelines.conftest import reprice_two, rewrite_csv

    feed = clean_sample.manifest.feeds[VENDOR]
    n = ingest_feed(settings, VENDOR, feed, tiny_encoder, "run-1", index=open_index(settings)).outcomes["new"]
    priced = tmp_path / "priced.csv"
    rewrite_csv(feed, priced, reprice_two)
    (report,) = ingest_sharded(settings, [FeedRef(VENDOR, str(priced))], "run-2", tiny_encoder.model_id,
                               lambda: tiny_encoder, shard_size=1, zeroshot=False)  # fmt: skip
    assert report.outcomes["metadata_only"] == 2 and report.outcomes["unchanged"] == n - 2 and report.embedded == 0
    stored = {p.vendor_sku: p for p in ProductStore(settings.data_dir).by_vendor(VENDOR).values()}
    assert stored["DT100001"].price == stored["DT100004"].price == 9999.0
