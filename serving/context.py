"""The worker's shared resources as the blueprints see them: the search engine, the metrics, the
thumbnail store and the rendered cached look answers the app factory made once per worker (kept in
``app.extensions``), looked up on the current app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from looksync.catalog.thumbnails import ThumbnailStore
    from looksync.search.engine import SearchEngine
    from serving.cached_looks import RenderedAnswers
    from serving.metrics import ServiceMetrics

ENGINE = "looksync.engine"
METRICS = "looksync.metrics"
SETTINGS = "looksync.settings"
THUMBNAILS = "looksync.thumbnails"
RENDERED_ANSWERS = "looksync.rendered_answers"


def engine() -> SearchEngine:
    return current_app.extensions[ENGINE]


def metrics() -> ServiceMetrics:
    return current_app.extensions[METRICS]


def thumbnails() -> ThumbnailStore:
    return current_app.extensions[THUMBNAILS]


def rendered_answers() -> RenderedAnswers:
    return current_app.extensions[RENDERED_ANSWERS]
