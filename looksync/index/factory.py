"""Open the catalog index the settings name: one function, so every entry point gets the same backend."""

from __future__ import annotations

from looksync.index.base import CatalogIndex, IndexBackendError
from looksync.settings import Settings


def open_index(settings: Settings) -> CatalogIndex:
    """The configured ``CatalogIndex``. Backends are imported here, not at module level, so importing
    this module (from a DAG file, say) stays cheap."""
    backend = settings.resolved_index_backend
    if backend == "embedded":
        from looksync.catalog.object_store import default_store
        from looksync.index.embedded import EmbeddedIndex

        return EmbeddedIndex(
            settings.resolved_index_path,
            ann_min_rows=settings.index_ann_min_rows,
            candidates_per_k=settings.index_candidates_per_k,
            search=settings.index_search,
            refresh_s=settings.index_refresh_s,
            hnsw_m=settings.index_hnsw_m,
            hnsw_ef_construction=settings.index_hnsw_ef_construction,
            hnsw_ef_search=settings.index_hnsw_ef_search,
            exact_max_rows=settings.index_exact_max_rows,
            graph_memory=settings.index_graph_memory,
            ann_structure=settings.index_ann_structure,
            ivf_nlist=settings.index_ivf_nlist,
            ivf_nprobe=settings.index_ivf_nprobe,
            # made on first use: an S3 client is only built when a snapshot is taken or restored
            snapshot_store=lambda: default_store(settings, "snapshots"),
        )
    if backend == "elasticsearch":
        from looksync.index.elasticsearch import ElasticsearchIndex

        return ElasticsearchIndex.from_settings(settings)
    raise IndexBackendError(f"unknown index backend {backend!r}; known: embedded, elasticsearch")
