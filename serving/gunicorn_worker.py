"""gunicorn's gthread worker, answering in JSON what gunicorn itself refuses before Flask sees a request.

gunicorn parses the request line and the headers itself and answers a request it refuses with an HTML
page: a request line over ``limit_request_line`` (a 10,000-character path) gets 414, more headers than
``limit_request_fields`` or one over ``limit_request_field_size`` gets 431, a malformed request line,
header, chunk, Content-Length or Transfer-Encoding gets 400. This worker keeps gunicorn's
status and reason and writes the service's error shape instead, ``{"error": {"code", "message"}}``
with ``Content-Type: application/json``, so a client sees one error format whoever refused it.

Used by ``infra/gunicorn.conf.py`` (``worker_class``); the limits themselves are set there.
"""

from __future__ import annotations

import json
import re

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def error_code(reason: str) -> str:
    """``"URI Too Long"`` -> ``"uri_too_long"``, as the Flask handlers name werkzeug's errors."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"


def json_error_bytes(status_int: int, reason: str, mesg: str) -> bytes:
    body = json.dumps({"error": {"code": error_code(reason), "message": mesg or reason}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1", "replace") + body


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, json_error_bytes(status_int, reason, mesg))


class JsonErrorThreadWorker(ThreadWorker):
    """gthread, with gunicorn's own error answers as JSON."""

    def init_process(self):
        # gunicorn's Worker.handle_error picks the status and reason and logs; only the writer it calls is
        # swapped, in this worker process (after the fork; gunicorn.util.write_error is looked up per call)
        util.write_error = write_json_error
        super().init_process()
