"""A local OpenAI-compatible HTTP endpoint for the tests: a real HTTP server on loopback that serves
``POST /v1/chat/completions`` from a per-test script (answers, delays, HTTP errors) and records every
request body, so tests see exactly what the service sent. It plays the LLM; it is not a model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any] | str]


@dataclass
class Step:
    """One scripted reply: ``answer`` (a JSON object, raw content text, or a function of the request
    body returning either), after ``delay_s``; or an HTTP ``status`` error."""

    answer: Answer | None = None
    delay_s: float = 0.0
    status: int = 200


@dataclass
class ScriptedLLM:
    url: str = ""
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    default: Step | None = None  # replayed when the script runs out (None: 500 "script exhausted")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *steps: Step, default: Step | None = None) -> None:
        with self.lock:
            self.steps = list(steps)
            self.requests = []
            self.default = default

    def next_step(self, body: dict[str, Any]) -> Step | None:
        with self.lock:
            self.requests.append(body)
            return self.steps.pop(0) if self.steps else self.default


def completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def start_scripted_llm() -> tuple[ScriptedLLM, ThreadingHTTPServer]:
    state = ScriptedLLM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            step = state.next_step(body)
            if step is None:
                self._send(500, {"error": {"message": "script exhausted", "type": "server_error"}})
                return
            time.sleep(step.delay_s)
            if step.status != 200:
                self._send(step.status, {"error": {"message": f"scripted {step.status}", "type": "server_error"}})
                return
            answer = step.answer(body) if callable(step.answer) else step.answer
            content = answer if isinstance(answer, str) else json.dumps(answer)
            self._send(200, completion(content, body.get("model", "")))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return state, server


def closed_port_url() -> str:
    """An OpenAI-style base URL on a loopback port where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
