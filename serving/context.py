"""The worker's shared resources as the blueprints see them: the search engine, the metrics and the
thumbnail store the app factory made once per worker (kept in ``app.extensions``), looked up on the
current app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from looksync.catalog.thumbnails import ThumbnailStore
    from looksync.search.engine import SearchEngine
    from serving.metrics import ServiceMetrics

ENGINE = "looksync.engine"
METRICS = "looksync.metrics"
SETTINGS = "looksync.settings"
THUMBNAILS = "looksync.thumbnails"


def engine() -> SearchEngine:
    return current_app.extensions[ENGINE]


def metrics() -> ServiceMetrics:
    return current_app.extensions[METRICS]


def thumbnails() -> ThumbnailStore:
    return current_app.extensions[THUMBNAILS]
