"""Every error leaves the service as JSON ``{"error": {"code", "message"}}``; no stack traces."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from looksync.catalog.images import FetchError
from looksync.catalog.quarantine import Reason
from looksync.index import IndexBackendError
from looksync.search.engine import InvalidRequest, NotFound, NotReady, Unsupported

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.code, err.message)

    @app.errorhandler(InvalidRequest)
    def _invalid(err: InvalidRequest):
        return error_response(400, "invalid_request", str(err))

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
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the service log")
