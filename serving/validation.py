"""The service's one validation layer: every request body, form field and query string is read here and
parsed into a typed model (``serving.models``) before any work is done.

- JSON is parsed with a bounded nesting depth, checked on the text *before* the parser runs (the
  parser is recursive: a 10,000-level document must never reach it), and within the app's byte cap
  (``MAX_CONTENT_LENGTH``, also for chunked bodies: 413). The multipart ``params`` field goes through
  the same parser.
- Every string anywhere in a request (JSON keys and values, form fields, query arguments) is refused
  when it holds NUL or a lone surrogate, and is NFC-normalised; every JSON number must be finite.
- One mapping from problems to answers, all JSON ``{"error": {"code", "message", "field"}}``:
  400 malformed or invalid (``field`` names the first bad one), 413 too large, 415 not JSON / multipart.
  A client's mistake is never a 5xx and never an index outage.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, TypeVar

import numpy as np
from flask import Request, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from serving.errors import ApiError

MAX_JSON_DEPTH = 32  # the deepest request document is 4 levels (judgments: body.ratings[].scores)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
M = TypeVar("M", bound=BaseModel)


class RequestProblem(ApiError):
    """A 4xx naming the request field at fault (``field``: dotted path, ``[i]`` for list items)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(status, code, message, field=field)


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in a JSON text, brackets inside strings not counted (linear,
    no recursion; a malformed text gets a depth too, good enough to refuse it before the parser)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def parse_json(data: bytes | str, where: str = "body") -> Any:
    """A JSON document -> cleaned Python value (see ``clean``); RequestProblem 400 when it is not UTF-8,
    nested deeper than MAX_JSON_DEPTH, not JSON, or holds a bad string or number."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestProblem(400, "invalid_json", f"{where} is not UTF-8: {exc.reason} at byte {exc.start}",
                                 field=None if where == "body" else where) from None  # fmt: skip
    else:
        text = data
    # the depth is at most the number of opening brackets: a short document needs no scan
    depth = json_depth(text) if text.count("[") + text.count("{") > MAX_JSON_DEPTH else 0
    if depth > MAX_JSON_DEPTH:
        raise RequestProblem(400, "json_too_deep", f"{where} nests {depth} levels deep; at most {MAX_JSON_DEPTH}",
                             field=None if where == "body" else where)  # fmt: skip
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise RequestProblem(400, "invalid_json", f"{where} is not JSON: {_printable(str(exc))[:200]}",
                             field=None if where == "body" else where) from None  # fmt: skip
    return clean(value)  # fields are named as in the model, whichever transport carried them


def clean(value: Any, path: str = "") -> Any:
    """Walk a parsed value: strings (keys too) refused with NUL or a lone surrogate and NFC-normalised,
    numbers refused unless finite. Recursion is bounded by the depth check before parsing."""
    if isinstance(value, str):
        return clean_text(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestProblem(400, "invalid_request", f"{path or 'body'}: must be a finite number, got {value}", field=path or None)
    if isinstance(value, list):
        return [clean(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = clean_text(key, f"{path}.<key>" if path else "<key>")
            out[name] = clean(item, f"{path}.{name}" if path else name)
        return out
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable text (NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "holds a NUL character"
    if _SURROGATE.search(text):
        return "holds a lone surrogate (not Unicode text)"
    return None


def clean_text(text: str, path: str) -> str:
    problem = text_problem(text)
    if problem:
        field = _printable(path) or None
        raise RequestProblem(400, "invalid_text", f"{field or 'value'}: {problem}", field=field)
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return _printable(out)


def validate(model: type[M], data: Any) -> M:
    """``data`` (already cleaned) -> ``model``; a ValidationError becomes one 400 naming the first bad field
    and listing up to five problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = _field(errors[0]["loc"]) if errors and errors[0]["loc"] else None
        problems = "; ".join(f"{_field(e['loc']) or 'body'}: {_printable(e['msg'])}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise RequestProblem(400, "invalid_request", problems + more, field=first) from None


def require_media_type(*accepted: str, req: Request | None = None) -> str:
    """The media type of ``req`` (default: Flask's current request) when it is one of ``accepted``
    (``application/*+json`` counts as JSON); otherwise 415 naming what is accepted."""
    mimetype = (request if req is None else req).mimetype
    if mimetype in accepted or ("application/json" in accepted and mimetype.startswith("application/") and mimetype.endswith("+json")):
        return mimetype
    raise RequestProblem(
        415, "unsupported_media_type",
        f"Content-Type {mimetype or '(none)'!r} is not accepted here; send {' or '.join(accepted)}",
        field="Content-Type",
    )  # fmt: skip


def read_chunked_body() -> None:
    """A body without Content-Length (chunked) is read here, within the byte cap, and cached for the JSON
    and form parsers. Werkzeug's capped stream stops *at* the cap and returns what it has, so a body that
    reaches the cap would parse as a truncated (400) document: it is a 413 instead."""
    if request.content_length is not None or "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    cap = request.max_content_length
    data = request.get_data(cache=True)
    if cap is not None and len(data) >= cap:
        raise RequestEntityTooLarge(f"the chunked request body reached the {cap}-byte cap")


def json_body(req: Request | None = None) -> Any:
    """The body of ``req`` (default: Flask's current request) as cleaned JSON. The byte cap applies while
    reading (a declared length over the cap or a chunked body that passes it is a 413 from werkzeug,
    answered as JSON by ``serving.errors``)."""
    return parse_json((request if req is None else req).get_data(cache=True))


def query_args() -> dict[str, str]:
    """The query string, one value per name (a repeated name is a 400, not a silent first-wins), cleaned."""
    out: dict[str, str] = {}
    for name, values in request.args.lists():
        key = clean_text(name, "<query name>")
        if len(values) > 1:
            raise RequestProblem(400, "invalid_request", f"{_printable(key)}: given {len(values)} times; give it once", field=_printable(key))
        out[key] = clean_text(values[0], key)
    return out
