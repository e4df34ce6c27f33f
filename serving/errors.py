"""Every error leaves the service as JSON ``{"error": {"code", "message"}}`` (and ``"field"`` when one
request field is at fault); no stack traces."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from looksync.catalog.images import FetchError
from looksync.catalog.quarantine import Reason
from looksync.index import IndexBackendError
from looksync.search.engine import InvalidRequest, NotFound, NotReady, Unsupported
from looksync.search.shoppers import ProfileUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None):
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return jsonify({"error": error}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.code, err.message, err.field)

    @app.errorhandler(InvalidRequest)
    def _invalid(err: InvalidRequest):
        return error_response(400, "invalid_request", str(err), err.field)

    @app.errorhandler(FetchError)
    def _bad_image(err: FetchError):
        status = 413 if err.reason is Reason.IMAGE_TOO_LARGE else 400
        return error_response(status, str(err.reason), err.message)

    @app.errorhandler(NotReady)
    def _not_ready(err: NotReady):
        return error_response(503, "not_ready", str(err))

    @app.errorhandler(NotFound)
    def _not_found(err: NotFound):
        return error_response(404, "not_found", str(err))

    @app.errorhandler(Unsupported)
    def _unsupported(err: Unsupported):
        return error_response(501, "not_supported", str(err))

    @app.errorhandler(ProfileUnavailable)
    def _profiles_down(err: ProfileUnavailable):
        log.error("shopper profiles: %s", err)
        return error_response(503, "profiles_unavailable", "the shopper profile store cannot be reached; see the service log")

    @app.errorhandler(IndexBackendError)
    def _index_down(err: IndexBackendError):
        log.error("index error: %s", err)
        return error_response(503, "index_unavailable", "the catalog index cannot be read; see the service log")

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        code = (err.name or "error").lower().replace(" ", "_")
        return error_response(err.code or 500, code, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        if _is_body_framing_error(err):
            # gunicorn parses a chunked body while the app reads it: a bad chunk is the client's mistake
            return error_response(400, "invalid_request_body", f"the request body is malformed: {err}")
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the service log")


def _is_body_framing_error(err: Exception) -> bool:
    """gunicorn's parse errors raised from ``wsgi.input`` while the app reads the body (bad chunk size,
    missing chunk terminator, the body ending early), not the ones that are the app's own fault."""
    try:
        from gunicorn.http import errors as gunicorn_errors
    except ImportError:  # pragma: no cover - gunicorn is a dependency; other servers raise their own
        return False
    app_faults = (gunicorn_errors.InvalidResponseHeader, gunicorn_errors.InvalidResponseHeaderName,
                  gunicorn_errors.ConfigurationProblem)  # fmt: skip
    return isinstance(err, (gunicorn_errors.ParseException, gunicorn_errors.NoMoreData)) and not isinstance(err, app_faults)
