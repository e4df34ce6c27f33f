"""What every request gets and leaves behind, whichever path answers it (Flask's hooks in ``serving.app``,
or the look cache hit shortcut in ``serving.look_hits``): its request id, the API key check, the metrics
and the one JSON log line."""

from __future__ import annotations

import hmac
import logging
import re
import uuid

from serving.metrics import ServiceMetrics

log = logging.getLogger("looksync.service")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a safe token (letters, digits, ``._-``, at most 64), else a new one."""
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]


def key_accepted(keys: list[bytes], given: str | None) -> bool:
    """Whether ``given`` (the ``X-API-Key`` header) is one of ``keys``: compared with every key without
    short-circuiting, in constant time per key."""
    given_bytes = (given or "").encode()
    return any([hmac.compare_digest(given_bytes, key) for key in keys])  # noqa: C419


def record_request(metrics: ServiceMetrics, *, method: str, path: str, endpoint: str, status: int, seconds: float,
                   body: object, is_json: bool, request_id: str) -> None:  # fmt: skip
    """The request's metrics (``/metrics`` itself not counted) and its log line. ``body``: the object a
    JSON answer was made from (its ``degraded`` notes, ``timings_ms`` and error code are read)."""
    if endpoint != "/metrics":
        metrics.observe_request(endpoint, method, status, seconds)
        if is_json and status == 200:
            metrics.observe_response(endpoint, body)
    answer = body if isinstance(body, dict) else {}
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": method,
            "path": path,
            "endpoint": endpoint,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "degraded": answer.get("degraded") if isinstance(body, dict) else None,
            "error": (answer.get("error") or {}).get("code") if "error" in answer else None,
        },
    )
