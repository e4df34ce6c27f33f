"""open_index picks the backend the settings name."""

from __future__ import annotations

import pytest

from looksync.index.base import IndexBackendError
from looksync.index.embedded import EmbeddedIndex
from looksync.index.factory import open_index
from looksync.settings import load_settings


def test_embedded_backend_opens_at_the_resolved_path(tmp_path):
    index = open_index(load_settings(data_dir=tmp_path, index_backend="auto", es_url=None))
    assert isinstance(index, EmbeddedIndex)
    assert index.path == tmp_path / "index"


def test_elasticsearch_backend_says_it_is_not_built(tmp_path):
    settings = load_settings(data_dir=tmp_path, es_url="http://127.0.0.1:9200")
    with pytest.raises(IndexBackendError, match="elasticsearch.*not built yet"):
        open_index(settings)
