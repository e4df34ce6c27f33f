"""What gunicorn answers before Flask sees a request, and the body caps while reading, against a real
gunicorn (``looksync serve``: infra/gunicorn.conf.py, the JSON-error worker) on loopback, over raw
sockets so the requests can be as malformed as a hostile client makes them. Every answer is JSON in the
service's error shape, and none is a 5xx."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import requests

from looksync.demo import free_port, start_service, stop_service, wait_ready

CAP = 200_000  # LOOKSYNC_MAX_UPLOAD_BYTES for this service


@pytest.fixture(scope="module")
def service(built_catalog):
    port = free_port()
    env = {**built_catalog.env, "LOOKSYNC_MAX_UPLOAD_BYTES": str(CAP), "GUNICORN_THREADS": "4"}
    proc = start_service(env, port, built_catalog.root / "gunicorn-limits.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc=proc)
        yield port
    finally:
        stop_service(proc)


def exchange(port: int, head: bytes, body_parts: list[bytes] = (), half_close: bool = False) -> tuple[int, dict, bytes]:
    """Send ``head`` then the body parts (from a thread, so a server that answers before reading it all is
    heard), read the whole answer: (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def send():
        try:
            sock.sendall(head)
            for part in body_parts:
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking it all
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                header_blob, _, rest = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in header_blob.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)  # fmt: skip
                if length is not None and len(rest) >= length:
                    break
    except ConnectionResetError:
        pass
    finally:
        sender.join(10)
        sock.close()
    assert data, "no answer"
    header_blob, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_blob.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def json_error(status: int, headers: dict, body: bytes) -> dict:
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] and error["message"]
    return error


def test_a_10000_character_path_is_a_json_414(service):
    status, headers, body = exchange(service, b"GET /v1/products/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414
    assert json_error(status, headers, body)["code"] == "uri_too_long"
    # under the line limit a long id is the app's to refuse: 400 naming the path parameter, JSON
    resp = requests.get(f"http://127.0.0.1:{service}/v1/products/{'a' * 3000}", timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "product_id"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"BR\x00KEN / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST /v1/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         400),
    ],
    ids=["150-headers", "9000-byte-header", "content-length-abc", "content-length-negative", "nul-in-method",
         "gzip-transfer-coding", "bad-chunk-size"],  # fmt: skip
)
def test_what_gunicorn_refuses_is_json(service, head, status):
    got, headers, body = exchange(service, head, half_close=True)
    assert got == status
    json_error(got, headers, body)


def test_a_chunked_body_over_the_cap_is_413(service):
    head = b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b'{"text": "' + b"a" * 65_000
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 8 + [b"0\r\n\r\n"]  # 520 kB, over the 200 kB cap
    status, headers, body = exchange(service, head, parts)
    assert status == 413 and json_error(status, headers, body)["code"] == "request_entity_too_large"
    # a multipart upload sent chunked: the same cap, the same 413
    form_head = (b"POST /v1/looks/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    form = b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + b"\0" * 300_000
    status, headers, body = exchange(service, form_head, [b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form)])
    assert status == 413 and json_error(status, headers, body)["code"] == "request_entity_too_large"
    # the same shape under the cap is read whole and parsed: a 400 for the field (text over 500 characters)
    small = b'{"text": "' + b"a" * 1000 + b'"}'
    status, headers, body = exchange(service, head, [b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small)])
    assert status == 400 and json_error(status, headers, body)["field"] == "text"


def test_a_lying_content_length(service):
    post = b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    # declared over the cap: refused before reading
    status, headers, body = exchange(service, post % (CAP + 1), [b"{}"], half_close=True)
    assert status == 413 and json_error(status, headers, body)
    # declares more than it sends, then stops sending: the body ends short (400), not a hung or failed worker
    status, headers, body = exchange(service, post % 1000, [b'{"text": "navy'], half_close=True)
    assert status == 400 and json_error(status, headers, body)
    # declares less than it sends: the body is cut there (not JSON: 400); the rest is no second request
    status, headers, body = exchange(service, post % 5, [b'{"text": "navy t-shirt"}'], half_close=True)
    assert status == 400 and json_error(status, headers, body)["code"] == "invalid_json"
    assert requests.get(f"http://127.0.0.1:{service}/healthz", timeout=10).status_code == 200


def test_deep_json_and_bad_text_over_http(service):
    base = f"http://127.0.0.1:{service}"
    deep = "[" * 10_000 + "]" * 10_000
    for route in ("/v1/search", "/v1/looks/search", "/v1/judgments"):
        resp = requests.post(base + route, data=deep, headers={"Content-Type": "application/json"}, timeout=10)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "json_too_deep", (route, resp.text[:200])
    resp = requests.post(base + "/v1/looks/search", files={"image": ("x.png", b"\x89PNG", "image/png")},
                         data={"params": deep}, timeout=10)  # fmt: skip
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "params"
    resp = requests.post(base + "/v1/search", data=b'{"text": "\\ud800"}', headers={"Content-Type": "application/json"},
                         timeout=10)  # fmt: skip
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "text"
    resp = requests.get(base + "/v1/products/x/similar?price_min=NaN", timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "price_min"
