"""Local stores between the pipelines: the product catalog and the embeddings store.

- ``ProductStore``: the current standardised products, one row per product_id (Parquet).
- ``EmbeddingStore``: vectors keyed by (image hash, model id), Parquet part files per model. It is the
  source of truth for vectors: building a new index version never recomputes an embedding whose image
  and model are unchanged.

This is the single-machine layout; the object-store (S3) layout and partitioning come with the
pipelines issue. pyarrow is imported inside functions so DAG files importing this module stay light.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from looksync.schema import Product


def _safe_name(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)


def _write_table_atomically(table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class ProductStore:
    def __init__(self, root: Path):
        self.path = Path(root) / "catalog" / "products.parquet"

    def _read(self) -> dict[str, str]:
        import pyarrow.parquet as pq

        if not self.path.exists():
            return {}
        table = pq.read_table(self.path)
        return dict(zip(table.column("product_id").to_pylist(), table.column("record").to_pylist(), strict=True))

    def upsert(self, products: Iterable[Product]) -> int:
        import pyarrow as pa

        records = self._read()
        n = 0
        for product in products:
            records[product.product_id] = product.model_dump_json()
            n += 1
        ids = sorted(records)
        table = pa.table({"product_id": ids, "record": [records[i] for i in ids]})
        _write_table_atomically(table, self.path)
        return n

    def all(self) -> list[Product]:
        return [Product.model_validate_json(rec) for rec in self._read().values()]

    def get_many(self, product_ids: Sequence[str]) -> dict[str, Product]:
        records = self._read()
        return {pid: Product.model_validate_json(records[pid]) for pid in product_ids if pid in records}

    def count(self) -> int:
        return len(self._read())


class EmbeddingStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "embeddings"

    def _dir(self, model_id: str) -> Path:
        return self.root / _safe_name(model_id)

    def add(self, model_id: str, image_hashes: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Append one part file of vectors for ``model_id``; returns its path (None when empty)."""
        import pyarrow as pa

        if len(image_hashes) != len(vectors):
            raise ValueError(f"{len(image_hashes)} hashes but {len(vectors)} vectors")
        if not len(image_hashes):
            return None
        vectors = np.asarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        table = pa.table(
            {
                "image_hash": list(image_hashes),
                "model_id": [model_id] * len(image_hashes),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
            }
        )
        directory = self._dir(model_id)
        path = directory / f"part-{uuid.uuid4().hex}.parquet"
        _write_table_atomically(table, path)
        meta = directory / "_model.json"
        if not meta.exists():
            meta.write_text(json.dumps({"model_id": model_id, "dim": dim}))
        return path

    def load(self, model_id: str) -> dict[str, np.ndarray]:
        """All vectors of a model, keyed by image hash (later parts win)."""
        import pyarrow.parquet as pq

        directory = self._dir(model_id)
        out: dict[str, np.ndarray] = {}
        for part in sorted(directory.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns):
            table = pq.read_table(part)
            hashes = table.column("image_hash").to_pylist()
            flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            vectors = flat.astype(np.float32).reshape(len(hashes), -1)
            out.update(zip(hashes, vectors, strict=True))
        return out

    def lookup(self, model_id: str, image_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = set(image_hashes)
        return {h: v for h, v in self.load(model_id).items() if h in wanted}
