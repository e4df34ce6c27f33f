"""``catalog_ingest`` run three times with ``dag.test()`` on one vendor's feed, Redis and S3 reached
only through Airflow connections (``AIRFLOW_CONN_LOOKSYNC_REDIS`` on the real Redis, DB 7, and
``AIRFLOW_CONN_LOOKSYNC_S3`` on moto's server; no ``LOOKSYNC_REDIS_URL`` / ``LOOKSYNC_S3_*``):

1. the feed as generated: every product new, every image embedded;
2. a copy with price/stock changes only: 0 embeddings, the fields updated in the index and Redis;
3. a copy with a few changed images (new URLs, new bytes): exactly those re-embedded.

Embeddings are counted three ways: the run's report (``embedded``), the image hashes the embed task
recorded, and the vectors in the (S3) embeddings store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.dags.conftest import run_dag_test, sample_for_dag_runs
from tests.pipelines.conftest import REDIS_URL, TINY_MODEL, rewrite_csv

VENDOR = "desi_threads"  # a CSV feed: rows are rewritten with rewrite_csv
REPRICED = 2
REIMAGED = 2


@pytest.fixture(scope="module")
def vendor_feed(tmp_path_factory, s3_endpoint):
    import redis

    root = tmp_path_factory.mktemp("dagreruns")
    made = sample_for_dag_runs(root, s3_endpoint, size=18, seed=9, fault_rate=0.0, name="dagreruns")
    server, manifest, checkpoint, bucket, prefix = (made[k] for k in ("server", "manifest", "checkpoint", "bucket", "prefix"))
    redis_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": 7}}
    s3_conn = {"conn_type": "aws", "login": "reruns-key", "password": "reruns-secret",
               "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1", "bucket": bucket}}  # fmt: skip
    env = {
        **made["env"],
        "AIRFLOW_CONN_LOOKSYNC_REDIS": json.dumps(redis_conn),
        "AIRFLOW_CONN_LOOKSYNC_S3": json.dumps(s3_conn),
    }
    # what the test process reads back with: the same places, named as settings
    from looksync.settings import load_settings

    settings = load_settings(
        data_dir=root / "data", clip_model=TINY_MODEL, clip_weights=str(checkpoint), device="cpu",
        index_backend="embedded", attributes_prefix=f"{prefix}:attr", attributes_redis_url=REDIS_URL,
        s3_bucket=bucket, s3_endpoint_url=s3_endpoint,
    )  # fmt: skip
    yield {"root": root, "manifest": manifest, "env": env, "settings": settings}
    server.close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + ":*", count=1000))
    if keys:
        client.delete(*keys)


def _run(airflow_env, env, feed: Path) -> dict:
    result = run_dag_test(
        airflow_env, "catalog_ingest", {"feeds": [{"vendor": VENDOR, "feed": str(feed), "mode": "full"}]}, env
    )
    failed = {t: s for t, s in result["tasks"].items() if s != "success"}
    assert result["state"] == "success" and not failed, f"{failed}\n{result['log_tail']}"
    return result


def _embedded_hashes(result: dict) -> list[str]:
    from looksync.pipelines.ingest import Workspace

    return Workspace(result["xcom"]["embed[0]"]).read_json("embedded_hashes", [])


def test_reruns_embed_only_changed_images_and_update_fields(airflow_env, vendor_feed):
    from looksync.catalog.attribute_mirror import AttributeMirror
    from looksync.catalog.stores import EmbeddingStore, ProductStore
    from looksync.index.factory import open_index

    manifest, env, settings = vendor_feed["manifest"], vendor_feed["env"], vendor_feed["settings"]
    feed = Path(manifest.feeds[VENDOR])
    n = manifest.product_counts[VENDOR]
    assert n > REPRICED + REIMAGED
    index, mirror, vectors = (
        open_index(settings),
        AttributeMirror.from_settings(settings),
        EmbeddingStore.from_settings(settings),
    )
    assert vectors.uri.startswith("s3://")  # the store the DAG wrote through the looksync_s3 connection
    assert ProductStore(settings.data_dir).count() == 0

    # 1. first run: all new, all embedded
    first = _run(airflow_env, env, feed)
    report = first["xcom"]["apply_changes[0]"]
    assert report["outcomes"]["new"] == n and report["embedded"] == n == len(_embedded_hashes(first))
    products = ProductStore(settings.data_dir).by_vendor(VENDOR)
    model_id = next(iter(products.values())).model_id
    assert len(vectors.load(model_id)) == n and index.count() == n and len(mirror.members()) == n

    # 2. price and stock changes only: 0 embeddings, fields updated in the index and in Redis
    skus = sorted(p.vendor_sku for p in products.values())
    repriced, reimaged = skus[:REPRICED], skus[REPRICED : REPRICED + REIMAGED]

    def reprice(row):
        if row["Item Code"] in repriced:
            row["Selling Price (INR)"] = "9,999.00"
            row["Stock Qty"] = "0" if row["Stock Qty"] != "0" else "5"
        return row

    priced = vendor_feed["root"] / "priced.csv"
    rewrite_csv(feed, priced, reprice)
    second = _run(airflow_env, env, priced)
    report = second["xcom"]["apply_changes[0]"]
    assert report["embedded"] == 0 and _embedded_hashes(second) == []
    assert report["outcomes"]["metadata_only"] == REPRICED and report["outcomes"]["unchanged"] == n - REPRICED
    assert len(vectors.load(model_id)) == n
    by_sku = {p.vendor_sku: p for p in products.values()}
    for sku in repriced:
        before = by_sku[sku]
        doc = index.get(before.product_id)
        assert doc["price"] == 9999.0 and doc["in_stock"] != before.in_stock, (sku, doc)
        assert mirror.get(before.product_id)["in_stock"] == ("1" if doc["in_stock"] else "0")
    untouched = by_sku[skus[-1]]
    assert index.get(untouched.product_id)["price"] == untouched.price

    # 3. a few changed images (new URLs serving new bytes): exactly those re-embedded
    from PIL import Image, ImageOps

    images = manifest.images_dir / VENDOR
    new_hashes = {}
    for sku in reimaged:
        path = images / f"{sku}-v2.png"
        ImageOps.mirror(Image.open(images / f"{sku}.png").convert("RGB")).save(path)
        new_hashes[sku] = hashlib.sha256(path.read_bytes()).hexdigest()

    def new_images(row):
        if row["Item Code"] in reimaged:
            row["Image Link"] = row["Image Link"].replace(".png", "-v2.png")
        return row

    changed = vendor_feed["root"] / "reimaged.csv"
    rewrite_csv(priced, changed, new_images)
    third = _run(airflow_env, env, changed)
    report = third["xcom"]["apply_changes[0]"]
    assert report["embedded"] == REIMAGED and report["outcomes"]["image_changed"] == REIMAGED
    assert report["outcomes"]["unchanged"] == n - REIMAGED
    assert sorted(_embedded_hashes(third)) == sorted(new_hashes.values())
    assert len(vectors.load(model_id)) == n + REIMAGED
    for sku, digest in new_hashes.items():
        assert index.get(by_sku[sku].product_id)["image_hash"] == digest
    assert index.count() == n == len(mirror.members())
