"""The embeddings store on S3 (moto's real S3 server on loopback): chosen by ``LOOKSYNC_S3_BUCKET``,
parts written as objects, later parts win, shared between machines (data dirs), cached locally, and an
ingest rerun against it reuses every stored vector."""

from __future__ import annotations

import json

import numpy as np
import pytest

from looksync.catalog.object_store import StorageError
from looksync.catalog.stores import EmbeddingStore
from looksync.settings import load_settings
from tests.factories import unit_vectors

VENDOR = "desi_threads"


def _s3_settings(tmp_path, bucket, endpoint, **extra):
    return load_settings(data_dir=tmp_path, s3_bucket=bucket, s3_endpoint_url=endpoint, s3_prefix="prod", **extra)


def test_bucket_setting_selects_s3(tmp_path, s3_bucket, s3_endpoint):
    _, bucket = s3_bucket
    assert EmbeddingStore.from_settings(load_settings(data_dir=tmp_path)).uri == (tmp_path / "embeddings").resolve().as_uri()
    assert EmbeddingStore.from_settings(_s3_settings(tmp_path, bucket, s3_endpoint)).uri == f"s3://{bucket}/prod/embeddings"
    with pytest.raises(ValueError, match="either"):
        EmbeddingStore()


def test_vectors_round_trip_through_s3(tmp_path, s3_bucket, s3_endpoint):
    client, bucket = s3_bucket
    store = EmbeddingStore.from_settings(_s3_settings(tmp_path / "a", bucket, s3_endpoint))
    first, second = unit_vectors(3, 8, seed=1), unit_vectors(2, 8, seed=2)
    uri = store.add("Tiny@abc", ["h1", "h2", "h3"], first)
    assert uri.startswith(f"s3://{bucket}/prod/embeddings/Tiny_abc/part-")
    store.add("Tiny@abc", ["h3", "h4"], second)  # h3 re-embedded: the later part wins
    assert store.add("Tiny@abc", [], np.zeros((0, 8))) is None

    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="prod/embeddings/")["Contents"])
    assert len([k for k in keys if "/part-" in k]) == 2
    meta = json.loads(client.get_object(Bucket=bucket, Key="prod/embeddings/Tiny_abc/_model.json")["Body"].read())
    assert meta == {"model_id": "Tiny@abc", "dim": 8}
    assert not (tmp_path / "a" / "embeddings").exists()  # nothing local but the cache

    # another machine (its own data dir, empty cache) sees the same vectors
    other = EmbeddingStore.from_settings(_s3_settings(tmp_path / "b", bucket, s3_endpoint))
    loaded = other.load("Tiny@abc")
    assert sorted(loaded) == ["h1", "h2", "h3", "h4"]
    np.testing.assert_allclose(loaded["h1"], first[0], rtol=1e-6)
    np.testing.assert_allclose(loaded["h3"], second[0], rtol=1e-6)
    assert sorted(other.lookup("Tiny@abc", ["h2", "h4", "nope"])) == ["h2", "h4"]
    assert other.load("Other@x") == {}

    # parts are immutable, so the cache serves them again; a new part is still picked up (re-listed)
    cached = list((tmp_path / "b" / "cache" / "embeddings").rglob("part-*.parquet"))
    assert len(cached) == 2
    store.add("Tiny@abc", ["h5"], unit_vectors(1, 8, seed=3))
    assert sorted(other.load("Tiny@abc")) == ["h1", "h2", "h3", "h4", "h5"]


def test_missing_bucket_fails_loudly(tmp_path, s3_endpoint):
    store = EmbeddingStore.from_settings(_s3_settings(tmp_path, "no-such-bucket-here", s3_endpoint))
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/prod/embeddings/Tiny_abc/part-"):
        store.add("Tiny@abc", ["h1"], unit_vectors(1, 8, seed=1))
    with pytest.raises(ValueError, match="2 hashes but 1 vectors"):
        store.add("Tiny@abc", ["h1", "h2"], unit_vectors(1, 8, seed=1))


def test_ingest_rerun_reuses_vectors_stored_on_s3(tmp_path, s3_bucket, s3_endpoint, settings, clean_sample, counting_encoder):
    from looksync.pipelines.ingest import ingest_feed

    client, bucket = s3_bucket
    s3 = settings.model_copy(update={"s3_bucket": bucket, "s3_endpoint_url": s3_endpoint, "s3_prefix": "prod"})
    feed = clean_sample.manifest.feeds[VENDOR]
    first = ingest_feed(s3, VENDOR, feed, counting_encoder, "run-s3-1")
    assert first.embedded == 15 and counting_encoder.images_embedded == 15
    assert not (s3.data_dir / "embeddings").exists()
    assert len(EmbeddingStore.from_settings(s3).load(counting_encoder.model_id)) == 15

    # a fresh data dir (another worker) with the same bucket: the product store is new, the vectors are not
    fresh = s3.model_copy(update={"data_dir": tmp_path / "worker2"})
    again = ingest_feed(fresh, VENDOR, feed, counting_encoder, "run-s3-2")
    assert again.embedded == 0 and again.embeddings_reused == 15
    assert counting_encoder.images_embedded == 15
