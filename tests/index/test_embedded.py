"""What is particular to the embedded (LanceDB) backend: its registry file, version names, LanceDB's own ANN
search (``search="lance"``; the FAISS views have ``test_search_views``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from looksync.catalog.schema import Product
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from looksync.index.lance_filters import filter_sql, sql_string
from looksync.index.lance_schema import PRODUCT_COLUMNS
from tests.index.conftest import DIM, MODEL_ID, catalog, catalog_product, exact_top_k, vectors


def test_every_product_field_is_stored():
    assert set(PRODUCT_COLUMNS) == set(Product.model_fields)


def test_registry_file_names_versions_and_the_live_one(tmp_path):
    index = EmbeddedIndex(tmp_path)
    version = index.create_version("ViT-H-14/laion2b_s32b_b79k", 1024)
    index.set_live(version)

    registry = json.loads((tmp_path / "versions.json").read_text())
    assert (tmp_path / version).is_dir()  # a version is a directory of partition tables

    assert version.startswith("v") and version.endswith("Z-vit-h-14-laion2b-s32b-b79k")
    assert registry["live"] == version
    assert registry["versions"] == [
        {
            "name": version,
            "model_id": "ViT-H-14/laion2b_s32b_b79k",
            "dim": 1024,
            "created_at": registry["versions"][0]["created_at"],
        }
    ]
    assert not list(tmp_path.glob(".versions-*.tmp"))  # the temp file was renamed into place


def test_explicit_names_are_checked(tmp_path):
    index = EmbeddedIndex(tmp_path)
    assert index.create_version(MODEL_ID, DIM, name="catalog-2025.01") == "catalog-2025.01"
    with pytest.raises(IndexBackendError, match="already exists"):
        index.create_version(MODEL_ID, DIM, name="catalog-2025.01")
    with pytest.raises(IndexBackendError, match="version name"):
        index.create_version(MODEL_ID, DIM, name="../escape")


def test_a_corrupt_registry_is_reported_with_its_path(tmp_path):
    (tmp_path / "versions.json").write_text("{not json")
    with pytest.raises(IndexBackendError, match="versions.json: cannot read the index registry"):
        EmbeddedIndex(tmp_path).live_version()


def test_filter_sql_escapes_literals():
    assert sql_string("O'Neill") == "'O''Neill'"
    sql = filter_sql(SearchFilters(brands_include=["O'Neill"], sizes=["M"], in_stock=False, price_max=10))
    assert sql == "(brand IN ('O''Neill')) AND (price <= 10.0) AND (array_has_any(sizes, ['M'])) AND (in_stock = false)"
    assert filter_sql(SearchFilters()) is None
    with pytest.raises(IndexBackendError, match="price_min"):
        filter_sql(SearchFilters(price_min=float("nan")))


def test_stats_describe_each_version(tmp_path):
    index = EmbeddedIndex(tmp_path)
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, catalog(3), vectors(3))
    index.set_live(version)

    stats = index.stats()

    assert stats["live"] == version
    (entry,) = stats["versions"]
    assert (entry["name"], entry["count"], entry["live"], entry["ann"]) == (version, 3, True, False)


def test_small_tables_stay_on_exact_search(tmp_path):
    index = EmbeddedIndex(tmp_path, ann_min_rows=1000)
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, catalog(50), vectors(50))
    assert index.build_ann_index(version, min_rows=51) is False  # the whole version has 50, no partition more
    assert index.build_ann_index(version) is False
    assert index.stats()["versions"][0]["indexes"] == []


def test_ann_index_keeps_filters_exact_and_recall_high(tmp_path):
    n, dim = 3000, 32
    rare = set(range(7, n, 500))  # 6 products
    products = [
        catalog_product(i, model_id=None, brand="Rarebrand") if i in rare else catalog_product(i, model_id=None)
        for i in range(n)
    ]
    matrix = vectors(n, seed=8, dim=dim)
    index = EmbeddedIndex(tmp_path, ann_min_rows=100, search="lance")  # per partition: 15 (layer, market) of ~200 rows
    version = index.create_version("model-32", dim)
    index.upsert(version, products, matrix)
    index.set_live(version)

    assert index.build_ann_index() is True
    stats = index.stats()["versions"][0]
    assert len(stats["partitions"]) == 15 and all(p["ann"] for p in stats["partitions"])
    assert stats["ann"] and {"brand", "sizes", "price"} <= {c for i in stats["indexes"] for c in i["columns"]}

    recall = []
    filters = SearchFilters(market="US", in_stock=True)
    for query in vectors(20, seed=9, dim=dim):
        hits = index.search(query, k=10, filters=filters)
        assert len(hits) == 10 and all(filters.matches(h.product) for h in hits)
        exact = {pid for pid, _ in exact_top_k(query, products, matrix, 10, keep=filters.matches)}
        recall.append(len(exact & {h.product_id for h in hits}) / 10)
    assert np.mean(recall) >= 0.9

    away = -matrix[sorted(rare)].mean(axis=0)
    hits = index.search(away, k=6, filters=SearchFilters(brands_include=["Rarebrand"]))
    assert sorted(h.product_id for h in hits) == sorted(products[i].product_id for i in rare)

    # rows written after the build are not in the graph yet, but are still found
    late = catalog_product(n + 1, model_id=None)
    late_vector = vectors(1, seed=10, dim=dim)
    index.upsert(version, [late], late_vector)
    assert index.search(late_vector[0], k=1)[0].product_id == late.product_id


class _ShortAnn(EmbeddedIndex):
    """Fault injection: the ANN pass returns only its best hit, as a graph starved by a filter can."""

    def _knn(self, table, query, k, where, candidates, exact):
        rows = super()._knn(table, query, k, where, candidates, exact)
        return rows if exact else rows[:1]


def test_a_short_ann_answer_falls_back_to_an_exact_scan_of_the_matches(tmp_path):
    products, matrix = catalog(60), vectors(60)
    index = _ShortAnn(tmp_path, search="lance")
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, products, matrix)
    index.set_live(version)
    filters = SearchFilters(market="IN")
    query = vectors(1, seed=12)[0]

    hits = index.search(query, k=5, filters=filters)

    assert [h.product_id for h in hits] == [
        pid for pid, _ in exact_top_k(query, products, matrix, 5, keep=filters.matches)
    ]


@pytest.mark.parametrize("moment", ["holding the lock", "temp file written, not yet renamed"])
def test_a_writer_killed_mid_registry_write_leaves_live_unchanged_and_the_registry_usable(tmp_path, moment):
    """``kill -9`` of a process inside a registry edit (a swap to a new version): readers still see the
    old live version, the registry reads cleanly, and the next writer is not blocked (the kernel drops a
    dead process's lock)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    index = EmbeddedIndex(tmp_path / "index")
    old = index.create_version(MODEL_ID, DIM)
    index.upsert(old, catalog(3), vectors(3))
    index.set_live(old)
    new = index.create_version(MODEL_ID, DIM)
    index.upsert(new, catalog(5), vectors(5))
    hook = {
        # killed inside the edit, before anything is written
        "holding the lock": "def _write(self, state):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "registry.VersionRegistry._write = _write\n",
        # killed after the new registry is on disk under its temp name, before os.replace publishes it
        "temp file written, not yet renamed": "real_fsync = os.fsync\n"
        "def fsync(fd):\n    real_fsync(fd)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fsync = fsync\n",
    }[moment]
    script = (
        "import os, signal, sys\n"
        "from looksync.index.embedded import EmbeddedIndex\n"
        "import looksync.index.lance_registry as registry\n"
        f"index = EmbeddedIndex({str(tmp_path / 'index')!r})\n"
        + hook
        + f"index.set_live({new!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]

    reader = EmbeddedIndex(tmp_path / "index")
    assert reader.live_version() == old and reader.count() == 3
    assert {v.name for v in reader.list_versions()} == {old, new}
    reader.set_live(new)  # the next writer takes the lock at once and publishes
    assert EmbeddedIndex(tmp_path / "index").live_version() == new and index.count() == 5
