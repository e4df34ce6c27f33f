"""The embedded index's ANN structure as configuration: HNSW graphs or IVF lists, chosen by the settings,
recorded in each partition's meta, read back whichever the reading handle would build; old and wrong
meta files are refused (or read) with a message that says what they are."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from looksync.index import faiss_graph
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from looksync.index.factory import open_index
from looksync.settings import load_settings
from tests.index.conftest import DIM, MODEL_ID, catalog_product, exact_top_k, vectors

N = 400
KEY = ("topwear", "US")


def _loaded(index: EmbeddedIndex):
    products = [catalog_product(i, category="t_shirt", market="US") for i in range(N)]
    matrix = vectors(N, seed=21)
    version = index.create_version(MODEL_ID, DIM)
    index.begin_bulk_load(version)
    assert index.upsert(version, products, matrix).failures == []
    index.end_bulk_load(version)
    index.set_live(version)
    return version, products, matrix


def _meta(index: EmbeddedIndex, version: str) -> faiss_graph.GraphMeta:
    meta = faiss_graph.read_meta(index._search_dir(version, KEY))
    assert meta is not None
    return meta


def _ids(hits) -> list[str]:
    return [h.product_id for h in hits]


def test_the_setting_switches_the_structure_and_any_handle_searches_what_was_built(tmp_path, monkeypatch):
    assert load_settings(data_dir=tmp_path).index_ann_structure == "ivf"  # the default
    monkeypatch.setenv("LOOKSYNC_INDEX_ANN_STRUCTURE", "hnsw")
    assert open_index(load_settings(data_dir=tmp_path)).ann_structure == "hnsw"
    monkeypatch.setenv("LOOKSYNC_INDEX_ANN_STRUCTURE", "ivf")
    monkeypatch.setenv("LOOKSYNC_INDEX_IVF_NLIST", "6")
    ivf = open_index(load_settings(data_dir=tmp_path, index_ann_min_rows=1, index_refresh_s=0))
    assert isinstance(ivf, EmbeddedIndex) and (ivf.ann_structure, ivf.ivf_nlist) == ("ivf", 6)
    version, products, matrix = _loaded(ivf)
    meta = _meta(ivf, version)
    assert (meta.structure, meta.nlist, meta.m, meta.ef_construction) == ("ivf", 6, 0, 0)

    # a handle configured for HNSW reads the IVF partition as built (search follows the meta)...
    hnsw = EmbeddedIndex(ivf.path, refresh_s=0, exact_max_rows=0, ann_structure="hnsw", ivf_nprobe=6)
    filters = SearchFilters(genders=["men"])
    for query in vectors(5, seed=22):
        for flt in (None, filters):
            keep = flt.matches if flt else (lambda p: True)
            assert _ids(hnsw.search(query, k=5, filters=flt)) == [pid for pid, _ in exact_top_k(query, products, matrix, 5, keep)]
    assert hnsw.views.cached((version, KEY)).structure == "ivf"
    # ... and its own build replaces it with a graph
    assert hnsw.build_ann_index(version, min_rows=1) is True
    assert (_meta(hnsw, version).structure, _meta(hnsw, version).nlist) == ("hnsw", 0)
    assert _ids(hnsw.search(matrix[9], k=1)) == [products[9].product_id]
    assert hnsw.views.cached((version, KEY)).structure == "hnsw"


def test_an_unknown_structure_is_refused_by_name(tmp_path):
    with pytest.raises(IndexBackendError, match="ann_structure 'pq': known: hnsw, ivf"):
        EmbeddedIndex(tmp_path, ann_structure="pq")
    with pytest.raises(ValueError, match="LOOKSYNC_INDEX_ANN_STRUCTURE=.pq.: Input should be .hnsw. or .ivf."):
        load_settings(data_dir=tmp_path, index_ann_structure="pq")


def test_ivf_lists_follow_the_rows_unless_given():
    assert faiss_graph.ivf_lists(10_000) == 200  # 2 * sqrt(rows)
    assert faiss_graph.ivf_lists(1_000_000) == 2000
    assert faiss_graph.ivf_lists(400) == 10  # at most one list per 39 rows
    assert faiss_graph.ivf_lists(20) == 1
    assert faiss_graph.ivf_lists(10_000, nlist=50) == 50


def test_a_format_1_meta_reads_as_the_hnsw_graph_it_describes(tmp_path):
    index = EmbeddedIndex(tmp_path / "index", refresh_s=0, ann_min_rows=1, exact_max_rows=0, ann_structure="hnsw")
    version, products, matrix = _loaded(index)
    directory = index._search_dir(version, KEY)
    old = {k: v for k, v in asdict(_meta(index, version)).items() if k not in ("structure", "nlist")}
    (directory / faiss_graph.META_FILE).write_text(json.dumps({**old, "format": 1}))

    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)
    meta = _meta(reader, version)
    assert (meta.format, meta.structure) == (1, "hnsw")
    assert _ids(reader.search(matrix[5], k=1)) == [products[5].product_id]
    assert reader.views.cached((version, KEY)).stats().graph_rows == N


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 3}, r"search graph format 3; this code reads 1, 2 \(rebuild it"),
        ({"structure": "pq"}, r"search structure 'pq' \(format 2\); known: hnsw, ivf"),
        ({"format": 1, "structure": "ivf"}, r"search structure 'ivf' \(format 1\)"),
        ({"structure": "ivf", "nlist": 10}, r"is IndexHNSWFlat; meta says ivf"),
        ({"lists": 10}, r"unexpected search graph meta"),
    ],
    ids=["newer-format", "unknown-structure", "ivf-in-format-1", "file-not-what-meta-says", "unknown-field"],
)
def test_a_wrong_meta_fails_the_search_with_a_message_naming_it(tmp_path, change, message):
    index = EmbeddedIndex(tmp_path / "index", refresh_s=0, ann_min_rows=1, ann_structure="hnsw")
    version, _, matrix = _loaded(index)
    path = index._search_dir(version, KEY) / faiss_graph.META_FILE
    path.write_text(json.dumps({**asdict(_meta(index, version)), **change}))

    reader = EmbeddedIndex(index.path, refresh_s=0)
    with pytest.raises(IndexBackendError, match=message):
        reader.search(matrix[0], k=3)


def test_ivf_views_report_their_memory_and_find_rows_by_label(tmp_path):
    index = EmbeddedIndex(tmp_path / "index", refresh_s=0, ann_min_rows=1, ann_structure="ivf")
    version, products, matrix = _loaded(index)
    index.search(matrix[0], k=1)
    ivf = index.views.cached((version, KEY))
    nlist = _meta(index, version).nlist
    index.ann_structure = "hnsw"  # the same rows with a graph instead: only the structure's share differs
    index.build_ann_index(version)
    index.search(matrix[0], k=1)
    hnsw = index.views.cached((version, KEY))
    links = hnsw.graph.hnsw.neighbors.size() * 4 + hnsw.graph.hnsw.offsets.size() * 8 + hnsw.graph.hnsw.levels.size() * 4
    assert ivf.stats().mapped_bytes == hnsw.stats().mapped_bytes == N * DIM * 4  # the vectors, memory-mapped
    # in the process: each list's ids and the direct map (8 bytes a row each) and the centroids
    assert ivf.stats().bytes - hnsw.stats().bytes == N * 16 + nlist * DIM * 4 - links
    reader = EmbeddedIndex(index.path, refresh_s=0)
    index.ann_structure = "ivf"
    index.build_ann_index(version)
    got = reader.vectors([products[i].product_id for i in (0, 123, 399)])
    assert reader.views.cached((version, KEY)).structure == "ivf"
    for i in (0, 123, 399):
        np.testing.assert_allclose(got[products[i].product_id], matrix[i], atol=1e-6)  # through the direct map
