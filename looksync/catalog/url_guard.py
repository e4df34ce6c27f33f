"""The fetch guard: which image URLs LookSync may fetch, and the one address each fetch may connect to.

A URL is parsed strictly (``http``/``https`` only, no credentials, an IDNA host whose labels are 1-63
characters, a port in 1-65535, no whitespace, control characters or backslashes). Its host is resolved
once; every address it resolves to must be globally routable, IPv4 addresses embedded in IPv6 included
(IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``,
6to4 ``2002::/16``, Teredo ``2001::/32``), and no address may be multicast. The fetch then connects to
the address that was checked (``Pinned.address``), never resolving the name again, so a resolver that
answers differently the second time (DNS rebinding) cannot move the connection; TLS still verifies the
certificate against the host name. ``allow_private`` (tests, the sample's loopback image server) lifts
the address rule only; parsing and pinning stay.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_COMPATIBLE = ipaddress.ip_network("::/96")
# IANA special-purpose blocks that this Python's ``is_global`` still calls global
_NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in (
    "192.0.0.0/24",  # IETF protocol assignments (only .9 and .10 are global anycast, allowed below)
    "192.88.99.0/24",  # the deprecated 6to4 relay anycast
    "3fff::/20",  # documentation (RFC 9637)
    "5f00::/16",  # SRv6 segment identifiers
))  # fmt: skip
_GLOBAL_EXCEPTIONS = tuple(ipaddress.ip_address(a) for a in ("192.0.0.9", "192.0.0.10"))


class UrlRefused(ValueError):
    """The URL is malformed (``invalid``) or names an address the guard refuses (``blocked``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "invalid" | "blocked" | "unresolvable"


@dataclass(frozen=True)
class FetchTarget:
    """A URL as the guard parsed it: what is connected to and what is sent."""

    url: str
    scheme: str
    host: str  # lower-case ASCII (IDNA), IPv6 without brackets
    port: int
    path: str  # path and query, as sent in the request line ("/" when empty)

    @property
    def host_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Pinned:
    """A checked target and the address the connection must go to."""

    target: FetchTarget
    address: str


def parse_url(url: str) -> FetchTarget:
    """Parse ``url`` strictly; raises ``UrlRefused("invalid", ...)`` naming what is wrong."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("invalid", "empty URL")
    if len(url) > 8192:
        raise UrlRefused("invalid", f"URL of {len(url)} characters (at most 8192)")
    if _FORBIDDEN_CHARS.search(url):
        raise UrlRefused("invalid", "URL holds whitespace, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 bracket
        raise UrlRefused("invalid", f"malformed URL: {exc}") from None
    _check_authority(parts.netloc)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("invalid", f"scheme {parts.scheme or 'missing'!r}: only http and https URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("invalid", "URLs with credentials (user@host) are not fetched")
    if not hostname:
        raise UrlRefused("invalid", "URL has no host")
    if port == 0:
        raise UrlRefused("invalid", "port 0 is not a port")
    host = _normalise_host(hostname)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return FetchTarget(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def _check_authority(netloc: str) -> None:
    """What ``urlsplit`` lets through: text after an IPv6 literal's bracket other than ``:port``."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        rest = hostport.partition("]")[2]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            raise UrlRefused("invalid", f"malformed host {hostport!r}: only ':port' may follow an IPv6 address")
    elif "[" in hostport or "]" in hostport:
        raise UrlRefused("invalid", f"malformed host {hostport!r}: a bracket outside an IPv6 address")


def _normalise_host(hostname: str) -> str:
    try:
        return str(ipaddress.ip_address(hostname.split("%", 1)[0] if ":" in hostname else hostname))
    except ValueError:
        pass
    if ":" in hostname or "%" in hostname:
        raise UrlRefused("invalid", f"host {hostname!r} is neither an address nor a name")
    name = hostname.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:  # an empty or over-long label, or characters IDNA refuses
        raise UrlRefused("invalid", f"host {hostname!r} is not a valid name: {exc}") from None
    if not ascii_name or len(ascii_name) > 253:
        raise UrlRefused("invalid", f"host {hostname!r} is not a valid name (1-253 characters)")
    labels = ascii_name.split(".")
    bad = next((label for label in labels if not _HOST_LABEL.match(label)), None)
    if bad is not None:
        raise UrlRefused("invalid", f"host {hostname!r}: label {bad!r} is not 1-63 letters, digits or hyphens")
    if labels[-1].isdigit():  # "127.1", "2130706433": numeric spellings that resolvers read as IPv4
        raise UrlRefused("invalid", f"host {hostname!r} is a numeric spelling of an address, not a name")
    return ascii_name


def embedded_ipv4(address: IPAddress) -> Iterator[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.version != 6:
        return
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    value = int(address)
    if address in _COMPATIBLE and value > 1:
        yield ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if any(address in net for net in _NAT64):
        yield ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address.sixtofour is not None or address in _SIX_TO_FOUR:
        yield ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    if address.teredo is not None:
        yield from address.teredo


def refusal(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is refused, or None when it is globally routable unicast."""
    for inner in embedded_ipv4(address):
        why = refusal(inner)
        if why:
            return f"embeds the IPv4 address {inner}, which is {why}"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    nat64 = any(address in net for net in _NAT64)  # its IPv4 address was checked above
    special = any(address in net for net in _NOT_GLOBAL) and address not in _GLOBAL_EXCEPTIONS
    if not address.is_global or special or (address.is_reserved and not nat64):
        return "not globally routable (private, shared, reserved or special-purpose)"
    return None


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def pin(target: FetchTarget, *, allow_private: bool = False, resolver: Resolver = system_resolver) -> Pinned:
    """Resolve the target's host once and choose the address to connect to. Every address must pass
    (a name that resolves to one public and one private address is refused): the connection goes to
    the first."""
    if target.host_is_ip:
        addresses = [target.host]
    else:
        try:
            addresses = resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused("unresolvable", f"cannot resolve host {target.host!r}: {exc}") from None
        if not addresses:
            raise UrlRefused("unresolvable", f"host {target.host!r} resolves to no address")
    if not allow_private:
        for text in addresses:
            why = refusal(ipaddress.ip_address(text))
            if why:
                raise UrlRefused(
                    "blocked",
                    f"host {target.host!r} resolves to {text}, which is {why} "
                    "(set LOOKSYNC_FETCH_ALLOW_PRIVATE=true to allow non-public addresses)",
                )
    return Pinned(target=target, address=addresses[0])
