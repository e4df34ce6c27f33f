"""Look answers from the response cache, sent without parsing and re-encoding them on every hit.

A hit answers the stored answer with ``cache: "hit"``, this request's ``timings_ms`` and a
``thumbnail_url`` on every product. Building that per hit (parse a 45 kB answer, walk its 50 products,
encode it again) was the largest part of a hit in the app. Each worker keeps the JSON of recent answers
rendered up to their ``timings_ms`` value; a hit is then one concatenation. A rendered answer is used
only for the very bytes it was rendered from (the cache key carries the look's sha256, the parameters,
the live index version and the model id; the bytes are compared too) and for the same application root
(the thumbnail URLs' prefix).

Personalised searches (``shopper_id``) never come here: their answers are parsed, reordered for the
shopper and encoded per request, so one shopper's order never reaches another's answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from flask import Response, current_app, request
from flask.json.provider import JSONProvider

from looksync.search.engine import CachedLookAnswer
from serving.thumbnails import with_thumbnail_urls

# how a stored answer, rendered with empty timings, ends (answers with a degraded note are never stored)
_RENDERED_TAIL = b'"timings_ms":{},"degraded":[]}'
_LINE_END = b',"degraded":[]}\n'  # Flask's JSON responses end with a newline


class RenderedAnswers:
    """Per worker: (cache key, application root) -> (the stored bytes, the answer's JSON up to ``timings_ms``)."""

    def __init__(self, max_items: int = 256):
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str], tuple[bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def rendered(self, key: str, script_root: str) -> tuple[bytes, bytes] | None:
        """(the stored bytes, the head rendered from them) of ``key`` under ``script_root``, when this worker
        rendered them (``serving.look_hits`` answers only those before Flask's dispatch)."""
        slot = (key, script_root)
        with self._lock:
            item = self._items.get(slot)
            if item is not None:
                self._items.move_to_end(slot)
            return item

    def head(self, answer: CachedLookAnswer) -> bytes | None:
        """The answer's JSON before its ``timings_ms`` value; None when it does not end as a stored
        answer does (then the caller encodes it whole)."""
        slot = (answer.key, request.script_root)
        with self._lock:
            item = self._items.get(slot)
            if item is not None and (item[0] is answer.data or item[0] == answer.data):
                self._items.move_to_end(slot)
                return item[1]
        head = render_head(answer)
        if head is not None:
            with self._lock:
                self._items[slot] = (answer.data, head)
                self._items.move_to_end(slot)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return head


def render_head(answer: CachedLookAnswer) -> bytes | None:
    response = with_thumbnail_urls(answer.response())
    response["timings_ms"] = {}
    body = current_app.json.dumps(response).encode()
    return body[: -len(_RENDERED_TAIL)] if body.endswith(_RENDERED_TAIL) else None


def cached_answer_response(answer: CachedLookAnswer, rendered: RenderedAnswers) -> Response:
    """The HTTP answer of a cache hit: the same bytes ``jsonify`` would make of ``answer.response()`` with
    thumbnail URLs."""
    head = rendered.head(answer)
    if head is None:
        body = f"{current_app.json.dumps(with_thumbnail_urls(answer.response()))}\n".encode()
    else:
        body = hit_body(current_app.json, head, answer.timings_ms)
    response = current_app.response_class(body, mimetype="application/json")
    # what the request log and the metrics read of an answer (serving.app), without parsing this one
    response.json_body = hit_summary(answer.timings_ms)
    return response


def hit_body(provider: JSONProvider, head: bytes, timings_ms: dict[str, float]) -> bytes:
    """A hit's JSON from its rendered head and this request's timings, as ``jsonify`` writes it."""
    return head + b'"timings_ms":' + provider.dumps(timings_ms).encode() + _LINE_END


def hit_summary(timings_ms: dict[str, float]) -> dict:
    """What the request log and the metrics read of a hit's answer (``serving.request_log``)."""
    return {"cache": "hit", "timings_ms": timings_ms, "degraded": []}
