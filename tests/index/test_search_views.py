"""The embedded backend's FAISS search views: graphs saved per partition, the write journal, freshness.

Every test reads through real LanceDB tables and real FAISS structures in a temporary directory; a
"second process" is a second ``EmbeddedIndex`` on the same directory. The ``built`` tests run once per
structure: an HNSW graph, and IVF lists (15 for N rows) that the building handle probes 8 at a time
(uniform random vectors need about half the lists for recall 0.95; clustered embeddings far fewer).
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from looksync.catalog.object_store import LocalStore
from looksync.index import faiss_graph, lance_partitions
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from looksync.index.write_journal import WriteJournal
from tests.index.conftest import DIM, MODEL_ID, built_view_index, catalog, catalog_product, exact_top_k, vectors

N = 600  # one partition (topwear, US): large enough for a real graph walk
KEY = ("topwear", "US")


def _product(i: int, **overrides):
    return catalog_product(i, category="t_shirt", market="US", **overrides)


def _ids(hits) -> list[str]:
    return [h.product_id for h in hits]


@pytest.fixture(params=faiss_graph.STRUCTURES)
def built(tmp_path, request):
    """One partition of N products with its graph built; handles walk the graph whatever the filter."""
    return built_view_index(tmp_path, [_product(i) for i in range(N)], vectors(N, seed=3), request.param)


def _graph_meta(index: EmbeddedIndex, version: str) -> faiss_graph.GraphMeta:
    meta = faiss_graph.read_meta(index._search_dir(version, KEY))
    assert meta is not None
    return meta


def _view_stats(index: EmbeddedIndex, version: str):
    view = index.views.cached((version, KEY))
    assert view is not None
    return view.stats()


def test_the_graph_is_saved_in_the_version_directory_with_its_ids_and_table_version(built, tmp_path):
    index, version, products, _ = built
    meta = _graph_meta(index, version)
    directory = tmp_path / "index" / version / "_search" / lance_partitions.table_name(*KEY)
    assert (directory / meta.graph_file).is_file() and (directory / meta.ids_file).is_file()
    assert (meta.rows, meta.dim, meta.journal_offset) == (N, DIM, WriteJournal(directory).size())
    assert meta.structure == index.ann_structure and meta.format == faiss_graph.FORMAT
    assert (meta.m, meta.nlist) == ((32, 0) if meta.structure == "hnsw" else (0, 15))
    table = index._partition(index._record(version), KEY)
    assert meta.table_version <= table.version
    graph, ids = faiss_graph.load(directory, meta)
    assert graph.ntotal == N and sorted(ids.tolist()) == sorted(p.product_id for p in products)

    index.search(vectors(1, seed=4)[0], k=5)
    stats = _view_stats(index, version)
    assert (stats.rows, stats.graph_rows, stats.clean_labels, stats.exact_rows) == (N, N, N, 0)
    partition = index.stats()["versions"][0]["partitions"][0]
    assert partition["ann"] is True and partition["graph"]["graph_file"] == meta.graph_file


def test_graph_search_reaches_the_exact_top_k_filtered_and_not(built):
    index, _, products, matrix = built
    filters = SearchFilters(genders=["women"], in_stock=True)
    row_of = {p.product_id: i for i, p in enumerate(products)}
    recalls = []
    for query in vectors(20, seed=5):
        for flt in (None, filters):
            keep = flt.matches if flt else (lambda p: True)
            hits = index.search(query, k=10, filters=flt)
            assert len(hits) == 10 and all(keep(h.product) for h in hits)
            exact = exact_top_k(query, products, matrix, 10, keep)
            recalls.append(len(set(_ids(hits)) & {pid for pid, _ in exact}) / 10)
            for h in hits:  # a hit's score is its cosine, whichever path found it
                assert h.score == pytest.approx(float(matrix[row_of[h.product_id]] @ query), abs=1e-5)
    assert np.mean(recalls) >= 0.95


def test_a_metadata_update_is_seen_by_the_next_search_and_moves_the_filter_without_a_graph_rebuild(built):
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)  # another process
    meta = _graph_meta(index, version)
    target = products[11]
    cheap = SearchFilters(price_max=4.0)
    assert target.product_id not in _ids(reader.search(matrix[11], k=10, filters=cheap))
    builds = reader.views.builds

    updated = _product(11, price=1.0, in_stock=False, title="Now cheap")
    assert index.update_metadata(version, [updated]).written == 1

    hits = reader.search(matrix[11], k=10, filters=cheap)
    assert hits[0].product_id == target.product_id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].product["title"] == "Now cheap" and hits[0].product["price"] == 1.0
    assert target.product_id not in _ids(reader.search(matrix[11], k=10, filters=SearchFilters(in_stock=True)))
    assert reader.views.builds == builds + 1  # the view was reloaded (columns) ...
    assert _graph_meta(index, version) == meta  # ... and the graph not rebuilt
    stats = _view_stats(reader, version)
    assert (stats.graph_rows, stats.clean_labels, stats.exact_rows) == (N, N, 0)  # no vector changed


def test_an_upsert_with_a_new_vector_is_scored_with_the_new_vector_not_the_graphs(built):
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)
    target = products[42]
    new_vector = vectors(1, seed=99)[0]
    reader.search(matrix[42], k=1)  # the reader holds a view from before the write

    assert index.upsert(version, [_product(42, title="Re-shot")], new_vector[None]).written == 1

    for handle in (index, reader):
        old_query = handle.search(matrix[42], k=N)
        score = {h.product_id: h.score for h in old_query}[target.product_id]
        assert score == pytest.approx(float(new_vector @ matrix[42]), abs=1e-5)  # not 1.0, the graph's
        assert old_query[0].product_id != target.product_id
        fresh = handle.search(new_vector, k=1)
        assert _ids(fresh) == [target.product_id] and fresh[0].score == pytest.approx(1.0, abs=1e-5)
        assert fresh[0].product["title"] == "Re-shot"
        stats = _view_stats(handle, version)
        assert (stats.clean_labels, stats.exact_rows) == (N - 1, 1)
    journal = WriteJournal(index._search_dir(version, KEY))
    assert target.product_id in journal.written_since(_graph_meta(index, version).journal_offset)

    index.build_ann_index(version)  # a rebuild folds the new vector into the graph
    assert _view_stats(index, version).exact_rows == 1  # (cached until the next search)
    assert _ids(index.search(new_vector, k=1)) == [target.product_id]
    assert _view_stats(index, version).exact_rows == 0


@pytest.mark.parametrize("exact_max_rows", [0, 10_000], ids=["graph-walk", "exact-from-graph-storage"])
def test_a_deleted_row_never_comes_back(built, exact_max_rows):
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=exact_max_rows)
    gone = products[7].product_id
    assert reader.search(matrix[7], k=1)[0].product_id == gone

    assert index.delete(version, [gone]) == 1

    for flt in (None, SearchFilters(brands_include=[products[7].brand]), SearchFilters(exclude_ids=["nothing"])):
        hits = reader.search(matrix[7], k=N, filters=flt)
        assert gone not in _ids(hits)
    assert len(reader.search(matrix[7], k=N)) == N - 1
    # another write to the partition (a new product) does not resurrect it either
    index.upsert(version, [_product(N + 1)], vectors(1, seed=50))
    assert gone not in _ids(reader.search(matrix[7], k=N))
    assert len(reader.search(matrix[7], k=N)) == N


@pytest.mark.parametrize("structure", faiss_graph.STRUCTURES)
def test_a_restrictive_filter_still_returns_k_when_k_match(tmp_path, structure):
    rare = set(range(5, N, 90))  # 7 products in 600
    products = [_product(i, brand="Rarebrand") if i in rare else _product(i) for i in range(N)]
    matrix = vectors(N, seed=6)
    index = EmbeddedIndex(
        tmp_path / "index", refresh_s=0, ann_min_rows=1, exact_max_rows=0, ann_structure=structure, ivf_nprobe=1
    )
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, products, matrix)
    index.build_ann_index(version)
    index.set_live(version)
    away = -matrix[sorted(rare)].mean(axis=0)  # far from every rare product
    filters = SearchFilters(brands_include=["Rarebrand"])

    hits = index.search(away, k=7, filters=filters, num_candidates=7)

    assert sorted(_ids(hits)) == sorted(products[i].product_id for i in rare)
    assert _ids(hits) == [pid for pid, _ in exact_top_k(away, products, matrix, 7, filters.matches)]
    assert len(index.search(away, k=20, filters=filters)) == 7
    # and with the exact shortcut (few rows pass): the same answer from the graph's own vectors
    index.exact_max_rows = 100
    assert _ids(index.search(away, k=7, filters=filters)) == _ids(hits)


def test_snapshot_and_restore_carry_the_graph_and_journal_and_give_the_same_results(built, tmp_path):
    index, version, products, matrix = built
    index.upsert(version, [_product(3)], vectors(1, seed=70))  # journalled after the build
    index.upsert(version, [_product(N + 5)], vectors(1, seed=71))  # a new row, not in the graph
    store = LocalStore(tmp_path / "snapshots")
    index._snapshot_store = store
    queries = vectors(8, seed=72)
    filters = SearchFilters(in_stock=True, genders=["women", "unisex"])

    def answers(handle, v):
        return [
            [(h.product_id, round(h.score, 5), h.product) for h in handle.search(q, 10, f, version=v)]
            for q in queries
            for f in (None, filters)
        ]

    info = index.snapshot(version, name="with-graph")
    manifest = json.loads((tmp_path / "snapshots" / "with-graph" / "manifest.json").read_text())
    search_files = {f["path"] for f in manifest["files"] if f["path"].startswith("_search/")}
    meta = _graph_meta(index, version)
    prefix = f"_search/{lance_partitions.table_name(*KEY)}"
    assert search_files == {f"{prefix}/meta.json", f"{prefix}/{meta.graph_file}", f"{prefix}/{meta.ids_file}", f"{prefix}/journal.jsonl"}

    restored = EmbeddedIndex(
        tmp_path / "elsewhere", snapshot_store=store, refresh_s=0, exact_max_rows=0, ivf_nprobe=index.ivf_nprobe
    )  # searched as the original is
    assert restored.restore(info.name, as_version="back") == "back"
    assert answers(restored, "back") == answers(index, version)
    stats = _view_stats(restored, "back")
    assert (stats.graph_rows, stats.exact_rows) == (N, 2)  # the graph came back, with the journal's two rows

    # the checksum covers the graph: a damaged graph file fails the restore
    graph_copy = tmp_path / "snapshots" / "with-graph" / "files" / prefix / meta.graph_file
    graph_copy.write_bytes(graph_copy.read_bytes()[:-1] + b"\x01")
    with pytest.raises(IndexBackendError, match="checksum mismatch"):
        restored.restore(info.name, as_version="broken")


def test_a_second_handle_sees_a_write_and_a_live_swap(built):
    writer, v1, products, matrix = built
    reader = EmbeddedIndex(writer.path, refresh_s=0)
    query = vectors(1, seed=80)[0]
    before = reader.search(query, k=5)

    late = _product(N + 10, title="Written later")
    writer.upsert(v1, [late], query[None])
    hits = reader.search(query, k=5)
    assert hits[0].product_id == late.product_id and hits[0].product["title"] == "Written later"
    assert _ids(hits[1:]) == _ids(before[:4])

    v2 = writer.create_version(MODEL_ID, DIM)
    others = catalog(30, start=2000)
    writer.upsert(v2, others, vectors(30, seed=81))
    writer.build_ann_index(v2, min_rows=1)
    assert {h.product_id for h in reader.search(query, k=5)} <= {p.product_id for p in [*products, late]}
    writer.set_live(v2)
    assert {h.product_id for h in reader.search(query, k=5)} <= {p.product_id for p in others}
    assert reader.count() == 30


def test_refresh_s_bounds_how_stale_another_handles_reader_may_be(built):
    writer, version, _, _ = built
    reader = EmbeddedIndex(writer.path, refresh_s=3600)
    query = vectors(1, seed=90)[0]
    reader.search(query, k=3)
    late = _product(N + 20)
    writer.upsert(version, [late], query[None])

    assert late.product_id not in _ids(reader.search(query, k=3))  # within refresh_s: the view it has
    reader.views.refresh_s = 0
    assert _ids(reader.search(query, k=1)) == [late.product_id]
    # a handle's own writes are seen at once, whatever refresh_s
    own = EmbeddedIndex(writer.path, refresh_s=3600)
    own.search(query, k=1)
    mine = _product(N + 21)
    own.upsert(version, [mine], (-query)[None])
    assert _ids(own.search(-query, k=1)) == [mine.product_id]


def test_an_unchanged_table_is_not_asked_for_its_version_and_a_commit_is_still_seen(built, monkeypatch):
    writer, version, _, _ = built
    reader = EmbeddedIndex(writer.path, refresh_s=0)
    query = vectors(1, seed=95)[0]
    versions_dir = writer.path / version / f"{lance_partitions.table_name(*KEY)}.lance" / "_versions"
    asked = []
    opened = reader._partition

    def counting(record, key, create=False):
        asked.append(key)
        return opened(record, key, create)

    monkeypatch.setattr(reader, "_partition", counting)
    reader.search(query, k=3)
    asked.clear()
    reader.search(query, k=3)
    assert asked == [KEY]  # its directory changed moments ago: a stamp that recent is not trusted

    settled = versions_dir.stat().st_mtime_ns - 10_000_000_000
    os.utime(versions_dir, ns=(settled, settled))  # as if the last commit were 10 s old
    reader.search(query, k=3)
    asked.clear()
    for _ in range(3):
        reader.search(query, k=3)
    assert asked == []  # the stamp held still: no LanceDB call

    late = _product(N + 30)
    writer.upsert(version, [late], query[None])  # a commit moves the directory's stamp
    assert _ids(reader.search(query, k=1)) == [late.product_id]
    assert asked == [KEY]


def test_a_journalled_write_that_never_committed_is_harmless(built):
    index, version, products, matrix = built
    # a writer crashed between its journal line and its commit: the id is marked, the row unchanged
    WriteJournal(index._search_dir(version, KEY)).record([products[5].product_id, "never-written"])
    hits = index.search(matrix[5], k=3)
    assert hits[0].product_id == products[5].product_id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert _view_stats(index, version).exact_rows == 1


def test_a_partition_without_a_graph_is_searched_exactly(tmp_path):
    products, matrix = catalog(120), vectors(120, seed=9)
    index = EmbeddedIndex(tmp_path / "index", refresh_s=0, ann_min_rows=1000)
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, products, matrix)
    assert index.build_ann_index(version) is False
    index.set_live(version)
    filters = SearchFilters(sizes=["M", "XL"], brands_exclude=["Acme"], price_min=50)
    for query in vectors(5, seed=10):
        hits = index.search(query, k=8, filters=filters)
        assert _ids(hits) == [pid for pid, _ in exact_top_k(query, products, matrix, 8, filters.matches)]
    assert not any(p["graph"] for p in index.stats()["versions"][0]["partitions"])


def test_the_search_mode_is_checked():
    with pytest.raises(IndexBackendError, match="known: faiss, lance"):
        EmbeddedIndex("unused", search="hnswlib")


def test_threads_share_views_while_a_writer_commits(built):
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)  # one handle, as gunicorn threads share
    filters = SearchFilters(in_stock=True)
    errors: list[BaseException] = []
    answers: list[int] = []

    def search_many(seed: int) -> None:
        try:
            for query in vectors(40, seed=seed):
                hits = reader.search(query, k=10, filters=filters)
                assert all(filters.matches(h.product) for h in hits)
                answers.append(len(hits))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search_many, args=(100 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for i in range(5):  # commits while the threads search: views are rebuilt and swapped under them
        index.upsert(version, [_product(N + 100 + i, in_stock=True)], vectors(1, seed=200 + i))
        index.update_metadata(version, [_product(i, price=float(i + 1))])
    for t in threads:
        t.join()
    assert errors == [] and answers == [10] * 160
    late = {_product(N + 100 + i).product_id for i in range(5)}
    assert late <= {h.product_id for h in reader.search(vectors(1, seed=204)[0], k=N + 5)}


def test_lookups_by_id_read_the_views_and_follow_writes(built):
    """get() and vectors() answer from the views (no LanceDB call per partition) and, like a search,
    see upserts, metadata updates and deletes: graph rows give their graph vector, journalled rows their new one."""
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)
    ids = [products[i].product_id for i in (3, 42, 7)]
    got = reader.vectors(ids)
    for i, pid in zip((3, 42, 7), ids, strict=True):
        np.testing.assert_allclose(got[pid], matrix[i], atol=1e-6)  # from the graph's storage
    assert reader.get(ids[0]) == products[3].model_dump(mode="json")

    new_vector = vectors(1, seed=77)[0]
    index.upsert(version, [_product(42, title="Re-shot")], new_vector[None])  # journalled: an exact row
    index.update_metadata(version, [products[3].model_copy(update={"price": 1.5})])
    index.delete(version, [ids[2]])
    for handle in (index, reader):
        got = handle.vectors(ids)
        assert set(got) == {ids[0], ids[1]}
        np.testing.assert_allclose(got[ids[1]], new_vector, atol=1e-6)
        np.testing.assert_allclose(got[ids[0]], matrix[3], atol=1e-6)
        assert handle.get(ids[1])["title"] == "Re-shot"
        assert handle.get(ids[0])["price"] == 1.5
        assert handle.get(ids[2]) is None
        assert handle.vectors([]) == {} and handle.get("no-such-product") is None

    lance = EmbeddedIndex(index.path, search="lance")  # the same answers through LanceDB
    assert lance.get(ids[1]) == index.get(ids[1])
    np.testing.assert_allclose(lance.vectors([ids[1]])[ids[1]], new_vector, atol=1e-6)
