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


# Columns of the product store besides the record: what change detection and grouping read without
# decoding a record. ``row_key``: the key of the feed row the record was made from
# (``looksync.catalog.vendors.fingerprint``), None when it was written any other way; ``offer_key``: that
# row's offer key, likewise.
_ROW_KEY_COLUMNS = ("row_key", "offer_key")
_KEY_COLUMNS = ("vendor", "vendor_sku", "category_source", "image_hash", "model_id", *_ROW_KEY_COLUMNS)
_STORE_COLUMNS = ("product_id", "record", "group_id", *_KEY_COLUMNS)


class ProductStore:
    """One Parquet file: ``product_id``, ``record`` (the product's JSON), ``group_id`` and the key columns
    (``_KEY_COLUMNS``). Every write replaces the file (atomically, under a lock); reads take only the
    columns and rows they need, so change detection decodes no record it does not compare."""

    def __init__(self, root: Path):
        self.path = Path(root) / "catalog" / "products.parquet"

    def _table(self, columns: Sequence[str] | None = None):
        """The store as a pyarrow table (None when there is none yet). A file written before the key
        columns existed gets them from its records, once, here (the next write keeps them)."""
        import pyarrow.parquet as pq

        if not self.path.exists():
            return None
        present = set(pq.read_schema(self.path).names)
        if present.issuperset(_STORE_COLUMNS):
            wanted = list(columns) if columns else list(_STORE_COLUMNS)
            return pq.read_table(self.path, columns=wanted).select(wanted)
        table = _upgraded(pq.read_table(self.path), present)
        return table.select(list(columns)) if columns else table

    def _write(self, table) -> None:
        _write_table_atomically(table.select(list(_STORE_COLUMNS)).sort_by("product_id"), self.path)

    def upsert(
        self, products: Iterable[Product], row_keys: dict[str, str] | None = None, offer_keys: dict[str, str] | None = None
    ) -> int:
        """Write ``products`` (their group ids stay). ``row_keys``: product id -> the key of the feed row
        it was made from, for written products and for stored ones a feed confirmed unchanged; a
        written product without one has none from now on. ``offer_keys``: that row's offer key, likewise."""
        import pyarrow as pa
        import pyarrow.compute as pc

        latest = {p.product_id: p for p in products}  # the last of one product wins
        keys = {"row_key": row_keys or {}, "offer_key": offer_keys or {}}
        if not latest and not any(keys.values()):
            return 0
        with _locked(self.path):
            table = self._table()
            if table is None:
                table = _empty_table()
            ids = pa.array(list(latest), type=pa.string())
            confirmed = {column: {pid: k for pid, k in given.items() if pid not in latest} for column, given in keys.items()}
            if len(ids) and table.num_rows and pc.index_in(ids, value_set=table.column("product_id")).null_count == 0:
                # every product is stored already (a reprice, a restock): its row is replaced where it is, so
                # nothing moves and the file needs no sorting
                table = _replaced(_with_row_keys(table, confirmed) or table, latest, keys)
                _write_table_atomically(table.select(list(_STORE_COLUMNS)), self.path)
                return len(latest)
            stored_groups: dict[str, str | None] = {}
            if len(ids) and table.num_rows:
                mine = pc.is_in(table.column("product_id"), value_set=ids)
                kept = table.filter(mine).select(["product_id", "group_id"])
                stored_groups = dict(zip(kept.column(0).to_pylist(), kept.column(1).to_pylist(), strict=True))
                table = table.filter(pc.invert(mine))
            changed_keys = _with_row_keys(table, confirmed) if table.num_rows else None
            if changed_keys is not None:
                table = changed_keys
            elif not latest:
                return 0  # nothing to write and no row key to record
            written = list(latest.values())
            new = pa.table(
                {
                    "product_id": [p.product_id for p in written],
                    "group_id": pa.array([stored_groups.get(p.product_id) for p in written], type=pa.string()),
                    **_product_columns(written, keys),
                },
                schema=_store_schema(),
            )
            self._write(pa.concat_tables([table.cast(_store_schema()), new]))
        return len(written)

    def delete(self, product_ids: Iterable[str]) -> int:
        """Remove products (and their group ids); returns how many existed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        ids = pa.array(list(set(product_ids)), type=pa.string())
        if not len(ids):
            return 0
        with _locked(self.path):
            table = self._table()
            if table is None:
                return 0
            gone = pc.is_in(table.column("product_id"), value_set=ids)
            n = pc.sum(gone).as_py() or 0
            if n:
                self._write(table.filter(pc.invert(gone)))
        return n

    def set_groups(self, groups: dict[str, str | None]) -> int:
        """Record near-duplicate group ids (product id -> group id, None to clear); returns rows changed."""
        import pyarrow as pa

        with _locked(self.path):
            table = self._table()
            if table is None:
                return 0
            current = table.column("group_id").to_pylist()
            changed = 0
            for i, pid in enumerate(table.column("product_id").to_pylist()):
                if pid in groups and current[i] != groups[pid]:
                    current[i] = groups[pid]
                    changed += 1
            if changed:
                column = table.schema.get_field_index("group_id")
                self._write(table.set_column(column, "group_id", pa.array(current, type=pa.string())))
        return changed

    def groups(self) -> dict[str, str | None]:
        """Product id -> near-duplicate group id (None when the product has no duplicate)."""
        table = self._table(["product_id", "group_id"])
        if table is None:
            return {}
        return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))

    def _decode(self, table) -> list[Product]:
        return [Product.model_validate_json(rec) for rec in table.column("record").to_pylist()] if table is not None else []

    def all(self) -> list[Product]:
        return self._decode(self._table(["product_id", "record"]))

    def by_vendor(self, vendor: str) -> dict[str, Product]:
        table = self.vendor_rows(vendor, ["product_id", "record"])
        return {p.product_id: p for p in self._decode(table)}

    def vendor_rows(self, vendor: str, columns: Sequence[str]):
        """The vendor's rows of the store, ``columns`` only, as a pyarrow table (None: no store yet)."""
        import pyarrow.compute as pc

        table = self._table(list(dict.fromkeys(["vendor", *columns])))
        if table is None:
            return None
        return table.filter(pc.equal(table.column("vendor"), vendor)).select(list(columns))

    def get_many(self, product_ids: Sequence[str]) -> dict[str, Product]:
        table = self._rows_of(product_ids)
        return {p.product_id: p for p in self._decode(table)} if table is not None else {}

    def records(self, product_ids: Sequence[str]) -> dict[str, dict]:
        """The stored records of these products as JSON objects (product id -> record), not validated: for
        a caller that validates what it makes of them (``looksync.catalog.vendors.mapping.with_offer``)."""
        table = self._rows_of(product_ids)
        if table is None:
            return {}
        return dict(zip(table.column(0).to_pylist(), map(json.loads, table.column(1).to_pylist()), strict=True))

    def _rows_of(self, product_ids: Sequence[str]):
        """Product id and record of these products (those stored) as a pyarrow table, or None."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._table(["product_id", "record"]) if len(product_ids) else None
        if table is None:
            return None
        return table.filter(pc.is_in(table.column("product_id"), value_set=pa.array(list(product_ids), type=pa.string())))

    def count(self) -> int:
        import pyarrow.parquet as pq

        return pq.read_metadata(self.path).num_rows if self.path.exists() else 0


def _store_schema():
    import pyarrow as pa

    return pa.schema([(name, pa.string()) for name in _STORE_COLUMNS])


def _empty_table():
    return _store_schema().empty_table()


def _upgraded(table, present: set[str]):
    """A store table of an older layout with every column of this one (key columns from the records)."""
    import pyarrow as pa

    records = table.column("record").to_pylist()
    derived = [name for name in _KEY_COLUMNS if name not in present and name not in _ROW_KEY_COLUMNS]
    decoded = [json.loads(r) for r in records] if derived else []
    columns = {
        "product_id": table.column("product_id").to_pylist(),
        "record": records,
        "group_id": table.column("group_id").to_pylist() if "group_id" in present else [None] * len(records),
    }
    for name in _KEY_COLUMNS:
        if name in present:
            columns[name] = table.column(name).to_pylist()
        else:
            columns[name] = [d.get(name) for d in decoded] if name not in _ROW_KEY_COLUMNS else [None] * len(records)
    return pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()}, schema=_store_schema())


def _product_columns(products: list[Product], keys: dict[str, dict[str, str]]) -> dict:
    """The store's columns of these products but their id and group id (``keys``: column -> product id ->
    row or offer key; a product without one gets none)."""
    import pyarrow as pa

    columns = {"record": [p.model_dump_json() for p in products]}
    for name in ("vendor", "vendor_sku", "category_source", "image_hash", "model_id"):
        columns[name] = [getattr(p, name) for p in products]
    for column, given in keys.items():
        columns[column] = [given.get(p.product_id) for p in products]
    return {name: pa.array(values, type=pa.string()) for name, values in columns.items()}


def _replaced(table, latest: dict[str, Product], keys: dict[str, dict[str, str]]):
    """``table`` with the rows of ``latest`` (product id -> product, every one stored) replaced in place:
    the same rows in the same order, their group ids kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = table.column("product_id").combine_chunks()
    mask = pc.is_in(ids, value_set=pa.array(list(latest), type=pa.string()))
    in_order = [latest[pid] for pid in ids.filter(mask).to_pylist()]
    for name, values in _product_columns(in_order, keys).items():
        column = pc.replace_with_mask(table.column(name).combine_chunks(), mask, values)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _with_row_keys(table, keys: dict[str, dict[str, str]]):
    """``table`` with these keys recorded (column -> product id -> key), or None when it holds them already."""
    import pyarrow as pa

    ids: list[str] | None = None
    changed = False
    for column, given in keys.items():
        if not given:
            continue
        ids = ids if ids is not None else table.column("product_id").to_pylist()
        current = table.column(column).to_pylist()
        touched = False
        for i, pid in enumerate(ids):
            key = given.get(pid)
            if key is not None and current[i] != key:
                current[i], touched = key, True
        if touched:
            table = table.set_column(table.schema.get_field_index(column), column, pa.array(current, type=pa.string()))
            changed = True
    return table if changed else None


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

    def _parts(self, model_id: str) -> list:
        """The model's part files in write order (paths, or buffers of object-store parts)."""
        import pyarrow as pa

        if self.objects is not None:
            return [pa.BufferReader(p) if isinstance(p, bytes) else p for p in self._object_parts(model_id)]
        directory = self._dir(model_id)
        return sorted(directory.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)

    def load(self, model_id: str) -> dict[str, np.ndarray]:
        """All vectors of a model, keyed by image hash (later parts win)."""
        return self._vectors(model_id, None)

    def lookup(self, model_id: str, image_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The vectors of these image hashes (those the store has). Each part is filtered in Arrow first,
        so only the wanted rows become Python objects."""
        wanted = {h for h in image_hashes if h is not None}
        return self._vectors(model_id, wanted) if wanted else {}

    def hashes(self, model_id: str) -> set[str]:
        """The image hashes that have a vector of ``model_id`` (reads no vector)."""
        import pyarrow.parquet as pq

        out: set[str] = set()
        for part in self._parts(model_id):
            out.update(pq.read_table(part, columns=["image_hash"]).column(0).to_pylist())
        return out

    def _vectors(self, model_id: str, wanted: set[str] | None) -> dict[str, np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        value_set = pa.array(sorted(wanted), type=pa.string()) if wanted is not None else None
        out: dict[str, np.ndarray] = {}
        for part in self._parts(model_id):
            table = pq.read_table(part, columns=["image_hash", "vector"])
            if value_set is not None:
                table = table.filter(pc.is_in(table.column("image_hash"), value_set=value_set))
                if not table.num_rows:
                    continue
            hashes = table.column("image_hash").to_pylist()
            flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            vectors = flat.astype(np.float32).reshape(len(hashes), -1)
            out.update(zip(hashes, vectors, strict=True))
        return out
