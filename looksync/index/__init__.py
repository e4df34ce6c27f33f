"""The catalog index: one contract (``base``), an embedded backend and an Elasticsearch backend."""

from looksync.index.base import BulkResult, CatalogIndex, Hit, IndexBackendError, SearchFilters, VersionInfo

__all__ = ["BulkResult", "CatalogIndex", "Hit", "IndexBackendError", "SearchFilters", "VersionInfo"]
