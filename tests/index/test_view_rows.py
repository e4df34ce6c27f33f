"""A search view's product rows (``view_rows``): a hit's dict is exactly the stored row, whichever way
each column is kept."""

from __future__ import annotations

import random

import pyarrow as pa

from looksync.index.view_rows import ProductRows


def _table(n: int) -> pa.Table:
    rng = random.Random(5)
    return pa.table(
        {
            "product_id": [f"p{i}" for i in range(n)],
            "vendor": [rng.choice(["acme", "northwind", None]) for _ in range(n)],  # few values, with nulls
            "title": [f"Item {i} {rng.random()}" for i in range(n)],  # all distinct
            "pattern": pa.nulls(n, pa.string()),  # one value: null
            "colours": [rng.sample(["red", "navy", "black"], rng.randint(0, 2)) or None for _ in range(n)],
            "price": [None if i % 7 == 0 else float(i) / 3 for i in range(n)],
            "in_stock": [None if i % 11 == 0 else i % 2 == 0 for i in range(n)],
            "brand": [f"Brand {i % 40}" for i in range(n)],
        }
    )


def test_every_row_comes_back_as_arrow_gives_it():
    table = _table(3000)
    rows = ProductRows(table.combine_chunks(), table.column("product_id").to_pylist())
    assert {"vendor", "pattern", "brand"} <= set(rows.coded) and "title" not in rows.coded  # both paths used
    order = random.Random(6).sample(range(3000), 300) + [0, 0, 2999]
    assert rows.dicts(order) == table.take(pa.array(order)).to_pylist()
    assert [list(d) for d in rows.dicts([5])] == [table.column_names]  # the fields in the stored order
    assert rows.dicts([]) == []


def test_a_small_or_empty_view():
    table = _table(3)
    assert ProductRows(table, table.column("product_id").to_pylist()).dicts([2, 1]) == table.take([2, 1]).to_pylist()
    empty = table.slice(0, 0)
    assert ProductRows(empty, []).dicts([]) == []
