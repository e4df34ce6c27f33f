"""The fetch guard against every spelling of an internal address, malformed URLs, and DNS rebinding.

The end-to-end cases fetch through ``fetch_image`` with a loopback listener standing in for an internal
service: it must never see a connection (no request leaves for loopback unless private addresses are
allowed)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from looksync.catalog.images import FetchError, FetchPolicy, fetch_image
from looksync.catalog.quarantine import Reason
from looksync.catalog.url_guard import UrlRefused, embedded_ipv4, parse_url, pin, refusal

# internal addresses in every spelling a hostile client has tried or might: IPv4, IPv6, IPv4 inside IPv6
INTERNAL = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "192.0.0.8", "198.18.0.1", "240.0.0.1",
    "192.88.99.1", "233.252.0.1", "192.0.2.1", "3fff::1", "5f00::1", "2001:db8::1", "100::1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:7f00:1",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1", "::a9fe:a9fe",  # IPv4-compatible
    "64:ff9b::127.0.0.1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::7f00:1",  # NAT64
    "2002:7f00:1::", "2002:a00:1::1", "2002:c0a8:101::",  # 6to4
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
]  # fmt: skip
PUBLIC = ["93.184.216.34", "8.8.8.8", "192.0.0.9", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
          "64:ff9b::808:808"]  # NAT64 of a public IPv4 address


@pytest.mark.parametrize("address", INTERNAL)
def test_every_internal_address_is_refused(address):
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_passes(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_ipv4_embedded_in_ipv6_is_found_in_each_form():
    cases = {"::ffff:127.0.0.1": "127.0.0.1", "::10.0.0.1": "10.0.0.1", "64:ff9b::a9fe:a9fe": "169.254.169.254",
             "2002:c0a8:101::": "192.168.1.1", "2001:0:4136:e378:8000:63bf:80ff:fffe": "127.0.0.1"}  # fmt: skip
    for outer, inner in cases.items():
        assert ipaddress.ip_address(inner) in set(embedded_ipv4(ipaddress.ip_address(outer))), outer
    assert "embeds the IPv4 address 127.0.0.1" in refusal(ipaddress.ip_address("64:ff9b::7f00:1"))


MALFORMED = [
    "http://example.com:99999/a.png", "http://example.com:-1/a.png", "http://example.com:http/a.png",
    "http://example.com:0/a.png", "http://[::1/a.png", "http://[::1]x/a.png", "http://::1]/a.png",
    "http://" + "a" * 64 + ".example.com/a.png", "http://a..example.com/a.png", "http:///a.png", "http://:80/a.png",
    "http://" + ("abc." * 70) + "com/a.png", "http://exa mple.com/a.png", "http://example.com\\@127.0.0.1/",
    "http://user:pw@example.com/a.png", "ftp://example.com/a.png", "gopher://example.com:70/", "data:image/png;base64,AA",
    "file:///etc/passwd", "//example.com/a.png", "javascript:alert(1)", "http://exa\u0000mple.com/", "",
    "http://127.1/a.png", "http://2130706433/a.png", "http://0x7f.1/a.png", "http://ex_ample-.com/",
]  # fmt: skip


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_are_refused_as_invalid(url):
    with pytest.raises(UrlRefused) as exc:
        parse_url(url)
    assert exc.value.kind == "invalid" and str(exc.value)


def test_idna_hosts_and_ports_are_normalised():
    target = parse_url("https://Bücher.Example:8443/p/x.png?w=1")
    assert (target.host, target.port, target.path) == ("xn--bcher-kva.example", 8443, "/p/x.png?w=1")
    assert target.host_header == "xn--bcher-kva.example:8443"
    assert parse_url("http://[2606:4700:4700::1111]/a").host_header == "[2606:4700:4700::1111]"
    assert parse_url("http://example.com").path == "/"


@pytest.fixture
def loopback_listener():
    """A TCP listener on loopback that counts connections: the internal service nothing may reach."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    seen: list[tuple] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            seen.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], seen
    stop.set()
    thread.join()
    sock.close()


POLICY = FetchPolicy(timeout_s=1, retries=0)


def _spellings(port: int) -> list[str]:
    hosts = ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]",
             "[2002:7f00:1::]", "localhost", "LOCALHOST.", "127.0.0.1.nip.io"]  # fmt: skip
    return [f"http://{host}:{port}/a.png" for host in hosts]


def test_no_spelling_of_loopback_reaches_the_listener(loopback_listener):
    port, seen = loopback_listener
    for url in _spellings(port):
        with pytest.raises(FetchError) as exc:
            fetch_image(url, POLICY)
        assert exc.value.reason in (Reason.IMAGE_BLOCKED, Reason.IMAGE_UNREACHABLE), (url, exc.value)
    assert seen == []


def test_a_resolver_that_rebinds_to_loopback_cannot_move_the_connection(monkeypatch, loopback_listener):
    """The first answer is public (checked), the second loopback: the connection goes to the checked
    address (unreachable here), never to the second answer."""
    port, seen = loopback_listener
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.example":
            address = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(FetchError) as exc:
        fetch_image(f"http://rebind.example:{port}/a.png", FetchPolicy(timeout_s=0.5, retries=0))
    assert exc.value.reason is Reason.IMAGE_UNREACHABLE  # it tried the checked public address only
    # a retry resolves again: the loopback answer is then checked and refused, not connected to
    with pytest.raises(FetchError) as exc:
        fetch_image(f"http://rebind.example:{port}/a.png", FetchPolicy(timeout_s=0.5, retries=0))
    assert exc.value.reason is Reason.IMAGE_BLOCKED
    assert seen == []


def test_a_name_with_any_internal_answer_is_refused():
    def mixed(host, port):
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(UrlRefused) as exc:
        pin(parse_url("http://mixed.example/a.png"), resolver=mixed)
    assert exc.value.kind == "blocked" and "10.0.0.5" in str(exc.value)
    pinned = pin(parse_url("http://ok.example/a.png"), resolver=lambda h, p: ["93.184.216.34", "2606:4700::1"])
    assert pinned.address == "93.184.216.34"


def test_allowing_private_addresses_still_parses_strictly_and_pins(loopback_listener):
    port, seen = loopback_listener
    with pytest.raises(UrlRefused):
        pin(parse_url(f"http://127.0.0.1:{port}:1/"), allow_private=True)
    assert pin(parse_url(f"http://localhost:{port}/"), allow_private=True).address in ("127.0.0.1", "::1")


def test_proxy_variables_are_not_used_for_fetches(monkeypatch, loopback_listener):
    """A proxy in the environment pointing at an internal host gets no connection: fetches go direct."""
    port, seen = loopback_listener
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    with pytest.raises(FetchError) as exc:
        fetch_image("http://93.184.216.34:9/a.png", FetchPolicy(timeout_s=0.5, retries=0))
    assert exc.value.reason is Reason.IMAGE_UNREACHABLE
    assert seen == []
