"""The embedded backend's (layer, market) partitions: routing, cross-partition merge, moves, readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from looksync.catalog.taxonomy import get_taxonomy
from looksync.index import lance_partitions
from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from tests.index.conftest import DIM, MODEL_ID, catalog, catalog_product, exact_top_k, vectors


@pytest.fixture
def built(tmp_path):
    products, matrix = catalog(300), vectors(300, seed=1)
    index = EmbeddedIndex(tmp_path / "index")
    version = index.create_version(MODEL_ID, DIM)
    assert index.upsert(version, products, matrix).failures == []
    index.set_live(version)
    return index, version, products, matrix


def _keys(products) -> set[tuple[str, str]]:
    return {(p.layer, p.market) for p in products}


def test_table_names_encode_the_key_reversibly():
    for layer, market in (("topwear", "IN"), ("one_piece", "US"), ("a.b-c d", "x/y"), ("", "é")):
        name = lance_partitions.table_name(layer, market)
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        assert lance_partitions.key_of(name) == (layer, market)
    assert lance_partitions.key_of("not-a-partition") is None


def test_one_table_per_layer_and_market(built):
    index, version, products, _ = built
    partitions = index.stats()["versions"][0]["partitions"]
    assert {(p["layer"], p["market"]) for p in partitions} == _keys(products)
    for p in partitions:
        assert p["count"] == sum(1 for q in products if (q.layer, q.market) == (p["layer"], p["market"]))
    assert index.count() == 300


def test_a_layer_and_market_query_touches_one_partition(built):
    index, version, products, matrix = built
    layer = get_taxonomy().layer_of("jeans")
    filters = SearchFilters(layers=[layer], market="US", in_stock=True)
    query = vectors(1, seed=3)[0]
    before = dict(index.partition_searches)

    hits = index.search(query, k=5, filters=filters)

    assert index.last_search_partitions == [(layer, "US")]
    touched = {key for key, n in index.partition_searches.items() if n != before.get(key, 0)}
    assert touched == {(version, layer, "US")}
    assert [h.product_id for h in hits] == [pid for pid, _ in exact_top_k(query, products, matrix, 5, filters.matches)]
    assert {(p["layer"], p["market"]): p["searches"] for p in index.stats()["versions"][0]["partitions"]}[
        (layer, "US")
    ] == 1


def test_categories_route_to_their_layers(built):
    index, _, products, matrix = built
    layers = {get_taxonomy().layer_of(c) for c in ("dress", "sneakers")}
    filters = SearchFilters(categories=["dress", "sneakers"])
    query = vectors(1, seed=4)[0]

    hits = index.search(query, k=8, filters=filters)

    assert index.last_search_partitions == sorted(k for k in _keys(products) if k[0] in layers)
    assert [h.product_id for h in hits] == [pid for pid, _ in exact_top_k(query, products, matrix, 8, filters.matches)]
    # a layer the categories contradict leaves nothing to search
    other = next(layer for layer in {p.layer for p in products} if layer not in layers)
    assert index.search(query, k=8, filters=SearchFilters(layers=[other], categories=["dress"])) == []
    assert index.last_search_partitions == []


@pytest.mark.parametrize(
    "filters",
    [None, SearchFilters(market="JP"), SearchFilters(layers=["topwear", "bottomwear"], price_max=300.0)],
    ids=["all-partitions", "one-market", "two-layers"],
)
@pytest.mark.parametrize("threads", [1, 4])
def test_cross_partition_merge_equals_exact_top_k(built, filters, threads):
    index, _, products, matrix = built
    index.search_threads = threads
    keep = filters.matches if filters else (lambda p: True)
    for query in vectors(5, seed=6):
        hits = index.search(query, k=12, filters=filters)
        exact = exact_top_k(query, products, matrix, 12, keep)
        assert [h.product_id for h in hits] == [pid for pid, _ in exact]
        assert np.allclose([h.score for h in hits], [s for _, s in exact], atol=1e-5)
        assert len(index.last_search_partitions) > 1


def test_an_upsert_that_changes_layer_moves_the_product(built):
    index, version, products, matrix = built
    old = products[0]
    category = next(c for c in ("jeans", "dress", "sneakers") if get_taxonomy().layer_of(c) != old.layer)
    new = old.model_copy(update={"category": category, "layer": get_taxonomy().layer_of(category)})
    vector = vectors(1, seed=77)[0]

    result = index.upsert(version, [new], vector[None])

    assert (result.written, result.failures) == (1, [])
    assert index.count() == 300
    assert index.get(old.product_id)["category"] == category
    hits = index.search(vector, k=1, filters=SearchFilters(layers=[new.layer], market=new.market))
    assert hits[0].product_id == old.product_id
    stale = index.search(vector, k=300, filters=SearchFilters(layers=[old.layer], market=old.market))
    assert old.product_id not in {h.product_id for h in stale}


def test_a_metadata_update_that_changes_market_moves_the_product_with_its_vector(built):
    index, version, products, matrix = built
    old = products[1]
    market = next(m for m in ("IN", "US", "JP") if m != old.market)
    moved = catalog_product(1, market=market)
    assert (moved.layer, moved.market) != (old.layer, old.market)
    untouched = products[2].model_copy(update={"title": "Renamed"})

    result = index.update_metadata(version, [moved, untouched])

    assert (result.written, result.failures) == (2, [])
    assert index.count() == 300
    assert index.get(old.product_id)["market"] == market
    assert index.get(untouched.product_id)["title"] == "Renamed"
    assert np.allclose(index.vectors([old.product_id])[old.product_id], matrix[1], atol=1e-6)
    hits = index.search(matrix[1], k=1, filters=SearchFilters(market=market, layers=[moved.layer]))
    assert hits[0].product_id == old.product_id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert old.product_id not in {
        h.product_id for h in index.search(matrix[1], k=300, filters=SearchFilters(market=old.market))
    }
    assert index.delete(version, [old.product_id]) == 1 and index.get(old.product_id) is None


def test_a_reader_finds_a_partition_a_writer_adds_later(tmp_path):
    writer = EmbeddedIndex(tmp_path / "index")
    version = writer.create_version(MODEL_ID, DIM)
    writer.upsert(version, catalog(20, market="IN"), vectors(20, seed=2))
    writer.set_live(version)
    reader = EmbeddedIndex(tmp_path / "index", refresh_s=0)  # re-lists the partitions on every search
    query = vectors(1, seed=3)[0]
    assert reader.search(query, k=3, filters=SearchFilters(market="JP")) == []

    late = catalog(5, start=100, market="JP")
    writer.upsert(version, late, vectors(5, seed=4))

    hits = reader.search(query, k=3, filters=SearchFilters(market="JP"))
    assert len(hits) == 3 and {h.product_id for h in hits} <= {p.product_id for p in late}
    assert reader.count() == 25


def test_a_version_in_the_old_one_table_layout_is_refused_clearly(tmp_path):
    (tmp_path / "old.lance").mkdir()
    (tmp_path / "versions.json").write_text(
        json.dumps({"format": 1, "live": "old", "versions": [{"name": "old", "model_id": MODEL_ID, "dim": DIM, "created_at": "x"}]})
    )
    with pytest.raises(IndexBackendError, match="one-table layout"):
        EmbeddedIndex(tmp_path).count()
