"""The embedded index's ANN structures: ``build_ann_index`` gives each partition large enough either a
FAISS structure saved in the version directory (an HNSW graph or IVF lists, as ``ann_structure`` says) (``faiss`` search; built from one pinned table version
plus the write-journal offset at that pin) or LanceDB's HNSW-SQ and scalar filter indexes (``lance``).
The graph format and files are ``faiss_graph``'s; the views that search them are ``faiss_view``'s.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from lancedb.index import Bitmap, BTree, HnswSq, LabelList

from looksync.index import faiss_graph, faiss_view, lance_partitions
from looksync.index.embedded_store import PartitionStore, log
from looksync.index.lance_partitions import Key
from looksync.index.lance_registry import VersionRecord
from looksync.index.lance_schema import VECTOR_COLUMN
from looksync.index.write_journal import WriteJournal

# Scalar indexes on the filter columns inside a partition (layer and market are the partition's, so
# constant there): bitmaps for few distinct values, btrees for many, a label list for the sizes list
# (it serves array_has_any).
_SCALAR_INDEXES = (
    ("product_id", BTree),
    ("category", Bitmap),
    ("gender", Bitmap),
    ("in_stock", Bitmap),
    ("brand", BTree),
    ("price", BTree),
    ("sizes", LabelList),
)


class GraphsMixin(PartitionStore):
    """``build_ann_index`` of ``EmbeddedIndex``."""

    search_mode: str
    ann_min_rows: int
    rows_per_ann_partition: int
    hnsw_m: int
    hnsw_ef_construction: int
    ann_structure: str
    ivf_nlist: int

    def build_ann_index(self, version: str | None = None, min_rows: int | None = None) -> bool:
        """Give each partition of a version holding at least ``min_rows`` (default ``ann_min_rows``)
        products its own ANN structure for this handle's search mode: a FAISS structure saved in the
        version directory (``faiss``: an HNSW graph or IVF lists, ``ann_structure``; plus a btree on
        product_id for lookups), or LanceDB's cosine HNSW-SQ index and scalar filter indexes
        (``lance``). Smaller partitions stay on exact search. Returns whether any partition has one
        now. Rows written afterwards are still found (scored exactly) until the next build."""
        record = self._record(version)
        threshold = max(self.ann_min_rows if min_rows is None else min_rows, 1)
        built: list[Key] = []
        try:
            large = []
            for key in self._partition_keys(record.name):
                table = self._partition(record, key)
                with self._backend_errors(f"count partition {key} of {record.name}"):
                    rows = table.count_rows()
                if rows >= threshold:
                    large.append((key, table, rows))
            if self.search_mode == "faiss":

                def graph(item: tuple[Key, Any, int]) -> Key:
                    key, table, _ = item
                    self._build_graph(record, key)
                    with self._backend_errors(f"index product ids of {record.name} partition {key}"):
                        table.create_index("product_id", config=BTree(), replace=True)
                    return key

                # an IVF build runs on one thread (faiss_graph.build_ivf), so partitions are built side by
                # side, one per core; an HNSW build already uses every core, so those go one at a time
                workers = min(os.cpu_count() or 1, len(large)) if self.ann_structure == "ivf" else 1
                if workers > 1:
                    with ThreadPoolExecutor(workers, thread_name_prefix="looksync-ann-build") as pool:
                        for key in pool.map(graph, large):
                            built.append(key)
                else:
                    built.extend(graph(item) for item in large)
            else:
                for key, table, rows in large:
                    self._build_lance_index(record, key, table, rows)
                    built.append(key)
        finally:
            self.views.touch(record.name)
        log.info(
            "ann indexes built" if built else "ann index skipped",
            extra={
                "version": record.name, "partitions": [list(k) for k in built], "threshold": threshold,
                "search": self.search_mode,
            },
        )  # fmt: skip
        return bool(built)

    def _build_graph(self, record: VersionRecord, key: Key) -> faiss_graph.GraphMeta:
        """Build and save the partition's FAISS graph from its latest table version. The version and the
        journal offset are read under the journal's lock, so every vector write is either in that table
        version or journalled at or after the offset (see ``write_journal``)."""
        search_dir = self._search_dir(record.name, key)
        table_name = lance_partitions.table_name(*key)
        journal = WriteJournal(search_dir)
        started = time.perf_counter()
        with faiss_graph.building(search_dir):
            with journal.locked(), self._backend_errors(f"pin {record.name} partition {key} for a graph build"):
                pinned = self._db(record.name).open_table(table_name)  # a handle of our own, at the latest commit
                table_version = pinned.version
                offset = journal.size()
            with self._backend_errors(f"read the vectors of {record.name} partition {key}"):
                pinned.checkout(table_version)
                data = pinned.search().select(["product_id", VECTOR_COLUMN]).limit(None).to_arrow()
            matrix = faiss_view._vectors_of(data.column(VECTOR_COLUMN), record.dim)
            if self.ann_structure == "ivf":
                nlist = faiss_graph.ivf_lists(len(matrix), self.ivf_nlist)
                graph = faiss_graph.build_ivf(matrix, nlist)
                params = {"m": 0, "ef_construction": 0, "nlist": nlist}
            else:
                graph = faiss_graph.build(matrix, self.hnsw_m, self.hnsw_ef_construction)
                params = {"m": self.hnsw_m, "ef_construction": self.hnsw_ef_construction, "nlist": 0}
            meta = faiss_graph.save(
                search_dir,
                graph,
                data.column("product_id").to_pylist(),
                faiss_graph.GraphMeta(
                    table_version=table_version, journal_offset=offset, rows=len(matrix), dim=record.dim,
                    graph_file="", ids_file="", built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    structure=self.ann_structure, **params,
                ),
            )  # fmt: skip
        log.info(
            "search graph built",
            extra={
                "version": record.name, "partition": list(key), "rows": meta.rows, "table_version": table_version,
                "structure": meta.structure,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )  # fmt: skip
        return meta

    def _build_lance_index(self, record: VersionRecord, key: Key, table: Any, rows: int) -> None:
        partitions = max(1, math.ceil(rows / self.rows_per_ann_partition))
        with self._backend_errors(f"build the ANN index of {record.name} partition {key} ({rows} rows)"):
            table.create_index(VECTOR_COLUMN, config=HnswSq(distance_type="cosine", num_partitions=partitions), replace=True)
            for column, config in _SCALAR_INDEXES:
                table.create_index(column, config=config(), replace=True)
