"""Object stores: a local directory and S3 (moto's server on loopback), one behaviour."""

from __future__ import annotations

import pytest

from looksync.catalog.object_store import LocalStore, S3Store, StorageError, default_store, open_store
from looksync.settings import load_settings


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    client, bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, "looksync/test", client=client)


def test_round_trip_list_delete(store, tmp_path):
    assert store.put_bytes("a/b.txt", b"hello").endswith("a/b.txt")
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00" * 1000)
    store.put_file("a/c/d.bin", src)
    assert store.get_bytes("a/b.txt") == b"hello"
    assert store.get_file("a/c/d.bin", tmp_path / "out" / "d.bin").read_bytes() == b"\x00" * 1000
    assert sorted(store.list("a")) == ["a/b.txt", "a/c/d.bin"]
    assert store.exists("a/b.txt") and not store.exists("a/zzz")
    store.delete("a/b.txt")
    assert list(store.list("a")) == ["a/c/d.bin"]


def test_missing_objects_and_bad_keys_name_the_uri(store):
    with pytest.raises(StorageError, match="nope.txt"):
        store.get_bytes("nope.txt")
    with pytest.raises(StorageError, match="invalid object key"):
        store.put_bytes("../escape", b"x")


def test_configuration_picks_the_store(tmp_path, s3_endpoint):
    local = default_store(load_settings(data_dir=tmp_path), "snapshots")
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "snapshots").resolve()
    s3 = default_store(load_settings(s3_bucket="b", s3_prefix="ls", s3_endpoint_url=s3_endpoint), "snapshots")
    assert isinstance(s3, S3Store) and s3.uri == "s3://b/ls/snapshots"
    assert isinstance(open_store("s3://bucket/x", load_settings(s3_endpoint_url=s3_endpoint)), S3Store)
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)


def test_an_unreachable_s3_endpoint_is_a_storage_error(tmp_path):
    """Not just missing objects: a store that does not answer raises StorageError naming the object, on
    every call (``exists`` included: an unreachable store is not an empty one)."""
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))  # fmt: skip
    store = S3Store("bucket", "p", client=client)
    for call in (lambda: store.exists("a/b.jpg"), lambda: store.get_bytes("a/b.jpg"), lambda: store.put_bytes("a/b.jpg", b"x")):
        with pytest.raises(StorageError, match="s3://bucket/p/a/b.jpg"):
            call()
