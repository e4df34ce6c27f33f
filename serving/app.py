"""Application factory: shared resources (settings, search engine, metrics) are made once per worker here."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider

from looksync.catalog.thumbnails import ThumbnailStore
from looksync.search.engine import SearchEngine
from looksync.search.shadow import open_shadow_mirror
from looksync.settings import Settings, get_settings
from serving import context
from serving.cached_looks import RenderedAnswers
from serving.errors import ApiError, register_error_handlers
from serving.look_hits import LookHitShortcut
from serving.metrics import ServiceMetrics
from serving.multipart import ServiceRequest
from serving.request_log import key_accepted, record_request, request_id
from serving.validation import read_chunked_body

_msgspec_json = msgspec.json.Encoder(enc_hook=lambda obj: DefaultJSONProvider.default(obj))

OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/demo", "/judge", "/judge/report"}
# /static/: the pages' scripts and styles; the pages carry no data, their API calls need the key.
# /v1/thumbnails/: product thumbnails by image hash, open on purpose: the pages show them in <img> tags,
# which cannot send X-API-Key, and each is a small copy of a product image its vendor already publishes,
# addressed by that image's sha256 (found through an API answer). /v1/products/<id>/thumbnail, which
# looks a product up in the index, keeps the key like every other data call.
OPEN_PREFIXES = ("/static/", "/v1/thumbnails/")


class ServiceJSONProvider(DefaultJSONProvider):
    """Flask's JSON, keys in the order the code built them, encoded by msgspec (8x faster than the json
    module on a 45 kB look answer, the largest cost of a cache hit after the upload's parsing; output in
    UTF-8, NaN as null, dates in ISO 8601), with Flask's own encoder for what msgspec refuses; and the object a response was
    made from kept on it (``response.json_body``) so the request log and metrics read it without parsing."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs in ({}, {"separators": (",", ":")}):  # compact, as Flask answers outside debug mode
            try:
                return _msgspec_json.encode(obj).decode()
            except (TypeError, ValueError, UnicodeError):  # msgspec.EncodeError is a ValueError
                pass
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().response(*args, **kwargs)
        response.json_body = self._prepare_response_obj(args, kwargs)
        return response


def create_app(settings: Settings | None = None, engine: SearchEngine | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.request_class = ServiceRequest  # multipart uploads without a regex compiled per boundary
    app.json = ServiceJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    metrics = ServiceMetrics()
    search_engine = engine or SearchEngine.from_settings(settings)
    search_engine.events = metrics
    if search_engine.mirror is None:
        search_engine.mirror = open_shadow_mirror(settings, search_engine.index, metrics)
    metrics.shadow_active.set(1 if search_engine.mirror is not None else 0)
    metrics.watch_encoder(search_engine.encoder)
    app.extensions[context.SETTINGS] = settings
    app.extensions[context.ENGINE] = search_engine
    app.extensions[context.METRICS] = metrics
    app.extensions[context.THUMBNAILS] = ThumbnailStore.from_settings(settings)
    app.extensions[context.RENDERED_ANSWERS] = RenderedAnswers()
    keys = [k.get_secret_value().encode() for k in settings.api_keys]

    @app.before_request
    def _request_context():
        g.request_id = request_id(request.headers.get("X-Request-Id"))
        g.started = time.perf_counter()
        if keys and request.path not in OPEN_PATHS and not request.path.startswith(OPEN_PREFIXES):
            if not key_accepted(keys, request.headers.get("X-API-Key")):
                raise ApiError(401, "unauthorized", "missing or invalid X-API-Key header")

    # after the key check: an unauthenticated chunked body is not read
    app.before_request(read_chunked_body)

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        # the object jsonify serialised (kept by ServiceJSONProvider), else the body parsed once
        body = getattr(response, "json_body", None)
        if body is None and response.is_json:
            body = response.get_json(silent=True)
        record_request(
            metrics, method=request.method, path=request.path,
            endpoint=request.url_rule.rule if request.url_rule else "unmatched", status=response.status_code,
            seconds=time.perf_counter() - g.get("started", time.perf_counter()), body=body, is_json=response.is_json,
            request_id=g.get("request_id", ""),
        )  # fmt: skip
        return response

    from serving.demo_page import bp as demo_page_bp
    from serving.judge import bp as judge_bp
    from serving.looks import bp as looks_bp
    from serving.openapi import bp as openapi_bp
    from serving.ops import bp as ops_bp
    from serving.products import bp as products_bp
    from serving.search import bp as search_bp
    from serving.shoppers import bp as shoppers_bp
    from serving.thumbnails import bp as thumbnails_bp

    blueprints = (looks_bp, search_bp, products_bp, shoppers_bp, thumbnails_bp, ops_bp, openapi_bp, judge_bp, demo_page_bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    # a look answered from the response cache and already rendered here is sent before Flask's dispatch
    app.wsgi_app = LookHitShortcut(app, app.wsgi_app, keys)
    return app

