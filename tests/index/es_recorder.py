"""A request recorder for request-shape tests of the Elasticsearch backend: a real HTTP server on
loopback that the real ``elasticsearch`` Python client talks to. It records every request (method,
path, query, JSON body) and answers from per-test routes with scripted JSON (optionally after a
delay). It is NOT an Elasticsearch server and nothing here tests cluster behaviour: the answers are
what a test scripts, shaped after the response types in the elasticsearch-specification repository
(each route names the spec file it follows). Cluster behaviour is the contract suite's job
(``tests/index/test_contract.py`` with LOOKSYNC_ES_URL set).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


Reply = tuple[int, Any] | Callable[[Request], tuple[int, Any]]


@dataclass
class Route:
    method: str
    pattern: str  # a regular expression the whole path must match
    reply: Reply
    delay_s: float = 0.0


@dataclass
class Recorder:
    url: str = ""
    routes: list[Route] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, method: str, pattern: str, reply: Reply, delay_s: float = 0.0) -> None:
        """Later routes win over earlier ones for the same request."""
        with self.lock:
            self.routes.insert(0, Route(method, pattern, reply, delay_s))

    def sent(self, method: str | None = None, pattern: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (pattern is None or re.fullmatch(pattern, r.path))
            ]

    def _answer(self, request: Request) -> tuple[float, int, Any]:
        with self.lock:
            self.requests.append(request)
            for route in self.routes:
                if route.method == request.method and re.fullmatch(route.pattern, request.path):
                    reply = route.reply
                    status, body = reply(request) if callable(reply) else reply
                    return route.delay_s, status, body
        return 0.0, 500, {"error": {"type": "recorder", "reason": f"no route for {request.method} {request.path}"}}


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")  # bulk bodies are NDJSON
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            delay, status, answer = recorder._answer(Request(self.command, unquote(split.path), query, body))
            if delay:
                time.sleep(delay)
            data = json.dumps(answer).encode() if self.command != "HEAD" else b""
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=9")
                self.send_header("X-Elastic-Product", "Elasticsearch")  # the client's product check
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                pass

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


class RecorderServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.recorder))
        self.server.daemon_threads = True
        self.recorder.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def index_mapping(alias: str, versions: dict[str, dict[str, Any]], separator: str = "--") -> dict[str, Any]:
    """A ``GET /<pattern>/_mapping`` answer (specification/indices/get_mapping/IndicesGetMappingResponse.ts:
    index name -> {mappings}) for the given version -> ``_meta.looksync`` map."""
    return {
        f"{alias}{separator}{name}": {"mappings": {"_meta": {"looksync": meta}, "properties": {}}}
        for name, meta in versions.items()
    }
