"""Open the catalog index the settings name: one function, so every entry point gets the same backend."""

from __future__ import annotations

from looksync.index.base import CatalogIndex, IndexBackendError
from looksync.settings import Settings


def open_index(settings: Settings) -> CatalogIndex:
    """The configured ``CatalogIndex``. Backends are imported here, not at module level, so importing
    this module (from a DAG file, say) stays cheap."""
    backend = settings.resolved_index_backend
    if backend == "embedded":
        from looksync.index.embedded import EmbeddedIndex

        return EmbeddedIndex(settings.resolved_index_path)
    if backend == "elasticsearch":
        raise IndexBackendError(
            f"index backend 'elasticsearch' (LOOKSYNC_ES_URL={settings.es_url!r}) is not built yet; "
            "unset LOOKSYNC_ES_URL or set LOOKSYNC_INDEX_BACKEND=embedded to use the embedded index"
        )
    raise IndexBackendError(f"unknown index backend {backend!r}; known: embedded, elasticsearch")
