"""A tiny static file server for a generated sample (images, the planted HTML page), on loopback.

Files are read from disk per request, so the server can start before the sample is generated:
start it on port 0, then generate with ``image_base_url=server.url``. Or start it on a fixed port
that matches the URL the sample was generated with.

It speaks HTTP/1.1 with keep-alive, as a vendor's image host or CDN does, so a fetcher that reuses its
connections is measured doing so (an HTTP/1.0 server would cost a TCP handshake and a server thread per
image). ``serve_sample_process`` runs it in a process of its own (benchmarks: the image host's CPU is
then not the fetcher's interpreter lock, as it is not in production).
"""

from __future__ import annotations

import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType


class _SampleHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply has a Content-Length (errors close the connection)
    # headers and body go out in two writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK of the headers (40 ms a reply on a kept-alive connection)
    disable_nagle_algorithm = True
    timeout = 60  # an idle kept-alive connection's thread ends after this many seconds
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".png": "image/png",
        ".html": "text/html; charset=utf-8",
    }

    def list_directory(self, path):  # no directory listings: a folder is not a product image
        self.send_error(404, "Not found")
        return None

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class _QuietServer(ThreadingHTTPServer):
    """A client that closes its kept-alive connection (a fetcher's pool at exit) is not an error worth a
    traceback on stderr, where it lands in the output of whatever runs beside the server."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SampleServer:
    """Serves ``root`` over HTTP in a background thread; ``url`` is the base URL with the real port."""

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root)
        handler = functools.partial(_SampleHandler, directory=str(self.root))
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"sample-server:{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SampleServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve_sample(root: str | Path, host: str = "127.0.0.1", port: int = 0) -> SampleServer:
    """Start serving the files under ``root`` (port 0 picks a free port; see ``SampleServer.url``)."""
    return SampleServer(root, host, port)


class SampleServerProcess:
    """A ``SampleServer`` in a child process (this module's ``_main``); ``url`` as for
    ``SampleServer``. Close it (or use it as a context manager) to stop the process."""

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0):
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, "-c", "from looksync.sample.server import _main; _main()", str(root), "--host", host,
             "--port", str(port)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self._process.stdout.readline().strip()  # the child prints its port once it listens
        if not line.isdigit():
            self._process.kill()
            raise RuntimeError(f"the sample server process did not start (it said {line!r})")
        self.host = host
        self.port = int(line)
        self.url = f"http://{host}:{self.port}"

    def close(self) -> None:
        import subprocess

        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stdout.close()

    def __enter__(self) -> SampleServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve_sample_process(root: str | Path, host: str = "127.0.0.1", port: int = 0) -> SampleServerProcess:
    """``serve_sample`` in a process of its own (see the module docstring)."""
    return SampleServerProcess(root, host, port)


def _main() -> None:
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Serve a generated sample's files on loopback until terminated.")
    parser.add_argument("root")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = SampleServer(args.root, args.host, args.port)
    print(server.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.close()
