"""Application factory: shared resources (settings, search engine) are made once per worker here."""

from __future__ import annotations

import hmac
import logging
import uuid

from flask import Flask, g, request

from looksync.search import SearchEngine
from looksync.settings import Settings, get_settings
from serving.errors import ApiError, register_error_handlers

log = logging.getLogger(__name__)

OPEN_PATHS = {"/healthz", "/readyz"}


def create_app(settings: Settings | None = None, engine: SearchEngine | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.extensions["looksync.settings"] = settings
    app.extensions["looksync.engine"] = engine or SearchEngine.from_settings(settings)
    keys = [k.get_secret_value().encode() for k in settings.api_keys]

    @app.before_request
    def _request_context():
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
        if keys and request.path not in OPEN_PATHS:
            given = (request.headers.get("X-API-Key") or "").encode()
            # compare against every key without short-circuiting, in constant time per key
            if not any([hmac.compare_digest(given, key) for key in keys]):  # noqa: C419
                raise ApiError(401, "unauthorized", "missing or invalid X-API-Key header")

    @app.after_request
    def _request_id_header(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    from serving.looks import bp as looks_bp
    from serving.ops import bp as ops_bp

    app.register_blueprint(looks_bp)
    app.register_blueprint(ops_bp)
    register_error_handlers(app)
    return app


def engine() -> SearchEngine:
    from flask import current_app

    return current_app.extensions["looksync.engine"]
