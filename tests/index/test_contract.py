"""The CatalogIndex contract, run against every backend (see ``index_factory``)."""

from __future__ import annotations

import numpy as np
import pytest

from looksync.index.base import IndexBackendError, SearchFilters
from tests.index.conftest import DIM, MODEL_ID, catalog, catalog_product, exact_top_k, vectors


def _ids(hits) -> list[str]:
    return [h.product_id for h in hits]


def _assert_exact(hits, expected) -> None:
    assert _ids(hits) == [pid for pid, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


# ---- writes and reads -------------------------------------------------------------------------------


def test_upsert_get_count(index):
    products = catalog(20)
    version = index.create_version(MODEL_ID, DIM)
    assert index.count(version) == 0

    result = index.upsert(version, products, vectors(20))

    assert (result.written, result.failures) == (20, [])
    assert index.count(version) == 20
    assert index.get(products[3].product_id, version) == products[3].model_dump(mode="json")
    assert index.get("no-such-product", version) is None


def test_upsert_replaces_existing_products(index):
    products = catalog(10)
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, products, vectors(10))

    changed = catalog_product(4, price=999.0, title="Renamed")
    result = index.upsert(version, [changed], vectors(1, seed=7))

    assert result.written == 1
    assert index.count(version) == 10
    assert index.get(changed.product_id, version) == changed.model_dump(mode="json")


def test_stored_model_id_is_the_versions(index):
    version = index.create_version(MODEL_ID, DIM)
    product = catalog_product(1, model_id=None)
    index.upsert(version, [product], vectors(1))
    assert index.get(product.product_id, version)["model_id"] == MODEL_ID


def test_bulk_failures_are_reported_and_the_rest_written(index):
    products = catalog(8)
    rows = list(vectors(8))
    rows[1] = rows[1][: DIM - 1]  # wrong dim
    rows[2] = np.full(DIM, np.nan, dtype=np.float32)  # NaN
    rows[3] = rows[3] * 3  # not normalised
    rows[4] = np.ones(DIM, dtype=np.int64)  # not floating point
    products[5] = catalog_product(5, model_id="another-model")
    version = index.create_version(MODEL_ID, DIM)

    result = index.upsert(version, products, rows)

    failed = dict(result.failures)
    assert set(failed) == {products[i].product_id for i in (1, 2, 3, 4, 5)}
    assert "dim" in failed[products[1].product_id]
    assert "NaN" in failed[products[2].product_id]
    assert "normalised" in failed[products[3].product_id]
    assert "int64" in failed[products[4].product_id]
    assert "another-model" in failed[products[5].product_id]
    assert result.written == 3
    assert index.count(version) == 3
    assert index.get(products[0].product_id, version) is not None
    assert index.get(products[2].product_id, version) is None


def test_a_matrix_of_the_wrong_dim_fails_every_row(index):
    version = index.create_version(MODEL_ID, DIM)
    result = index.upsert(version, catalog(3), vectors(3, dim=DIM + 1))
    assert result.written == 0 and len(result.failures) == 3
    assert index.count(version) == 0


def test_products_and_vectors_must_pair_up(index):
    version = index.create_version(MODEL_ID, DIM)
    with pytest.raises(IndexBackendError, match="3 products but 2 vectors"):
        index.upsert(version, catalog(3), vectors(2))


def test_update_metadata_changes_fields_and_keeps_the_vector(live_catalog):
    index, version, products, matrix = live_catalog
    target = products[7]
    before = index.search(matrix[7], k=1)
    assert _ids(before) == [target.product_id] and before[0].score == pytest.approx(1.0, abs=1e-5)

    updated = catalog_product(7, price=1234.0, in_stock=not target.in_stock, title="New title", sizes=["XXL"])
    result = index.update_metadata(version, [updated])

    assert (result.written, result.failures) == (1, [])
    assert index.get(target.product_id) == updated.model_dump(mode="json")
    after = index.search(matrix[7], k=1)
    assert _ids(after) == [target.product_id]
    assert after[0].score == pytest.approx(before[0].score, abs=1e-6)
    assert after[0].product["title"] == "New title"
    in_xxl = index.search(matrix[7], k=5, filters=SearchFilters(sizes=["XXL"], in_stock=updated.in_stock))
    assert _ids(in_xxl) == [target.product_id]


def test_update_metadata_reports_unknown_products_and_changed_images(live_catalog):
    index, version, products, _ = live_catalog
    unknown = catalog_product(5000)
    new_image = catalog_product(3, image_hash="f" * 64)
    fine = catalog_product(4, title="Fine")
    no_hash = catalog_product(6, image_hash=None, title="No hash given")

    result = index.update_metadata(version, [unknown, new_image, fine, no_hash])

    assert result.written == 2
    assert index.get(no_hash.product_id)["title"] == "No hash given"
    assert index.get(no_hash.product_id)["image_hash"] == products[6].image_hash
    failed = dict(result.failures)
    assert "not in version" in failed[unknown.product_id]
    assert "image changed" in failed[new_image.product_id]
    assert index.get(products[3].product_id)["image_hash"] == products[3].image_hash
    assert index.count() == 300


def test_delete(live_catalog):
    index, version, products, matrix = live_catalog
    gone = [products[0].product_id, products[1].product_id]

    assert index.delete(version, [*gone, "no-such-product"]) == 2

    assert index.count(version) == 298
    assert index.get(gone[0]) is None
    hits = index.search(matrix[0], k=10)
    assert not set(gone) & set(_ids(hits))


# ---- search -----------------------------------------------------------------------------------------


def test_search_returns_the_exact_cosine_top_k(live_catalog):
    index, _, products, matrix = live_catalog
    for query in vectors(10, seed=99):
        hits = index.search(query, k=10)
        _assert_exact(hits, exact_top_k(query, products, matrix, 10))
        assert all(h.product == index.get(h.product_id) for h in hits[:2])
        assert "vector" not in hits[0].product


def test_search_accepts_an_unnormalised_query(live_catalog):
    index, _, products, matrix = live_catalog
    query = vectors(1, seed=5)[0]
    _assert_exact(index.search(query * 4.0, k=5), exact_top_k(query, products, matrix, 5))


def test_k_larger_than_the_catalog_returns_everything(index):
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, catalog(4), vectors(4))
    assert len(index.search(vectors(1, seed=3)[0], k=50, version=version)) == 4


FILTER_CASES = {
    "layers": SearchFilters(layers=["bottomwear", "footwear"]),
    "categories": SearchFilters(categories=["dress"]),
    "genders": SearchFilters(genders=["men", "unisex"]),
    "market": SearchFilters(market="JP"),
    "brands_include": SearchFilters(brands_include=["Acme", "Zenith"]),
    "brands_exclude": SearchFilters(brands_exclude=["Acme", "Northwind", "Zenith"]),
    "price_range": SearchFilters(price_min=100, price_max=250.5),
    "price_min": SearchFilters(price_min=400),
    "sizes_any_of": SearchFilters(sizes=["XS", "XL"]),
    "in_stock": SearchFilters(in_stock=True),
    "out_of_stock": SearchFilters(in_stock=False),
    "exclude_ids": SearchFilters(exclude_ids=[catalog_product(i).product_id for i in range(0, 300, 2)]),
    "empty_lists_constrain_nothing": SearchFilters(layers=[], sizes=[], brands_exclude=[]),
    "combined": SearchFilters(
        market="US", genders=["women", "unisex"], categories=["t_shirt", "jeans", "dress"], price_max=300, in_stock=True
    ),
}


@pytest.mark.parametrize("filters", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_every_filter_is_honoured_before_the_knn(live_catalog, filters):
    index, _, products, matrix = live_catalog
    matching = [p for p in products if filters.matches(p.model_dump(mode="json"))]
    assert 0 < len(matching) < len(products) or filters == FILTER_CASES["empty_lists_constrain_nothing"]
    for query in vectors(3, seed=11):
        hits = index.search(query, k=15, filters=filters)
        assert all(filters.matches(h.product) for h in hits)
        _assert_exact(hits, exact_top_k(query, products, matrix, 15, keep=filters.matches))


def test_a_rare_filter_still_returns_k_hits(index):
    products = catalog(400)
    rare = {5, 77, 150, 222, 301, 399}
    products = [catalog_product(i, brand="Rarebrand") if i in rare else p for i, p in enumerate(products)]
    matrix = vectors(400, seed=2)
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, products, matrix)
    index.set_live(version)
    # a query pointing away from every rare product: a post-filter on the global top-k would find none
    query = -matrix[sorted(rare)].mean(axis=0)

    hits = index.search(query, k=6, filters=SearchFilters(brands_include=["Rarebrand"]))
    assert sorted(_ids(hits)) == sorted(products[i].product_id for i in rare)
    more = index.search(query, k=10, filters=SearchFilters(brands_include=["Rarebrand"]), num_candidates=10)
    assert len(more) == 6


def test_quotes_and_backslashes_in_filter_values_are_literals(live_catalog):
    index, _, products, _ = live_catalog
    query = vectors(1, seed=21)[0]
    oneill = index.search(query, k=300, filters=SearchFilters(brands_include=["O'Neill"]))
    assert oneill and {h.product["brand"] for h in oneill} == {"O'Neill"}
    assert len(oneill) == sum(p.brand == "O'Neill" for p in products)
    backslash = index.search(query, k=300, filters=SearchFilters(brands_include=["Back\\slash & Co"]))
    assert backslash and {h.product["brand"] for h in backslash} == {"Back\\slash & Co"}
    others = index.search(query, k=300, filters=SearchFilters(brands_exclude=["O'Neill"]))
    assert len(others) == 300 - len(oneill)
    injected = SearchFilters(brands_include=["x') OR (1=1", "x' OR '1'='1"])
    assert index.search(query, k=10, filters=injected) == []


def test_ids_with_quotes_work_everywhere(index):
    product = catalog_product(1, vendor="d'or", vendor_sku="it's-1")
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, [product, catalog_product(2)], vectors(2))
    index.set_live(version)
    assert index.get(product.product_id)["vendor"] == "d'or"
    hits = index.search(vectors(1, seed=4)[0], k=5, filters=SearchFilters(exclude_ids=[product.product_id]))
    assert _ids(hits) == [catalog_product(2).product_id]
    assert index.delete(version, [product.product_id]) == 1


def test_search_rejects_a_query_of_the_wrong_size(live_catalog):
    index = live_catalog[0]
    with pytest.raises(IndexBackendError, match="dim 16"):
        index.search(np.ones(DIM + 3, dtype=np.float32), k=3)


# ---- versions ---------------------------------------------------------------------------------------


def test_versions_live_and_prune(index):
    assert index.live_version() is None and index.list_versions() == []
    with pytest.raises(IndexBackendError, match="no live"):
        index.search(vectors(1)[0], k=1)

    v1 = index.create_version("model-a", DIM)
    v2 = index.create_version("model-b", 8)
    v3 = index.create_version("model-c", DIM)
    index.upsert(v2, catalog(5, model_id="model-b"), vectors(5, dim=8))
    assert len({v1, v2, v3}) == 3

    index.set_live(v2)

    assert index.live_version() == v2
    assert index.live_model_id() == "model-b"
    infos = {i.name: i for i in index.list_versions()}
    assert [i.name for i in index.list_versions()] == [v1, v2, v3]  # oldest first
    assert (infos[v2].model_id, infos[v2].dim, infos[v2].count, infos[v2].live) == ("model-b", 8, 5, True)
    assert not infos[v1].live and infos[v1].count == 0
    assert index.count() == 5
    assert len(index.search(vectors(1, dim=8)[0], k=3)) == 3
    with pytest.raises(IndexBackendError, match="no-such-version"):
        index.set_live("no-such-version")
    assert index.live_version() == v2

    assert index.prune(keep=1) == [v1]  # v3 is the newest, v2 is live
    assert index.prune(keep=0) == [v3]  # never the live one
    assert [i.name for i in index.list_versions()] == [v2]
    assert index.count() == 5
    with pytest.raises(IndexBackendError):
        index.count(v1)


def test_rollback_returns_to_the_version_live_before_and_no_further(index):
    with pytest.raises(IndexBackendError, match="rollback"):
        index.rollback()  # nothing live
    old = index.create_version(MODEL_ID, DIM)
    index.upsert(old, catalog(4), vectors(4, seed=1))
    index.set_live(old)
    with pytest.raises(IndexBackendError, match="no version older"):
        index.rollback()  # the live one is the oldest
    new = index.create_version(MODEL_ID, DIM)
    index.upsert(new, catalog(6), vectors(6, seed=2))
    index.set_live(new)
    shadow = index.create_version(MODEL_ID, DIM)  # newer than live, never live: not where a rollback goes
    assert index.previous_version().name == old

    assert index.rollback() == (new, old)

    assert index.live_version() == old and index.count() == 4
    assert {i.name for i in index.list_versions()} == {old, new, shadow}  # nothing dropped


def test_rollback_across_models_is_refused_unless_allowed(index):
    old = index.create_version("model-old", DIM)
    index.upsert(old, catalog(3, model_id="model-old"), vectors(3))
    index.set_live(old)
    new = index.create_version("model-new", DIM)
    index.upsert(new, catalog(5, model_id="model-new"), vectors(5))
    index.set_live(new)

    with pytest.raises(IndexBackendError, match="model-old"):
        index.rollback()
    assert index.live_version() == new

    assert index.rollback(allow_model_change=True) == (new, old)
    assert index.live_model_id() == "model-old"


def test_drop_one_version_never_the_live_one(index):
    live = index.create_version(MODEL_ID, DIM)
    failed = index.create_version(MODEL_ID, DIM)
    index.upsert(live, catalog(3), vectors(3))
    index.upsert(failed, catalog(3), vectors(3))
    index.set_live(live)
    index.drop_version(failed)  # the newest: prune(keep>=1) would keep it
    assert [i.name for i in index.list_versions()] == [live]
    with pytest.raises(IndexBackendError):
        index.count(failed)
    with pytest.raises(IndexBackendError, match="is live"):
        index.drop_version(live)
    with pytest.raises(IndexBackendError):
        index.drop_version(failed)  # gone already
    assert index.count() == 3


def test_a_reader_follows_the_writer_without_restart(index_factory):
    writer, reader = index_factory(), index_factory()
    v1 = writer.create_version(MODEL_ID, DIM)
    writer.upsert(v1, catalog(10), vectors(10))
    writer.set_live(v1)
    assert reader.live_version() == v1 and reader.count() == 10

    new_products = catalog(5, start=10)
    new_vectors = vectors(5, seed=3)
    writer.upsert(v1, new_products, new_vectors)
    assert reader.count() == 15
    assert _ids(reader.search(new_vectors[2], k=1)) == [new_products[2].product_id]

    v2 = writer.create_version("model-next", 8)
    next_products = catalog(7, start=100, model_id=None)
    next_vectors = vectors(7, seed=4, dim=8)
    writer.upsert(v2, next_products, next_vectors)
    assert reader.live_version() == v1  # not live until swapped
    writer.set_live(v2)

    assert reader.live_version() == v2 and reader.live_model_id() == "model-next"
    assert reader.count() == 7
    assert _ids(reader.search(next_vectors[0], k=1)) == [next_products[0].product_id]
    result = writer.update_metadata(v2, [catalog_product(100, model_id=None, title="Updated by the writer")])
    assert result.written == 1
    assert reader.get(next_products[0].product_id)["title"] == "Updated by the writer"
    writer.prune(keep=0)
    assert [i.name for i in reader.list_versions()] == [v2]


# ---- snapshots --------------------------------------------------------------------------------------


def _skip_without_snapshot_repository(index) -> None:
    ready = getattr(index, "snapshot_repository_exists", None)
    if ready is not None and not ready():
        pytest.skip(f"{index!r}: snapshot repository not registered in the cluster (see docs/index.md)")


def test_a_snapshot_restores_as_a_new_version_with_identical_results(live_catalog):
    index, version, products, matrix = live_catalog
    _skip_without_snapshot_repository(index)
    queries = vectors(5, seed=31)
    filters = SearchFilters(market="US", in_stock=True)
    before = [(index.search(q, k=10), index.search(q, k=10, filters=filters)) for q in queries]

    info = index.snapshot(version)
    index.upsert(version, catalog(3, start=900), vectors(3, seed=32))  # later writes are not in it
    restored = index.restore(info.name, as_version=f"{version}-restored")

    assert (info.version, info.model_id, info.dim, info.count) == (version, MODEL_ID, DIM, 300)
    assert info.name in [s.name for s in index.list_snapshots()]
    assert index.count(restored) == 300 and index.count(version) == 303
    versions = {i.name: i for i in index.list_versions()}
    assert (versions[restored].model_id, versions[restored].dim, versions[restored].live) == (MODEL_ID, DIM, False)
    for query, (plain, filtered) in zip(queries, before, strict=True):
        again = index.search(query, k=10, version=restored)
        assert _ids(again) == _ids(plain) and [h.product for h in again] == [h.product for h in plain]
        np.testing.assert_allclose([h.score for h in again], [h.score for h in plain], atol=1e-6)
        assert _ids(index.search(query, k=10, filters=filters, version=restored)) == _ids(filtered)
    with pytest.raises(IndexBackendError, match="already exists"):
        index.restore(info.name, as_version=restored)


def test_a_second_elasticsearch_snapshot_of_the_same_name_is_the_first_one(live_catalog):
    """Elasticsearch refuses a second create of an existing snapshot name; the backend reads the
    snapshot's status first and returns the existing one (the embedded backend refuses the name)."""
    from looksync.index.elasticsearch import ElasticsearchIndex

    index, version, _, _ = live_catalog
    if not isinstance(index, ElasticsearchIndex):
        pytest.skip("Elasticsearch behaviour: the embedded backend refuses an existing snapshot name")
    _skip_without_snapshot_repository(index)
    first = index.snapshot(version, name=f"{index.alias}-twice")
    again = index.snapshot(version, name=first.name)
    assert again == first
    assert [s.name for s in index.list_snapshots()].count(first.name) == 1


def test_a_shadow_version_serves_nothing_until_promoted_in_one_swap(index):
    live = index.create_version(MODEL_ID, DIM)
    index.upsert(live, catalog(4), vectors(4, seed=1))
    index.set_live(live)
    candidate = index.create_version("model-new", DIM)
    index.upsert(candidate, catalog(6, model_id="model-new"), vectors(6, seed=2))
    assert index.shadow_version() is None
    with pytest.raises(IndexBackendError, match="live"):
        index.set_shadow(live)
    with pytest.raises(IndexBackendError):
        index.set_shadow("no-such-version")
    index.set_shadow(candidate)

    assert index.shadow_version() == candidate and index.live_version() == live
    assert index.count() == 4  # searches without a version read live only
    infos = {i.name: i for i in index.list_versions()}
    assert infos[candidate].shadow and not infos[candidate].live and not infos[live].shadow
    assert index.prune(keep=0) == []  # neither live nor shadow is pruned
    assert index.previous_version() is None  # a shadow is never a rollback target

    assert index.promote_shadow() == (live, candidate)
    assert index.live_version() == candidate and index.shadow_version() is None
    assert index.live_model_id() == "model-new" and index.count() == 6
    assert index.previous_version().name == live
    with pytest.raises(IndexBackendError, match="no shadow"):
        index.promote_shadow()
    assert index.rollback(allow_model_change=True) == (candidate, live)
    assert index.live_version() == live


def test_dropping_the_shadow_version_clears_the_mark(index):
    live = index.create_version(MODEL_ID, DIM)
    index.upsert(live, catalog(3), vectors(3))
    index.set_live(live)
    candidate = index.create_version(MODEL_ID, DIM)
    index.set_shadow(candidate)
    index.drop_version(candidate)
    assert index.shadow_version() is None and [i.name for i in index.list_versions()] == [live]
    other = index.create_version(MODEL_ID, DIM)
    index.set_shadow(other)
    index.set_shadow(None)
    assert index.shadow_version() is None and index.live_version() == live
