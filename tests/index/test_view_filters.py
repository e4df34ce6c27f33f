"""The rows a filter lets through in a search view (``view_filters``): cached per repeating filter, the
same answers as the exact filtered top-k, and never stale after a write.

Real LanceDB tables and FAISS graphs in a temporary directory, as in ``test_search_views``.
"""

from __future__ import annotations

import numpy as np
import pytest

from looksync.index.base import IndexBackendError, SearchFilters
from looksync.index.embedded import EmbeddedIndex
from tests.index.conftest import BRANDS, DIM, SIZES, built_view_index, catalog_product, exact_top_k, vectors

N = 600
KEY = ("topwear", "US")


def _product(i: int, **overrides):
    return catalog_product(i, category="t_shirt" if i % 3 else "shirt", market="US", **overrides)


def _ids(hits) -> list[str]:
    return [h.product_id for h in hits]


@pytest.fixture
def built(tmp_path):
    """One partition of N shirts and t-shirts with its graph built; handles walk the graph whatever the filter."""
    return built_view_index(tmp_path, [_product(i) for i in range(N)], vectors(N, seed=11))


# Pairs that differ in exactly one field, one after the other, so a cache keyed on too little would
# answer the second with the first's rows.
FILTERS = [
    SearchFilters(categories=["shirt"]),
    SearchFilters(categories=["t_shirt"]),
    SearchFilters(categories=["t_shirt"], genders=["women", "unisex"]),
    SearchFilters(categories=["t_shirt"], genders=["men", "unisex"]),
    SearchFilters(genders=["men"], brands_include=[BRANDS[0], BRANDS[2]]),
    SearchFilters(genders=["men"], brands_include=[BRANDS[1]]),
    SearchFilters(genders=["men"], brands_exclude=[BRANDS[1]]),
    SearchFilters(sizes=[SIZES[0], SIZES[3]]),
    SearchFilters(sizes=[SIZES[1]]),
    SearchFilters(in_stock=True),
    SearchFilters(in_stock=False),
    SearchFilters(layers=["topwear"], market="US", genders=["women"]),
    SearchFilters(layers=["bottomwear"], genders=["women"]),
    SearchFilters(genders=["women"], price_min=100.0, price_max=300.0),
    SearchFilters(genders=["women"], price_max=50.0),
    SearchFilters(genders=["women"], exclude_ids=[catalog_product(i).product_id for i in range(0, N, 3)]),
    SearchFilters(genders=["women"], categories=[], sizes=[]),  # empty lists constrain nothing
    SearchFilters(brands_include=["No such brand"]),
    None,
]


def _check_exact(index, products, matrix, queries, flt, k=10, **search):
    keep = flt.matches if flt else (lambda p: True)
    for query in queries:
        hits = index.search(query, k=k, filters=flt, **search)
        expected = exact_top_k(query, products, matrix, k, keep)
        assert _ids(hits) == [pid for pid, _ in expected], flt
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
        assert all(keep(h.product) for h in hits)


@pytest.mark.parametrize("exact_max_rows", [0, 10_000], ids=["graph-walk", "exact-from-graph-storage"])
def test_every_filter_gives_the_exact_filtered_top_k_on_first_use_and_from_the_cache(built, exact_max_rows):
    index, _, products, matrix = built
    index.exact_max_rows = exact_max_rows
    queries = vectors(4, seed=12)
    for flt in FILTERS:
        _check_exact(index, products, matrix, queries, flt, num_candidates=N)
    allowed = index.views.cached((index.live_version(), KEY)).allowed
    computed = allowed.misses
    assert computed > 10
    for flt in FILTERS:  # every repeating part from the cache now
        _check_exact(index, products, matrix, queries, flt, num_candidates=N)
    assert allowed.misses == computed


def test_the_same_filter_in_another_order_is_one_entry_and_price_bounds_apply_on_top(built):
    index, version, products, matrix = built
    query = vectors(1, seed=13)[0]
    index.search(query, k=5, filters=SearchFilters(genders=["women", "unisex"], sizes=["S", "M"]))
    allowed = index.views.cached((version, KEY)).allowed
    assert allowed.misses == 1

    for flt in (
        SearchFilters(genders=["unisex", "women", "women"], sizes=["M", "S"]),
        SearchFilters(genders=["unisex", "women"], sizes=["M", "S"], price_max=120.0),
        SearchFilters(
            genders=["women", "unisex"], sizes=["S", "M"], price_min=200.0, exclude_ids=[products[1].product_id]
        ),
    ):
        _check_exact(index, products, matrix, [query], flt, num_candidates=N)
    assert allowed.misses == 1


def test_the_cache_is_bounded(built):
    index, version, products, matrix = built
    query = vectors(1, seed=14)[0]
    index.search(query, k=5)
    allowed = index.views.cached((version, KEY)).allowed
    allowed.capacity = 3
    for brand in BRANDS:
        index.search(query, k=5, filters=SearchFilters(brands_include=[brand]))
    assert len(allowed._cache) == 3 and allowed.misses == len(BRANDS)
    # the oldest went out: asking for it again computes it again, and right
    _check_exact(index, products, matrix, [query], SearchFilters(brands_include=[BRANDS[0]]), num_candidates=N)
    assert allowed.misses == len(BRANDS) + 1


def test_writes_after_a_filter_was_cached_are_seen_by_the_next_search(built):
    index, version, products, matrix = built
    reader = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0)  # another process
    women = SearchFilters(genders=["women"])
    moved, gone = 0, 3
    products[moved] = _product(moved, gender="women")
    products[gone] = _product(gone, gender="women")
    index.update_metadata(version, [products[moved], products[gone]])
    assert _ids(reader.search(matrix[moved], k=1, filters=women)) == [products[moved].product_id]  # cached now

    products[moved] = _product(moved, gender="men")
    index.update_metadata(version, [products[moved]])  # metadata only: the graph keeps its label
    assert index.delete(version, [products[gone].product_id]) == 1
    fresh = _product(N + 1, gender="women")
    fresh_vector = vectors(1, seed=15)
    index.upsert(version, [fresh], fresh_vector)  # a new row, scored exactly beside the graph

    kept = [p for i, p in enumerate(products) if i != gone] + [fresh]
    kept_matrix = np.vstack([np.delete(matrix, gone, axis=0), fresh_vector])
    for handle in (index, reader):
        assert products[moved].product_id not in _ids(
            handle.search(matrix[moved], k=N, filters=women, num_candidates=N)
        )
        assert (
            _ids(handle.search(matrix[moved], k=1, filters=SearchFilters(genders=["men"])))[0]
            == products[moved].product_id
        )
        assert products[gone].product_id not in _ids(handle.search(matrix[gone], k=N, filters=women, num_candidates=N))
        assert _ids(handle.search(fresh_vector[0], k=1, filters=women)) == [fresh.product_id]
        _check_exact(handle, kept, kept_matrix, vectors(3, seed=16), women, num_candidates=N)


def test_private_graph_memory_gives_the_same_results_and_counts_the_vectors_as_its_own(built):
    index, version, products, matrix = built
    private = EmbeddedIndex(index.path, refresh_s=0, exact_max_rows=0, graph_memory="private")
    for query in vectors(5, seed=17):
        for flt in (None, SearchFilters(genders=["men"], price_max=250.0)):
            assert _ids(private.search(query, k=10, filters=flt)) == _ids(index.search(query, k=10, filters=flt))
    mapped, own = index.views.cached((version, KEY)).stats(), private.views.cached((version, KEY)).stats()
    assert (mapped.mapped_bytes, own.mapped_bytes) == (N * DIM * 4, 0)
    assert own.bytes >= mapped.bytes + N * DIM * 4 - 1024  # (the caches differ by a few entries)
    with pytest.raises(IndexBackendError, match="graph_memory 'swap'"):
        EmbeddedIndex(index.path, graph_memory="swap")


@pytest.mark.parametrize(
    "flt, message",
    [
        (SearchFilters(categories=[3]), "filter value 3 must be a string"),
        (SearchFilters(market=5), "filter value 5 must be a string"),
        (SearchFilters(price_max=float("nan")), "price_max=nan must be finite"),
        (SearchFilters(price_min="cheap"), "price_min='cheap' is not a number"),
        (SearchFilters(layers=["bottomwear"], genders=[None]), "filter value None must be a string"),  # routed away
    ],
)
def test_a_bad_filter_value_is_refused_naming_it(built, flt, message):
    index = built[0]
    with pytest.raises(IndexBackendError, match=message):
        index.search(vectors(1, seed=18)[0], k=3, filters=flt)
