"""Index builds from the stores: a failed build never replaces the live version."""

from __future__ import annotations

import pytest

from looksync.index.factory import open_index
from looksync.pipelines.reindex import build_index


@pytest.fixture
def catalog_copy(built_catalog, tmp_path):
    """Settings on a copy of the session's data dir, so other tests see the catalog unchanged."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_catalog.settings.data_dir, data)
    return built_catalog.settings.model_copy(update={"data_dir": data})


def test_rebuild_makes_a_new_version_live_and_keeps_the_old(built_catalog, catalog_copy):
    settings = catalog_copy
    index = open_index(settings)
    before = index.live_version()
    steps: list[tuple[str, int, int]] = []
    report = build_index(
        settings, index, built_catalog.encoder.model_id, keep=2, batch_size=100, progress=lambda *s: steps.append(s)
    )
    assert report.indexed == 150 and not report.failures and not report.missing_vectors
    assert steps == [
        ("write batch 1/2", 1, 6), ("write batch 2/2", 2, 6), ("end bulk load", 3, 6), ("validate", 4, 6),
        ("swap", 5, 6), ("prune", 6, 6),
    ]  # fmt: skip
    assert index.live_version() == report.version != before
    assert {v.name for v in index.list_versions()} == {before, report.version}


def test_build_for_a_model_without_vectors_fails_and_keeps_live(built_catalog, catalog_copy):
    settings = catalog_copy
    index = open_index(settings)
    before = index.live_version()
    with pytest.raises(RuntimeError, match="no vectors for model 'ViT-B-32@nothing'"):
        build_index(settings, index, "ViT-B-32@nothing")
    assert index.live_version() == before


def test_a_build_that_fails_validation_is_dropped_and_live_keeps_serving(built_catalog, catalog_copy, monkeypatch):
    """The new version exists (every batch written), but one write was silently lost: the count check fails.
    The version is dropped (registry and files), live never changed, and the service answers throughout."""
    from looksync.pipelines.reindex import ReindexError
    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine, SearchRequest

    settings = catalog_copy
    index = open_index(settings)
    before = index.live_version()
    versions_before = {v.name for v in index.list_versions()}
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache())
    answer_before = engine.search(SearchRequest(text="navy t-shirt", k=5))
    original = index.upsert

    def loses_one_write(version, products, vectors):
        result = original(version, products, vectors)
        index.delete(version, [products[0].product_id])  # reported written, not there: a lost write
        return result

    monkeypatch.setattr(index, "upsert", loses_one_write)
    built: list[str] = []
    monkeypatch.setattr(index, "end_bulk_load", lambda version, _end=index.end_bulk_load: (built.append(version), _end(version))[1])
    with pytest.raises(ReindexError, match="the version was dropped, live version unchanged"):
        build_index(settings, index, built_catalog.encoder.model_id, keep=3, batch_size=100)
    (failed,) = built  # the new version existed, loaded to the end
    assert failed != before
    assert index.live_version() == before
    assert {v.name for v in index.list_versions()} == versions_before  # the failed one is gone
    assert not index._version_dir(failed).exists()  # and so are its files
    answer_after = engine.search(SearchRequest(text="navy t-shirt", k=5))
    assert answer_after["index_version"] == before
    assert [p["product_id"] for p in answer_after["products"]] == [p["product_id"] for p in answer_before["products"]]


def test_the_live_version_cannot_be_dropped(catalog_copy):
    from looksync.index import IndexBackendError

    index = open_index(catalog_copy)
    with pytest.raises(IndexBackendError, match="is live"):
        index.drop_version(index.live_version())
    with pytest.raises(IndexBackendError, match="no version"):
        index.drop_version("v-nope")


def test_a_reindex_killed_mid_upsert_leaves_live_serving_and_the_rerun_completes(built_catalog, catalog_copy):
    """``kill -9`` of the reindex process after its first write batch: the half-built version is never
    live, the service answers from the old one throughout, and a rerun builds, validates and swaps."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from looksync.search.cache import MemoryCache
    from looksync.search.engine import SearchEngine, SearchRequest

    settings = catalog_copy
    index = open_index(settings)
    before = index.live_version()
    existing = {v.name for v in index.list_versions()}  # the live one, and any kept from earlier builds
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache())
    answer = [p["product_id"] for p in engine.search(SearchRequest(text="navy t-shirt", k=5))["products"]]
    script = (
        "import json, os, signal, sys\n"
        "from looksync.index.factory import open_index\n"
        "from looksync.pipelines.reindex import build_index\n"
        "from looksync.settings import Settings\n"
        "settings = Settings.model_validate_json(sys.argv[1])\n"
        "def progress(step, n, of):\n"
        "    if step.startswith('write batch 1/'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # mid-build: one batch written, the rest not\n"
        "build_index(settings, open_index(settings), sys.argv[2], batch_size=50, progress=progress)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, settings.model_dump_json(), built_catalog.encoder.model_id],
        env={**os.environ, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    half = [v for v in open_index(settings).list_versions() if v.name not in existing]
    assert len(half) == 1 and not half[0].live and half[0].count < 150  # the half-built version, not live
    assert index.live_version() == before
    after = engine.search(SearchRequest(text="navy t-shirt", k=5))
    assert after["index_version"] == before and [p["product_id"] for p in after["products"]] == answer

    report = build_index(settings, open_index(settings), built_catalog.encoder.model_id, keep=3, batch_size=50)
    assert report.indexed == 150 and report.validation is not None
    assert open_index(settings).live_version() == report.version not in (before, half[0].name)
    served = engine.search(SearchRequest(text="navy t-shirt", k=5))
    assert served["index_version"] == report.version and len(served["products"]) == 5
    assert json.dumps(served)  # a whole answer from the new version
