"""The guarded image fetcher against a real HTTP server on loopback."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from looksync.catalog.images import FetchError, FetchPolicy, check_image_bytes, fetch_image, fetch_images
from looksync.catalog.quarantine import Reason


def png_bytes(size=(32, 32), colour=(200, 30, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    flaky_hits = 0
    routes: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/flaky.png":
            Handler.flaky_hits += 1
            if Handler.flaky_hits < 3:
                self.send_response(503)
                self.end_headers()
                return
        route = self.routes.get(self.path.replace("/flaky.png", "/ok.png"))
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        status, headers, body = route
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    Handler.routes = {
        "/ok.png": (200, {"Content-Type": "image/png"}, png_bytes()),
        "/page.html": (200, {"Content-Type": "text/html"}, b"<html>not an image</html>"),
        "/lies.png": (200, {"Content-Type": "image/png"}, b"definitely not a png"),
        "/huge.png": (200, {"Content-Type": "image/png"}, png_bytes(size=(3000, 3000), colour=(255, 255, 255))),
        "/moved": (302, {"Location": "/ok.png"}, b""),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


ALLOW = FetchPolicy(allow_private=True, timeout_s=2, retries=2, backoff_s=0.01, max_pixels=4_000_000)


def test_fetches_a_real_image(server):
    img = fetch_image(f"{server}/ok.png", ALLOW)
    assert (img.width, img.height, img.content_type) == (32, 32, "image/png")
    assert len(img.sha256) == 64


def test_loopback_is_refused_unless_allowed(server):
    with pytest.raises(FetchError) as exc:
        fetch_image(f"{server}/ok.png", FetchPolicy(allow_private=False))
    assert exc.value.reason is Reason.IMAGE_BLOCKED
    assert "LOOKSYNC_FETCH_ALLOW_PRIVATE" in exc.value.message


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/missing.png", Reason.IMAGE_UNREACHABLE),
        ("/page.html", Reason.IMAGE_NOT_IMAGE),
        ("/lies.png", Reason.IMAGE_NOT_IMAGE),
        ("/huge.png", Reason.IMAGE_TOO_LARGE),
    ],
)
def test_bad_images_get_their_quarantine_reason(server, path, reason):
    with pytest.raises(FetchError) as exc:
        fetch_image(server + path, ALLOW)
    assert exc.value.reason is reason


def test_byte_cap_and_other_schemes(server):
    with pytest.raises(FetchError) as exc:
        fetch_image(f"{server}/ok.png", FetchPolicy(allow_private=True, max_bytes=10))
    assert exc.value.reason is Reason.IMAGE_TOO_LARGE
    with pytest.raises(FetchError) as exc:
        fetch_image("file:///etc/passwd", ALLOW)
    assert exc.value.reason is Reason.IMAGE_URL_INVALID and "only http and https" in exc.value.message


def test_redirects_are_followed_and_transient_errors_retried(server):
    assert fetch_image(f"{server}/moved", ALLOW).url.endswith("/ok.png")
    Handler.flaky_hits = 0
    assert fetch_image(f"{server}/flaky.png", ALLOW).width == 32
    assert Handler.flaky_hits == 3


def test_many_in_order_with_errors_in_place(server):
    results = fetch_images([f"{server}/ok.png", f"{server}/missing.png", f"{server}/ok.png"], ALLOW, concurrency=2)
    assert [type(r).__name__ for r in results] == ["FetchedImage", "FetchError", "FetchedImage"]


def test_pixel_bomb_is_refused_before_decoding():
    bomb = png_bytes(size=(6000, 5000), colour=(255, 255, 255))
    with pytest.raises(FetchError, match="pixels exceeds the cap"):
        check_image_bytes(bomb, FetchPolicy(max_pixels=25_000_000), "upload")


class RawHandler(__import__("socketserver").BaseRequestHandler):
    """Answers with raw bytes, so a response can lie about its length or stream past any cap."""

    CAP = 50_000

    def handle(self):
        request = self.request.recv(65536).split(b"\r\n", 1)[0]
        path = request.split(b" ")[1].decode()
        png = png_bytes()
        sock = self.request
        try:
            if path == "/chunked-huge.png":  # no length, chunk after chunk far past the cap
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(200):
                    sock.sendall(b"%x\r\n%s\r\n" % (10_000, b"\0" * 10_000))
                sock.sendall(b"0\r\n\r\n")
            elif path == "/unframed-huge.png":  # neither length nor chunks: read until close
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
                for _ in range(200):
                    sock.sendall(b"\0" * 10_000)
            elif path == "/says-small.png":  # Content-Length under the cap, body far over it
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 20\r\n\r\n" + png + b"\0" * 500_000)
            elif path == "/says-large.png":  # Content-Length promises more than is sent, then the server hangs up
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % (len(png) + 5000) + png)
        except OSError:  # the client stopped reading: what a cap is for
            pass


@pytest.fixture(scope="module")
def raw_server():
    import socketserver

    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RawHandler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/chunked-huge.png", Reason.IMAGE_TOO_LARGE),
        ("/unframed-huge.png", Reason.IMAGE_TOO_LARGE),
        ("/says-small.png", Reason.IMAGE_NOT_IMAGE),  # cut at the declared 20 bytes: a truncated PNG, never 500 kB read
        ("/says-large.png", Reason.IMAGE_UNREACHABLE),  # the body ends short of its length: incomplete, no hang
    ],
)
def test_the_streaming_byte_cap_and_lying_lengths(raw_server, path, reason):
    import time

    policy = FetchPolicy(allow_private=True, timeout_s=2, retries=0, max_bytes=RawHandler.CAP, max_pixels=4_000_000)
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch_image(f"{raw_server}{path}", policy)
    assert exc.value.reason is reason, exc.value.message
    assert time.monotonic() - started < 5
