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
