"""A lean HTTP/1.1 load client for the service benchmarks: one thread, an event loop (epoll) over kept-alive
raw sockets, so that on a machine with two cores the client's own CPU stays small next to the server's.

Each of ``concurrency`` connections sends its next request as soon as the answer to the previous one is
complete (closed loop). Requests are bytes made by a function of their number, so a benchmark can give
every request something of its own (a multipart boundary) without encoding a body per request in Python.
A latency runs from the first byte sent to the last byte received; an answer counts as good when its
status is 200 and ``check(body)`` holds. Answers must carry ``Content-Length`` (the service's do).
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable


class _Exchange:
    """One request on one connection: what is left to send, what was received so far."""

    __slots__ = ("started", "out", "buf", "body_at", "length")

    def __init__(self, request: bytes):
        self.started = time.perf_counter()
        self.out = memoryview(request)
        self.buf = bytearray()
        self.body_at = -1
        self.length = -1

    def complete(self) -> bool:
        if self.body_at < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.body_at = end + 4
            self.length = content_length(bytes(self.buf[:end]))
        return len(self.buf) >= self.body_at + self.length

    def body(self) -> bytes:
        return bytes(self.buf[self.body_at : self.body_at + self.length])


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"an answer without Content-Length: {head[:200]!r}")


def request_bytes(method: str, path: str, body: bytes = b"", content_type: str | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    if body or method != "GET":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class LoopClient:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.address = (host, port)

    def _connect(self, selector: selectors.BaseSelector) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        return sock

    def run(self, make_request: Callable[[int], bytes], count: int, concurrency: int,
            check: Callable[[bytes], bool] | None = None) -> tuple[list[float], int, float]:  # fmt: skip
        """Sends ``count`` requests (``make_request(i)``) over ``concurrency`` connections; returns (the good
        answers' latencies in ms, the number of bad answers and dropped connections, wall seconds)."""
        selector = selectors.DefaultSelector()
        exchanges: dict[socket.socket, _Exchange] = {}
        latencies: list[float] = []
        errors = sent = done = 0

        def push(sock: socket.socket, exchange: _Exchange) -> None:
            try:
                exchange.out = exchange.out[sock.send(exchange.out) :]
            except BlockingIOError:
                pass
            selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if len(exchange.out) else 0))

        def send(sock: socket.socket) -> None:
            nonlocal sent
            request = make_request(sent)
            sent += 1
            exchange = exchanges[sock] = _Exchange(request)
            push(sock, exchange)

        start = time.perf_counter()
        for _ in range(min(concurrency, count)):
            send(self._connect(selector))
        while done < count:
            events = selector.select(timeout=120)
            if not events:
                raise TimeoutError(f"no answer for 120 s ({done} of {count} answered)")
            for key, mask in events:
                sock = key.fileobj
                exchange = exchanges[sock]
                if mask & selectors.EVENT_WRITE:
                    push(sock, exchange)
                if not mask & selectors.EVENT_READ:
                    continue
                try:
                    chunk = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    exchange.buf += chunk
                    if not exchange.complete():
                        continue
                    ms = (time.perf_counter() - exchange.started) * 1000
                    if exchange.buf.startswith(b"HTTP/1.1 200 ") and (check is None or check(exchange.body())):
                        latencies.append(ms)
                    else:
                        errors += 1
                else:  # the server closed the connection: an error, and a new connection for what is left
                    errors += 1
                    selector.unregister(sock)
                    sock.close()
                    del exchanges[sock]
                    sock = self._connect(selector) if sent < count else None
                done += 1
                if sock is not None and sent < count:
                    send(sock)
                elif sock is not None:  # nothing left to send on it: out of the loop
                    selector.unregister(sock)
                    sock.close()
                    del exchanges[sock]
        wall = time.perf_counter() - start
        selector.close()
        return latencies, errors, wall
