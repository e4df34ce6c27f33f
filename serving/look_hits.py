"""Look cache hits answered before Flask's dispatch.

A look answered from the response cache cost the service about 1 ms of CPU under gunicorn, most of it
around the hit rather than in it: Flask's request and application contexts, routing, the before/after
hooks, the response object, the image's header checks. With one worker held to one core by the GIL that
cost sets how many hits a second it can answer, and so the hit's p95 at concurrency 16 (issue 17,
target 4). This WSGI layer sits in front of the Flask app and answers such a request itself when it can
give the very answer Flask's path would; every other request goes to Flask untouched:

- only ``POST /v1/looks/search`` with a Content-Length body within the upload cap, and with an accepted
  ``X-API-Key`` when keys are set (checked before the body is read);
- the body is read as Flask's path reads it (``serving.looks.read_look_search``: the same form parser,
  models and validation); an image URL (fetched by Flask's path only) or a ``shopper_id`` (an answer
  reordered per shopper) goes to Flask;
- the cache key is the engine's (``look_cache_key``: the image's sha256, the parameters, the live index
  version after ``check_ready`` compared its model with the loaded one), so a new live version or model
  never reads an older entry;
- only an answer this worker has already rendered for that key and application root is sent here
  (``RenderedAnswers``: Flask's path renders each answer once), and only while the cache still holds the
  very bytes it was rendered from: an expired or replaced entry goes to Flask (the miss and its metrics
  are Flask's to record);
- the image's byte, header and pixel checks are not run again: the rendered answer exists because these
  very bytes (their sha256 is in the key) passed them in this worker, under the same settings;
- not while a shadow mirror runs (it compares every answer) or with the look cache off.

Anything else, any refusal or error on the way included, goes to Flask with the body as it came, and Flask
answers it (a 4xx, a miss, a personalised answer). A hit sent here carries what Flask's would: the same
bytes, status and headers (Content-Type, Content-Length, X-Request-Id), the same metrics (the look cache
hit, the request, its ``cache`` stage) and the same log line (``serving.request_log``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from looksync.catalog.schema import image_digest
from serving import context
from serving.cached_looks import hit_body, hit_summary
from serving.looks import read_look_search
from serving.request_log import key_accepted, record_request, request_id

if TYPE_CHECKING:
    from flask import Flask

    from looksync.search.engine import SearchEngine

LOOK_SEARCH = "/v1/looks/search"


class LookHitShortcut:
    """WSGI middleware around ``app.wsgi_app``: rendered look cache hits here, everything else to Flask."""

    def __init__(self, app: Flask, wsgi_app: Callable, keys: list[bytes]):
        self.app = app
        self.wsgi_app = wsgi_app
        self.keys = keys

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LOOK_SEARCH and environ.get("REQUEST_METHOD") == "POST":
            hit = self.answer(environ)
            if hit is not None:
                headers, body = hit
                start_response("200 OK", headers)
                return [body]
        return self.wsgi_app(environ, start_response)

    def answer(self, environ: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes] | None:
        """(headers, body) of a rendered cache hit; None for Flask to answer (the body left for it to read)."""
        started = time.perf_counter()
        cap = self.app.config["MAX_CONTENT_LENGTH"]
        length = _content_length(environ)
        if length is None or (cap is not None and length > cap) or "HTTP_TRANSFER_ENCODING" in environ:
            return None  # chunked or too large: Flask's path reads (or refuses) it
        if self.keys and not key_accepted(self.keys, environ.get("HTTP_X_API_KEY")):
            return None  # Flask answers the 401 without reading the body
        eng: SearchEngine = self.app.extensions[context.ENGINE]
        if eng.mirror is not None or eng.settings.look_cache_ttl_s <= 0:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            return self._hit(environ, eng, started)
        except Exception:  # noqa: BLE001 - a refusal (4xx), not ready, the cache down: Flask answers it
            return None
        finally:
            environ["wsgi.input"] = io.BytesIO(body)  # for Flask, as it came, when it answers
            environ.pop("werkzeug.request", None)

    def _hit(self, environ: dict[str, Any], eng: SearchEngine, started: float) -> tuple[list[tuple[str, str]], bytes] | None:
        config = self.app.config
        req = self.app.request_class(environ)
        # what Flask's request reads from the app's config inside a request context
        req.max_content_length = config["MAX_CONTENT_LENGTH"]
        req.max_form_memory_size = config["MAX_FORM_MEMORY_SIZE"]
        req.max_form_parts = config["MAX_FORM_PARTS"]
        params, look_request, data, url = read_look_search(eng, req)
        if data is None or url is not None or params.shopper_id is not None:
            return None
        key = eng.look_cache_key(image_digest(data), look_request, eng.check_ready())
        rendered = self.app.extensions[context.RENDERED_ANSWERS].rendered(key, req.script_root)
        if rendered is None:
            return None
        stored, head = rendered
        cache_started = time.perf_counter()
        value = eng.cache.get(key)  # CacheUnavailable: Flask's path notes it
        timings_ms = {"cache": round((time.perf_counter() - cache_started) * 1000, 2)}
        if value is None or not (value is stored or value == stored):
            return None
        body = hit_body(self.app.json, head, timings_ms)
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("X-Request-Id", rid)]
        eng.events.cache("look", "hit")
        record_request(
            self.app.extensions[context.METRICS], method="POST", path=req.path, endpoint=LOOK_SEARCH, status=200,
            seconds=time.perf_counter() - started, body=hit_summary(timings_ms), is_json=True, request_id=rid,
        )  # fmt: skip
        return headers, body


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length > 0 else None
