"""The product fields of a search view's rows, and a search's hits as dicts of them.

A search returns ~10 hits, each carrying every stored product field. Taking 10 rows out of ~20 Arrow
columns and converting them costs a few microseconds per column per call (~130 us a search), more than
the rest of the search's Python. So the view keeps each string column with few distinct values (vendor,
market, layer, category, gender, brand, currency, model id, ...) as integer codes into a Python list of
its values, which a hit reads with plain indexing, and leaves only the columns with many distinct values
(titles, URLs, SKUs, lists) in Arrow, taken in one call. The codes take less memory than the Arrow
strings they replace. A hit's dict is what ``pyarrow``'s ``to_pylist`` gives for that row.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SAMPLE = 1024  # rows looked at to tell a column of many distinct values without encoding all of it


def _few_values(column: pa.Array, rows: int) -> bool:
    """Whether coding ``column`` pays: few distinct values for its size (judged on a sample first)."""
    limit = max(256, rows // 16)
    sample = column.slice(0, _SAMPLE)
    if pc.count_distinct(sample, mode="all").as_py() > max(64, len(sample) // 4):
        return False
    return pc.count_distinct(column, mode="all").as_py() <= limit


class ProductRows:
    """The product columns of one view (``columns``: one chunk per column; ``ids``: the product ids in
    row order, which the view already holds as a list)."""

    def __init__(self, columns: pa.Table, ids: list[str]):
        self.names = tuple(columns.column_names)
        self.n = columns.num_rows
        self.ids = ids
        self.coded: dict[str, tuple[np.ndarray, list[Any]]] = {}
        kept = []
        for name in self.names:
            column = columns.column(name).combine_chunks()
            if name == "product_id":
                continue  # read from ``ids``
            if self.n and pa.types.is_string(column.type) and _few_values(column, self.n):
                encoded = pc.dictionary_encode(column)
                codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
                self.coded[name] = (codes, [*encoded.dictionary.to_pylist(), None])  # code -1 (null) -> None
            else:
                kept.append(name)
        self.kept = columns.select(kept).combine_chunks().to_batches()[0] if self.n and kept else None

    def dicts(self, rows: list[int]) -> list[dict[str, Any]]:
        """The rows' products, in the order of ``rows``."""
        if not rows or self.n == 0:
            return []
        values: dict[str, list[Any]] = {"product_id": [self.ids[r] for r in rows]}
        if self.kept is not None:
            taken = self.kept.take(pa.array(rows, pa.int64()))
            for name, column in zip(self.kept.schema.names, taken.columns, strict=True):
                values[name] = column.to_pylist()
        positions = np.asarray(rows, dtype=np.int64)
        for name, (codes, vocabulary) in self.coded.items():
            values[name] = [vocabulary[c] for c in codes[positions].tolist()]
        ordered = [values[name] for name in self.names]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*ordered, strict=True)]

    @property
    def nbytes(self) -> int:
        total = 0 if self.kept is None else self.kept.nbytes
        for codes, vocabulary in self.coded.values():
            total += codes.nbytes + 8 * len(vocabulary) + sum(sys.getsizeof(v) for v in vocabulary if v is not None)
        return total
