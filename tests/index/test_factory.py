"""open_index picks the backend the settings name."""

from __future__ import annotations

import pytest

from looksync.catalog.object_store import LocalStore
from looksync.index.base import IndexBackendError
from looksync.index.elasticsearch import ElasticsearchIndex
from looksync.index.embedded import EmbeddedIndex
from looksync.index.factory import open_index
from looksync.settings import load_settings


def test_embedded_backend_opens_at_the_resolved_path(tmp_path):
    index = open_index(load_settings(data_dir=tmp_path, index_backend="auto", es_url=None, index_ann_min_rows=123))
    assert isinstance(index, EmbeddedIndex)
    assert index.path == tmp_path / "index"
    assert index.ann_min_rows == 123
    store = index.snapshot_store
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "snapshots").resolve()


def test_an_es_url_selects_the_elasticsearch_backend_with_its_settings(tmp_path):
    # building the client opens no connection, so this needs no server
    settings = load_settings(
        data_dir=tmp_path,
        es_url="http://127.0.0.1:9200",
        index_name="shop-products",
        es_hnsw_m=24,
        es_similarity="dot_product",
        s3_bucket="snaps",
        s3_prefix="prod",
    )
    index = open_index(settings)
    assert isinstance(index, ElasticsearchIndex)
    assert (index.alias, index.vector_options.m, index.vector_options.similarity) == ("shop-products", 24, "dot_product")
    assert index.index_of("v1") == "shop-products--v1"
    assert (index.snapshot_bucket, index.snapshot_base_path) == ("snaps", "prod/es-snapshots")


def test_an_unusable_index_name_is_refused(tmp_path):
    with pytest.raises(IndexBackendError, match="lowercase"):
        open_index(load_settings(data_dir=tmp_path, es_url="http://127.0.0.1:9200", index_name="Shop Products"))
