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
