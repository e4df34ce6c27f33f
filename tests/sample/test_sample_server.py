"""The sample server: real HTTP on loopback, content types, 404s, both port workflows."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from looksync.sample import generate_sample, serve_sample


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fixed_port_workflow_generate_first_then_serve(tmp_path, get):
    port = free_port()
    manifest = generate_sample(tmp_path, size=6, n_looks=1, image_base_url=f"http://127.0.0.1:{port}")
    with serve_sample(tmp_path, port=port) as server:
        assert server.url == manifest.image_base_url
        sku = "DT100001"
        reply = get(f"{server.url}/images/desi_threads/{sku}.png")
        assert reply.status == 200 and reply.content_type == "image/png"
        assert get(f"{server.url}/looks/look-001.png").status == 200
        assert get(f"{server.url}/images/desi_threads/").status == 404  # no directory listings
        assert get(f"{server.url}/nothing/here.png").status == 404


def test_close_stops_serving(tmp_path):
    (tmp_path / "a.html").write_text("<html></html>", encoding="utf-8")
    server = serve_sample(tmp_path)
    url = f"{server.url}/a.html"
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/html")
    server.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_a_client_that_drops_its_kept_alive_connection_leaves_no_traceback(tmp_path, capfd):
    """A fetcher's pool resets its idle connections at exit: not an error to print where it would land
    in the output of the command running beside the server (a CLI's JSON report, in the tests)."""
    import http.client
    import struct
    import time

    (tmp_path / "a.txt").write_text("x")
    with serve_sample(tmp_path) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port)
        connection.request("GET", "/a.txt")
        assert connection.getresponse().read() == b"x"  # kept alive: the server waits for the next request
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()  # a reset, not a clean close
        time.sleep(0.3)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err
