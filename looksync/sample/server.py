"""A tiny static file server for a generated sample (images, the planted HTML page), on loopback.

Files are read from disk per request, so the server can start before the sample is generated:
start it on port 0, then generate with ``image_base_url=server.url``. Or start it on a fixed port
that matches the URL the sample was generated with.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType


class _SampleHandler(SimpleHTTPRequestHandler):
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


class SampleServer:
    """Serves ``root`` over HTTP in a background thread; ``url`` is the base URL with the real port."""

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root)
        handler = functools.partial(_SampleHandler, directory=str(self.root))
        self._server = ThreadingHTTPServer((host, port), handler)
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
