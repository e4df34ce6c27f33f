"""How a product and its vector are laid out in a LanceDB table, and back.

Every ``Product`` field is a column, holding what ``Product.model_dump(mode="json")`` gives (so
``updated_at`` is an ISO string), plus ``vector``, a fixed-size list of float32. Reading a row back gives
the same dict the model dumps, without the vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import TypeAdapter

from looksync.catalog.schema import Product

VECTOR_COLUMN = "vector"

_STRING_LIST = pa.list_(pa.string())
PRODUCT_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("product_id", pa.string()),
    ("vendor", pa.string()),
    ("vendor_sku", pa.string()),
    ("market", pa.string()),
    ("title", pa.string()),
    ("description", pa.string()),
    ("brand", pa.string()),
    ("category", pa.string()),
    ("category_source", pa.string()),
    ("layer", pa.string()),
    ("gender", pa.string()),
    ("colours", _STRING_LIST),
    ("pattern", pa.string()),
    ("material", pa.string()),
    ("sizes", _STRING_LIST),
    ("price", pa.float64()),
    ("currency", pa.string()),
    ("in_stock", pa.bool_()),
    ("image_urls", _STRING_LIST),
    ("product_url", pa.string()),
    ("updated_at", pa.string()),
    ("image_hash", pa.string()),
    ("model_id", pa.string()),
)
PRODUCT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in PRODUCT_FIELDS)

# Columns a metadata-only update rewrites: not the join key, and not what describes the vector.
_METADATA_FIELDS = tuple((n, t) for n, t in PRODUCT_FIELDS if n not in ("model_id",))


def table_schema(dim: int) -> pa.Schema:
    return pa.schema([*PRODUCT_FIELDS, (VECTOR_COLUMN, pa.list_(pa.float32(), dim))])


_DATETIMES = TypeAdapter(list[datetime])


def _json_values(name: str, values: list[Any]) -> list[Any]:
    """A column's values as ``Product.model_dump(mode="json")`` writes them: every field is already JSON
    but ``updated_at``, whose datetimes get pydantic's own ISO form (one call for the column)."""
    if name != "updated_at":
        return values
    if all(isinstance(v, datetime) for v in values):
        return _DATETIMES.dump_python(values, mode="json")
    return [_DATETIMES.dump_python([v], mode="json")[0] if isinstance(v, datetime) else v for v in values]


def _columns(products: Sequence[Product], fields: Sequence[tuple[str, pa.DataType]], **fixed: Any) -> dict:
    # column by column from the field values (a pydantic model keeps them in its __dict__): a model_dump,
    # or even a getattr, per product and field cost more than the whole LanceDB write
    columns = {}
    values_of = [p.__dict__ for p in products]
    for name, dtype in fields:
        values = [fixed[name]] * len(products) if name in fixed else [d[name] for d in values_of]
        columns[name] = pa.array(_json_values(name, values), type=dtype)
    return columns


def products_table(products: Sequence[Product], vectors: np.ndarray, model_id: str, dim: int) -> pa.Table:
    """Rows for an upsert; ``model_id`` is the version's (the model that made every vector here)."""
    columns = _columns(products, PRODUCT_FIELDS, model_id=model_id)
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    columns[VECTOR_COLUMN] = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.table(columns, schema=table_schema(dim))


def metadata_table(products: Sequence[Product]) -> pa.Table:
    """Rows for a metadata-only merge: every stored field except the vector and its model id."""
    return pa.table(_columns(products, _METADATA_FIELDS), schema=pa.schema(list(_METADATA_FIELDS)))


def row_to_product(row: dict[str, Any]) -> dict[str, Any]:
    """The stored product fields of a result row (drops the vector and LanceDB's extra columns)."""
    return {name: row[name] for name in PRODUCT_COLUMNS}
