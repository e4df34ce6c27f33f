"""The embedded index's bulk write path: Arrow columns as the product dumps them, vector checks in one
pass with the same verdicts as one by one, and appends and merges alike keeping one row per product."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from looksync.index.embedded import EmbeddedIndex
from looksync.index.lance_schema import PRODUCT_COLUMNS, products_table
from looksync.index.vectors import vector_problem, vector_problems
from tests.factories import make_product, unit_vectors


def test_arrow_columns_are_what_the_product_dumps():
    products = [
        make_product(vendor_sku="NW-1", updated_at=datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC), pattern=None),
        make_product(vendor_sku="NW-2", market="JP", material="Wool", category_source="clip"),
    ]
    rows = products_table(products, unit_vectors(2, 8), "m", 8).to_pylist()
    for product, row in zip(products, rows, strict=True):
        assert {c: row[c] for c in PRODUCT_COLUMNS} == product.model_dump(mode="json") | {"model_id": "m"}


def test_vector_checks_in_one_pass_agree_with_one_by_one():
    v = unit_vectors(6, 8).astype(np.float64)
    v[1] *= 2.0
    v[2, 3] = np.nan
    v[4, 0] = np.inf
    assert vector_problems(v, 8) == [vector_problem(row, 8) for row in v]
    assert vector_problems(v, 8)[0] is None and all(vector_problems(v, 8)[i] for i in (1, 2, 4))
    assert vector_problems([v[0], v[0][:3]], 8) == [None, vector_problem(v[0][:3], 8)]


def test_appends_and_merges_keep_one_row_per_product_and_moves_leave_no_copy(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    version = index.create_version("m", 8)
    products = [make_product(vendor_sku=f"NW-{i}", model_id="m") for i in range(6)]
    vectors = unit_vectors(6, 8)
    assert index.upsert(version, products[:4], vectors[:4]).written == 4  # a new partition: appended
    assert index.upsert(version, products[2:], vectors[2:]).written == 4  # two stored, two new: merged
    assert index.count(version) == 6
    moved = products[0].model_copy(update={"market": "JP", "currency": "JPY", "price": 2000.0})
    assert index.upsert(version, [moved], vectors[:1]).written == 1
    assert index.count(version) == 6 and index.get(moved.product_id, version)["market"] == "JP"
    found = index.vectors([p.product_id for p in products], version)
    assert set(found) == {p.product_id for p in products} and np.allclose(found[products[5].product_id], vectors[5])
