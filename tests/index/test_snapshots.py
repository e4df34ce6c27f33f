"""Snapshots of the embedded index: to a local directory and to S3 (moto's server on loopback), back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from looksync.catalog.object_store import LocalStore, S3Store
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from looksync.index.factory import open_index
from looksync.settings import load_settings
from tests.index.conftest import DIM, MODEL_ID, catalog, vectors


def _built(index: EmbeddedIndex, n: int = 200, ann: bool = False) -> tuple[str, np.ndarray]:
    products, matrix = catalog(n), vectors(n, seed=5)
    version = index.create_version(MODEL_ID, DIM)
    assert index.upsert(version, products, matrix).failures == []
    if ann:
        assert index.build_ann_index(version, min_rows=1)
    index.set_live(version)
    return version, matrix


def _answers(index: EmbeddedIndex, version: str) -> list:
    out = []
    for query in vectors(6, seed=40):
        for filters in (None, SearchFilters(market="JP"), SearchFilters(categories=["dress", "jeans"], in_stock=True)):
            out.append([(h.product_id, round(h.score, 6), h.product) for h in index.search(query, 8, filters, version=version)])
    return out


def test_local_round_trip_into_another_index_under_the_original_name(tmp_path):
    store = LocalStore(tmp_path / "snapshots")
    source = EmbeddedIndex(tmp_path / "a", snapshot_store=store)
    version, _ = _built(source, ann=True)

    info = source.snapshot()

    manifest = json.loads((tmp_path / "snapshots" / info.name / "manifest.json").read_text())
    assert (manifest["version"], manifest["model_id"], manifest["dim"], manifest["count"]) == (version, MODEL_ID, DIM, 200)
    assert manifest["checksum"] == info.checksum and len(info.checksum) == 64
    tables = {f["path"].split("/")[0] for f in manifest["files"] if not f["path"].startswith("_search/")}
    assert tables == {f"{t}.lance" for t in manifest["tables"]} and len(tables) == 15  # every partition
    for table in tables:
        assert any(f["path"].startswith(f"{table}/_indices/") for f in manifest["files"])  # the indexes travel too
        assert sum(f["path"].startswith(f"{table}/_versions/") for f in manifest["files"]) == 1
        graph = f"_search/{table.removesuffix('.lance')}/"  # and each partition's FAISS graph, journal, meta
        kinds = {f["path"].removeprefix(graph).split("-")[0] for f in manifest["files"] if f["path"].startswith(graph)}
        assert kinds == {"meta.json", "graph", "ids", "journal.jsonl"}
    assert info.location == f"{store.uri}/{info.name}"

    target = EmbeddedIndex(tmp_path / "b", snapshot_store=store)
    assert target.restore(info.name) == version
    assert target.live_version() is None  # restoring never swaps the live version
    target.set_live(version)
    assert target.stats()["versions"][0]["ann"] is True
    assert _answers(target, version) == _answers(source, version)


def test_s3_round_trip(tmp_path, s3_bucket, s3_endpoint):
    _, bucket = s3_bucket
    settings = load_settings(data_dir=tmp_path, s3_bucket=bucket, s3_endpoint_url=s3_endpoint, s3_prefix="prod")
    index = open_index(settings)
    version, _ = _built(index)

    info = index.snapshot(name="nightly-1")

    assert info.location == f"s3://{bucket}/prod/snapshots/nightly-1"
    assert not (tmp_path / "snapshots").exists()
    keys = list(S3Store(bucket, "prod/snapshots", endpoint_url=s3_endpoint).list("nightly-1"))
    assert "nightly-1/manifest.json" in keys and any(k.startswith("nightly-1/files/p-") and "/data/" in k for k in keys)

    fresh = open_index(load_settings(data_dir=tmp_path / "elsewhere", s3_bucket=bucket, s3_endpoint_url=s3_endpoint, s3_prefix="prod"))
    assert [s.name for s in fresh.list_snapshots()] == ["nightly-1"]
    assert fresh.restore("nightly-1", as_version="from-s3") == "from-s3"
    assert _answers(fresh, "from-s3") == _answers(index, version)


def test_the_snapshot_is_of_the_version_as_it_was(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    version, _ = _built(index, n=50)
    info = index.snapshot(version)
    index.delete(version, [p.product_id for p in catalog(10)])
    index.upsert(version, catalog(5, start=500), vectors(5, seed=9))

    restored = index.restore(info.name, as_version="back")

    assert index.count(version) == 45 and index.count(restored) == 50
    assert {s.name for s in index.list_snapshots()} == {info.name}
    assert (tmp_path / "snapshots" / info.name / "manifest.json").is_file()  # default store: beside the index


def test_a_corrupt_file_fails_the_restore_and_leaves_nothing_behind(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    version, _ = _built(index, n=30)
    info = index.snapshot(version, name="snap")
    data_file = next((tmp_path / "snapshots" / "snap" / "files").glob("p-*.lance/data/*"))
    data_file.write_bytes(data_file.read_bytes()[:-1] + b"\x00")

    with pytest.raises(IndexBackendError, match="checksum mismatch"):
        index.restore(info.name, as_version="broken")

    assert [v.name for v in index.list_versions()] == [version]
    assert not (tmp_path / "index" / "broken").exists()
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".restore-")]


def test_snapshot_errors_name_what_is_wrong(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    version, _ = _built(index, n=10)
    index.snapshot(version, name="once")
    with pytest.raises(IndexBackendError, match="already exists"):
        index.snapshot(version, name="once")
    with pytest.raises(IndexBackendError, match="already exists; restore under another name"):
        index.restore("once")  # the original version is still here
    with pytest.raises(IndexBackendError, match="no such snapshot.*known: \\['once'\\]"):
        index.restore("never-taken")
    with pytest.raises(IndexBackendError, match="snapshot name"):
        index.snapshot(version, name="../up")
    manifest = tmp_path / "snapshots" / "once" / "manifest.json"
    original = manifest.read_text()
    raw = json.loads(original)
    raw["files"][0]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(raw))
    with pytest.raises(IndexBackendError, match="manifest checksum mismatch"):
        index.restore("once", as_version="tampered")
    raw = json.loads(original)
    raw["count"] = 11
    manifest.write_text(json.dumps(raw))
    with pytest.raises(IndexBackendError, match="holds 10 rows; snapshot once says 11"):
        index.restore("once", as_version="miscounted")
    assert [v.name for v in index.list_versions()] == [version]
    assert not (tmp_path / "index" / "miscounted").exists()


def test_an_interrupted_upload_is_no_snapshot_and_the_retry_completes(tmp_path, s3_bucket, s3_endpoint, monkeypatch):
    """The connection to S3 drops after a few files: no manifest was written, so nothing lists or restores
    the half-uploaded snapshot, the live version is untouched, and the same snapshot taken again completes."""
    from looksync.catalog.object_store import StorageError

    _, bucket = s3_bucket
    settings = load_settings(data_dir=tmp_path, s3_bucket=bucket, s3_endpoint_url=s3_endpoint, s3_prefix="prod")
    index = open_index(settings)
    version, _ = _built(index, n=60)
    store = index.snapshot_store
    real_put_file, puts = store.put_file, []

    def drops_after_five(key, path):
        puts.append(key)
        if len(puts) > 5:
            raise StorageError(f"put {key}: connection reset by peer")
        return real_put_file(key, path)

    monkeypatch.setattr(store, "put_file", drops_after_five)
    with pytest.raises(IndexBackendError, match="connection reset"):
        index.snapshot(version, name="nightly")
    assert any(k.startswith("nightly/files/") for k in store.list("nightly"))  # files went up...
    assert "nightly/manifest.json" not in set(store.list("nightly"))  # ...the manifest, written last, did not
    assert index.list_snapshots() == []
    with pytest.raises(IndexBackendError, match="no such snapshot"):
        index.restore("nightly", as_version="half")
    assert [v.name for v in index.list_versions()] == [version] and index.live_version() == version

    monkeypatch.setattr(store, "put_file", real_put_file)  # the network is back: the same name again
    info = index.snapshot(version, name="nightly")
    assert [s.name for s in index.list_snapshots()] == ["nightly"]
    assert index.restore(info.name, as_version="restored") == "restored"
    assert _answers(index, "restored") == _answers(index, version)
