"""Local stores between the pipelines: the product catalog and the embeddings store.

- ``ProductStore``: the current standardised products, one row per product_id (Parquet).
- ``EmbeddingStore``: vectors keyed by (image hash, model id), Parquet part files per model. It is the
  source of truth for vectors: building a new index version never recomputes an embedding whose image
  and model are unchanged.

Product-store writes are read-modify-write of one Parquet file, serialised by a file lock so parallel
DAG tasks on one machine never lose each other's rows. Near-duplicate group ids live beside the
product records (column ``group_id``), not inside ``Product``, so the index schema is unaffected.
pyarrow is imported inside functions so DAG files importing this module stay light.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from looksync.catalog.schema import Product


def _safe_name(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)


def _write_table_atomically(table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<path>.lock`` for a read-modify-write of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ProductStore:
    def __init__(self, root: Path):
        self.path = Path(root) / "catalog" / "products.parquet"

    def _read_all(self) -> tuple[dict[str, str], dict[str, str | None]]:
        import pyarrow.parquet as pq

        if not self.path.exists():
            return {}, {}
        table = pq.read_table(self.path)
        ids = table.column("product_id").to_pylist()
        records = dict(zip(ids, table.column("record").to_pylist(), strict=True))
        groups = table.column("group_id").to_pylist() if "group_id" in table.column_names else [None] * len(ids)
        return records, dict(zip(ids, groups, strict=True))

    def _read(self) -> dict[str, str]:
        return self._read_all()[0]

    def _write(self, records: dict[str, str], groups: dict[str, str | None]) -> None:
        import pyarrow as pa

        ids = sorted(records)
        table = pa.table(
            {
                "product_id": ids,
                "record": [records[i] for i in ids],
                "group_id": pa.array([groups.get(i) for i in ids], type=pa.string()),
            }
        )
        _write_table_atomically(table, self.path)

    def upsert(self, products: Iterable[Product]) -> int:
        with _locked(self.path):
            records, groups = self._read_all()
            n = 0
            for product in products:
                records[product.product_id] = product.model_dump_json()
                n += 1
            self._write(records, groups)
        return n

    def delete(self, product_ids: Iterable[str]) -> int:
        """Remove products (and their group ids); returns how many existed."""
        with _locked(self.path):
            records, groups = self._read_all()
            gone = [pid for pid in set(product_ids) if pid in records]
            for pid in gone:
                del records[pid]
                groups.pop(pid, None)
            if gone:
                self._write(records, groups)
        return len(gone)

    def set_groups(self, groups: dict[str, str | None]) -> int:
        """Record near-duplicate group ids (product id -> group id, None to clear); returns rows changed."""
        with _locked(self.path):
            records, current = self._read_all()
            changed = 0
            for pid, gid in groups.items():
                if pid in records and current.get(pid) != gid:
                    current[pid] = gid
                    changed += 1
            if changed:
                self._write(records, current)
        return changed

    def groups(self) -> dict[str, str | None]:
        """Product id -> near-duplicate group id (None when the product has no duplicate)."""
        return self._read_all()[1]

    def all(self) -> list[Product]:
        return [Product.model_validate_json(rec) for rec in self._read().values()]

    def by_vendor(self, vendor: str) -> dict[str, Product]:
        products = (Product.model_validate_json(rec) for rec in self._read().values())
        return {p.product_id: p for p in products if p.vendor == vendor}

    def get_many(self, product_ids: Sequence[str]) -> dict[str, Product]:
        records = self._read()
        return {pid: Product.model_validate_json(records[pid]) for pid in product_ids if pid in records}

    def count(self) -> int:
        return len(self._read())


class EmbeddingStore:
    """Vectors keyed by (image hash, model id): Parquet part files under ``<model>/``, each written once
    and never changed (a re-embedded image gets a newer part; later parts win).

    Two homes: a local directory (``EmbeddingStore(data_dir)`` -> ``<data_dir>/embeddings``) or any
    ``looksync.catalog.object_store`` object store (``EmbeddingStore(objects=store)``; ``from_settings`` picks the S3
    store ``s3://<bucket>/<prefix>/embeddings`` when ``LOOKSYNC_S3_BUCKET`` is set). Object-store part
    names start with a nanosecond timestamp, so name order is write order; parts read from an object
    store are cached under ``cache_dir`` (they are immutable), so a lookup re-lists but does not
    re-download."""

    def __init__(self, root: Path | None = None, *, objects=None, cache_dir: Path | None = None):
        if (root is None) == (objects is None):
            raise ValueError("give either a local root or an object store")
        self.objects = objects
        self.root = Path(root) / "embeddings" if root is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    @classmethod
    def from_settings(cls, settings) -> EmbeddingStore:
        """The configured embeddings store: S3 when ``s3_bucket`` is set, else ``<data_dir>/embeddings``."""
        if settings.s3_bucket:
            from looksync.catalog.object_store import default_store

            return cls(objects=default_store(settings, "embeddings"), cache_dir=settings.data_dir / "cache" / "embeddings")
        return cls(settings.data_dir)

    @property
    def uri(self) -> str:
        return self.objects.uri if self.objects is not None else self.root.as_uri()

    def _dir(self, model_id: str) -> Path:
        return self.root / _safe_name(model_id)

    def add(self, model_id: str, image_hashes: Sequence[str], vectors: np.ndarray) -> Path | str | None:
        """Append one part file of vectors for ``model_id``; returns its path or URI (None when empty)."""
        import pyarrow as pa

        if len(image_hashes) != len(vectors):
            raise ValueError(f"{len(image_hashes)} hashes but {len(vectors)} vectors")
        if not len(image_hashes):
            return None
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
        dim = vectors.shape[1]
        table = pa.table(
            {
                "image_hash": list(image_hashes),
                "model_id": [model_id] * len(image_hashes),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
            }
        )
        if self.objects is not None:
            return self._add_object(model_id, table, dim)
        directory = self._dir(model_id)
        path = directory / f"part-{uuid.uuid4().hex}.parquet"
        _write_table_atomically(table, path)
        meta = directory / "_model.json"
        if not meta.exists():
            meta.write_text(json.dumps({"model_id": model_id, "dim": dim}))
        return path

    def _add_object(self, model_id: str, table, dim: int) -> str:
        import time

        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        name = _safe_name(model_id)
        uri = self.objects.put_bytes(f"{name}/part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet", sink.getvalue().to_pybytes())
        if not self.objects.exists(f"{name}/_model.json"):
            self.objects.put_bytes(f"{name}/_model.json", json.dumps({"model_id": model_id, "dim": dim}).encode())
        return uri

    def _object_parts(self, model_id: str) -> Iterator[bytes | Path]:
        name = _safe_name(model_id)
        keys = sorted(k for k in self.objects.list(name + "/") if k.rsplit("/", 1)[-1].startswith("part-") and k.endswith(".parquet"))
        for key in keys:
            if self.cache_dir is None:
                yield self.objects.get_bytes(key)
                continue
            cached = self.cache_dir / _safe_name(self.objects.uri) / key
            if not cached.exists():
                tmp = cached.with_name(f"{cached.name}.{uuid.uuid4().hex}.tmp")
                self.objects.get_file(key, tmp)  # a StorageError names the object
                os.replace(tmp, cached)
            yield cached

    def load(self, model_id: str) -> dict[str, np.ndarray]:
        """All vectors of a model, keyed by image hash (later parts win)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.objects is not None:
            parts = [pa.BufferReader(p) if isinstance(p, bytes) else p for p in self._object_parts(model_id)]
        else:
            directory = self._dir(model_id)
            parts = sorted(directory.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        out: dict[str, np.ndarray] = {}
        for part in parts:
            table = pq.read_table(part)
            hashes = table.column("image_hash").to_pylist()
            flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            vectors = flat.astype(np.float32).reshape(len(hashes), -1)
            out.update(zip(hashes, vectors, strict=True))
        return out

    def lookup(self, model_id: str, image_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = set(image_hashes)
        return {h: v for h, v in self.load(model_id).items() if h in wanted}
