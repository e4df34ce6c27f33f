"""Guarded image fetching, shared by ingestion and image-URL queries.

One place decides what an acceptable remote image is: http(s) only; hosts that resolve to loopback,
private, link-local or otherwise reserved addresses are refused unless configuration allows them;
redirects are followed by hand so every hop is checked; timeouts, retries with backoff on transient
failures, a byte cap, a content-type check, and a pixel cap read from the header before decoding
(decompression bombs never reach the decoder).
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import image_digest
from looksync.settings import Settings

_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_MAX_REDIRECTS = 3


class FetchError(Exception):
    def __init__(self, reason: Reason, url: str, message: str):
        super().__init__(f"{url}: {message}")
        self.reason = reason
        self.url = url
        self.message = message


@dataclass(frozen=True)
class FetchedImage:
    url: str
    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return image_digest(self.data)


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.2
    allow_private: bool = False
    max_bytes: int = 10_000_000
    max_pixels: int = 25_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            timeout_s=settings.fetch_timeout_s,
            retries=settings.fetch_retries,
            allow_private=settings.fetch_allow_private,
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
        )


def check_image_bytes(data: bytes, policy: FetchPolicy, source: str) -> tuple[int, int]:
    """Validate that bytes are a decodable image within the pixel cap; returns (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > policy.max_bytes:
        raise FetchError(Reason.IMAGE_TOO_LARGE, source, f"{len(data)} bytes exceeds the cap of {policy.max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size  # header only: nothing decoded yet
            if width * height > policy.max_pixels:
                raise FetchError(
                    Reason.IMAGE_TOO_LARGE,
                    source,
                    f"{width}x{height} = {width * height} pixels exceeds the cap of {policy.max_pixels}",
                )
            img.verify()
    except FetchError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FetchError(Reason.IMAGE_NOT_IMAGE, source, f"not a decodable image: {exc}") from exc
    return width, height


def _check_host(url: str, policy: FetchPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(Reason.IMAGE_BLOCKED, url, "only http(s) URLs with a host are fetched")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"cannot resolve host: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise FetchError(
                Reason.IMAGE_BLOCKED,
                url,
                f"host resolves to non-public address {address} (set LOOKSYNC_FETCH_ALLOW_PRIVATE=true to allow)",
            )


def _get_once(session: requests.Session, url: str, policy: FetchPolicy) -> FetchedImage:
    for _ in range(_MAX_REDIRECTS + 1):
        _check_host(url, policy)
        try:
            resp = session.get(url, timeout=policy.timeout_s, stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"request failed: {exc.__class__.__name__}: {exc}") from exc
        with resp:
            if resp.is_redirect and resp.headers.get("location"):
                url = urljoin(url, resp.headers["location"])
                continue
            if resp.status_code != 200:
                raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"HTTP {resp.status_code}")
            content_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise FetchError(Reason.IMAGE_NOT_IMAGE, url, f"content type {content_type or 'missing'!r}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(Reason.IMAGE_TOO_LARGE, url, f"{declared} bytes exceeds the cap of {policy.max_bytes}")
            buf = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                buf.extend(chunk)
                if len(buf) > policy.max_bytes:
                    raise FetchError(Reason.IMAGE_TOO_LARGE, url, f"body exceeds the cap of {policy.max_bytes} bytes")
        data = bytes(buf)
        width, height = check_image_bytes(data, policy, url)
        return FetchedImage(url=url, data=data, content_type=content_type, width=width, height=height)
    raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"more than {_MAX_REDIRECTS} redirects")


def _is_transient(err: FetchError) -> bool:
    if err.reason is not Reason.IMAGE_UNREACHABLE:
        return False
    return err.message.startswith("request failed") or any(f"HTTP {s}" == err.message for s in _TRANSIENT_STATUS)


def fetch_image(url: str, policy: FetchPolicy, session: requests.Session | None = None) -> FetchedImage:
    """Fetch one image under the policy; raises FetchError with a quarantine reason."""
    session = session or requests.Session()
    attempt = 0
    while True:
        try:
            return _get_once(session, url, policy)
        except FetchError as err:
            if attempt >= policy.retries or not _is_transient(err):
                raise
            time.sleep(policy.backoff_s * (2**attempt))
            attempt += 1


def fetch_images(
    urls: Iterable[str], policy: FetchPolicy, concurrency: int = 8
) -> list[FetchedImage | FetchError]:
    """Fetch many images with bounded concurrency; results are in input order."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency)
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def one(url: str) -> FetchedImage | FetchError:
        try:
            return fetch_image(url, policy, session)
        except FetchError as err:
            return err

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, urls))
