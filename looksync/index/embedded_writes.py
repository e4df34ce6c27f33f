"""Writes to the embedded index: upsert (rows with vectors), metadata-only updates, deletes, and the
end of a bulk load. A product lives in the partition of its (layer, market), so a write whose layer or
market changed moves the row, vector included. Every write of vectors goes through the partition's
write journal (``write_journal``) so that a search view knows which rows its FAISS graph lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from looksync.catalog.schema import Product
from looksync.index.base import BulkResult, IndexBackendError
from looksync.index.embedded_store import ID_CHUNK, PartitionStore
from looksync.index.lance_filters import sql_in
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRecord
from looksync.index.lance_schema import metadata_table, products_table
from looksync.index.vectors import vector_problems
from looksync.index.write_journal import WriteJournal


class WritesMixin(PartitionStore):
    """``upsert``, ``update_metadata``, ``delete`` and ``end_bulk_load`` of ``EmbeddedIndex``; a moved
    product's vector is read with ``vectors`` (``embedded_search``), and a bulk load ends with
    ``build_ann_index`` (``embedded_graphs``)."""

    norm_tolerance: float

    def upsert(self, version: str, products: Sequence[Product], vectors: np.ndarray) -> BulkResult:
        record = self._record(version)
        if len(vectors) != len(products):
            raise IndexBackendError(f"{version}: {len(products)} products but {len(vectors)} vectors")
        result = BulkResult()
        problems = vector_problems(vectors, record.dim, self.norm_tolerance)  # one pass over the matrix
        rows: dict[str, tuple[Product, int, Key]] = {}  # product id -> (product, its row in ``vectors``, partition)
        for i, (product, reason) in enumerate(zip(products, problems, strict=True)):
            fields = product.__dict__  # the field values, without an attribute lookup each (100k products a batch)
            model_id, key = fields["model_id"], (fields["layer"], fields["market"])
            if reason is None and model_id and model_id != record.model_id:
                reason = f"vector of model {model_id!r}; version {version} holds {record.model_id!r}"
            if reason is None and not (key[0] and key[1]):
                reason = f"no layer/market to partition by (layer {key[0]!r}, market {key[1]!r})"
            if reason is not None:
                result.failures.append((product.product_id, reason))
                continue
            rows.pop(product.product_id, None)  # a product twice in one batch: the last row wins
            rows[product.product_id] = (product, i, key)
        if not rows:
            return result
        where_now = self._stored_in(record, list(rows))
        groups: dict[Key, list[tuple[Product, int]]] = {}
        for product, i, key in rows.values():
            groups.setdefault(key, []).append((product, i))
        try:
            for key, items in sorted(groups.items()):
                matrix = _rows_of(vectors, [i for _, i in items])
                data = products_table([p for p, _ in items], matrix, record.model_id, record.dim)
                result.written += self._write_vectors(record, key, data, f"upsert {len(items)} products into")
            # products whose layer or market changed: the new row is in; drop the old one
            moved = [(pid, old) for pid, old in where_now if old != rows[pid][2]]
            self._delete_from(record, moved)
        finally:
            self.views.touch(record.name)
        return result

    def update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        try:
            return self._update_metadata(version, products)
        finally:
            self.views.touch(version)  # this handle's next search sees its own write

    def _update_metadata(self, version: str, products: Sequence[Product]) -> BulkResult:
        record = self._record(version)
        latest = {p.product_id: p for p in products}  # the last row of a product wins
        stored = self._locate(record.name, list(latest), ["product_id", "image_hash"])
        result = BulkResult()
        staying: dict[Key, list[Product]] = {}
        moving: list[tuple[Key, Product]] = []
        for product_id, product in latest.items():
            old_key, old = stored.get(product_id, (None, None))
            if old is None:
                reason = f"not in version {version}"
            elif product.model_id and product.model_id != record.model_id:
                reason = f"model {product.model_id!r} differs from the version's {record.model_id!r}"
            elif product.image_hash and old["image_hash"] and product.image_hash != old["image_hash"]:
                reason = (
                    f"image changed ({old['image_hash'][:12]} -> {product.image_hash[:12]}): "
                    "re-embed it and upsert instead"
                )
            elif not (product.layer and product.market):
                reason = f"no layer/market to partition by (layer {product.layer!r}, market {product.market!r})"
            else:
                # the vector stays, so the hash of the image it came from stays too
                kept = product.model_copy(update={"image_hash": product.image_hash or old["image_hash"]})
                if (kept.layer, kept.market) == old_key:
                    staying.setdefault(old_key, []).append(kept)
                else:
                    moving.append((old_key, kept))
                continue
            result.failures.append((product_id, reason))
        for key, group in sorted(staying.items()):
            table = self._partition(record, key)
            with self._backend_errors(f"update metadata of {len(group)} products in {version} partition {key}"):
                merged = table.merge_insert("product_id").when_matched_update_all().execute(metadata_table(group))
            result.written += merged.num_updated_rows
        if moving:
            # a changed layer or market moves the product, with its stored vector, to its new partition
            old_vectors = self.vectors([p.product_id for _, p in moving], version=record.name)
            moved = [(old_key, p) for old_key, p in moving if p.product_id in old_vectors]
            by_key: dict[Key, list[Product]] = {}
            for _, p in moved:
                by_key.setdefault((p.layer, p.market), []).append(p)
            for key, group in sorted(by_key.items()):
                matrix = np.stack([old_vectors[p.product_id] for p in group])
                data = products_table(group, matrix, record.model_id, record.dim)
                result.written += self._write_vectors(record, key, data, f"move {len(group)} products into")
            self._delete_from(record, [(p.product_id, old_key) for old_key, p in moved])
            for _, p in moving:
                if p.product_id not in old_vectors:
                    result.failures.append((p.product_id, f"deleted from version {version} during the update"))
        return result

    def delete(self, version: str, product_ids: Sequence[str]) -> int:
        try:
            return self._delete(version, product_ids)
        finally:
            self.views.touch(version)

    def _delete(self, version: str, product_ids: Sequence[str]) -> int:
        record = self._record(version)
        ids = list(dict.fromkeys(product_ids))
        deleted = 0
        if not ids:
            return 0
        for key in self._partition_keys(record.name):
            table = self._partition(record, key)
            with self._backend_errors(f"delete {len(ids)} products from {version} partition {key}"):
                for start in range(0, len(ids), ID_CHUNK):
                    deleted += table.delete(sql_in("product_id", ids[start : start + ID_CHUNK])).num_deleted_rows
        return deleted

    def end_bulk_load(self, version: str) -> None:
        """A loaded version gets its ANN and filter indexes (on the partitions large enough)."""
        self.build_ann_index(version)

    def _stored_in(self, record: VersionRecord, product_ids: list[str]) -> list[tuple[str, Key]]:
        """(product id, partition) of every stored row of these products: one scan of each partition's
        id column (a product moving partition may briefly be in two)."""
        wanted = pa.array(product_ids, type=pa.string())
        found: list[tuple[str, Key]] = []
        for key in self._partition_keys(record.name):
            ids = self._ids_of(self._partition(record, key), wanted)
            found.extend((pid, key) for pid in ids)
        return found

    def _delete_from(self, record: VersionRecord, where: list[tuple[str, Key]]) -> None:
        by_key: dict[Key, list[str]] = {}
        for pid, key in where:
            by_key.setdefault(key, []).append(pid)
        for key, ids in sorted(by_key.items()):
            table = self._partition(record, key)
            with self._backend_errors(f"delete {len(ids)} moved products from {record.name} partition {key}"):
                for start in range(0, len(ids), ID_CHUNK):
                    table.delete(sql_in("product_id", ids[start : start + ID_CHUNK]))

    def _write_vectors(self, record: VersionRecord, key: Key, data: Any, what: str) -> int:
        """Merge rows carrying vectors into a partition: their ids go to the partition's write journal
        first, then LanceDB commits, under the journal's lock (see ``write_journal``)."""
        table = self._partition(record, key, create=True)
        journal = WriteJournal(self._search_dir(record.name, key))
        with journal.locked():
            ids = data.column("product_id")
            journal.record(ids.to_pylist())
            # every vector write to the partition holds this lock, so what is not stored now is not
            # stored by anyone before the commit: rows all new are appended (no join), else merged
            stored = self._ids_of(table, ids.combine_chunks())
            with self._backend_errors(f"{what} {record.name} partition {key}"):
                if not stored:
                    table.add(data)
                    return data.num_rows
                merged = (
                    table.merge_insert("product_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
                )
        return merged.num_inserted_rows + merged.num_updated_rows


def _rows_of(vectors: Any, rows: list[int]) -> np.ndarray:
    """These rows of ``vectors`` (a matrix, or a sequence of vectors) as one float32 matrix."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
        return np.ascontiguousarray(vectors[rows], dtype=np.float32)
    return np.stack([np.asarray(vectors[i], dtype=np.float32) for i in rows])
