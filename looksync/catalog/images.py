"""Guarded image fetching, shared by ingestion and image-URL queries.

One place decides what an acceptable remote image is: the fetch guard (``url_guard``: strict URL
parsing, every resolved address globally routable, IPv4 embedded in IPv6 included, unless configuration
allows private addresses) and a connection pinned to the address it checked (no second DNS lookup, no
proxy from the environment); redirects are followed by hand so every hop is checked; timeouts, retries with backoff on transient
failures, a byte cap, a content-type check, and a pixel cap read from the header before decoding
(decompression bombs never reach the decoder).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import certifi
import urllib3

from looksync.catalog.quarantine import Reason
from looksync.catalog.schema import image_digest
from looksync.catalog.url_guard import Pinned, UrlRefused, parse_url, pin
from looksync.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image
    from PIL.ImageFile import ImageFile

_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_MAX_REDIRECTS = 3
USER_AGENT = "LookSync-image-fetcher/1"


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

    @cached_property  # computed once (a frozen dataclass still has a __dict__ for it)
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
    max_seconds: float = 60.0  # a whole fetch, redirects and a slow body included
    # decode the whole image and refuse one with nothing visible (ingestion: a product image must show
    # the product); off for looks sent to the service, whose checks stay at the header
    refuse_blank: bool = False

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
    """Validate that bytes are a decodable image within the byte and pixel caps; returns (width, height).

    The pixel cap is checked on the size the format's header declares, before Pillow's ``Image.open``
    (whose own decompression-bomb limit would otherwise fire first and hide the reason). Each refusal
    has its own reason: ``image_empty``, ``image_svg``, ``image_too_large``, ``image_not_image``, and with
    ``policy.refuse_blank`` ``image_blank`` (decoded as ``looksync.catalog.pixels.to_rgb`` sees it)."""
    from PIL import Image

    if not data:
        raise FetchError(Reason.IMAGE_EMPTY, source, "the body is empty (0 bytes)")
    if len(data) > policy.max_bytes:
        raise FetchError(Reason.IMAGE_TOO_LARGE, source, f"{len(data)} bytes exceeds the cap of {policy.max_bytes}")
    if looks_like_svg(data):
        raise FetchError(
            Reason.IMAGE_SVG, source, "an SVG (vector) image: only raster images (JPEG, PNG, WebP, ...) are embedded"
        )
    opened = _open_header(data)
    if opened is None:
        raise FetchError(
            Reason.IMAGE_NOT_IMAGE, source, f"not in an image format that can be read (starts with {data[:16]!r})"
        )
    with opened as img:  # the format plugin that read the header verifies the rest (one open, not two)
        width, height = int(img.size[0]), int(img.size[1])
        if width * height > policy.max_pixels:
            raise FetchError(
                Reason.IMAGE_TOO_LARGE,
                source,
                f"{width}x{height} = {width * height} pixels exceeds the cap of {policy.max_pixels}",
            )
        try:
            img.verify()
        except Image.DecompressionBombError as exc:  # the header check above should make this unreachable
            raise FetchError(Reason.IMAGE_TOO_LARGE, source, f"over the decoder's pixel limit: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise FetchError(Reason.IMAGE_NOT_IMAGE, source, f"not a decodable image: {_plain(exc)}") from exc
    if policy.refuse_blank:
        _refuse_blank(data, source)
    return width, height


def _refuse_blank(data: bytes, source: str) -> None:
    # JPEG: a 1/8 decode is enough to see whether anything shows (is_blank looks at 64 px)
    decode_visible(data, source, draft=(64, 64))


def decode_visible(data: bytes, source: str, draft: tuple[int, int] | None = None) -> Image:
    """The RGB image a viewer sees (``looksync.catalog.pixels.to_rgb``), refused when nothing shows in it
    (``image_blank``) or it does not decode (``image_not_image``). ``draft``: let JPEG decode at a reduced
    scale still at least this size. Call it on bytes that passed ``check_image_bytes`` (its caps bound
    the decode); ingestion calls it once per image and makes the thumbnail and the model's pixels from
    what it returns."""
    from PIL import Image

    from looksync.catalog.pixels import is_blank, to_rgb

    try:
        with Image.open(io.BytesIO(data)) as img:
            if draft is not None:
                img.draft("RGB", draft)
            rgb = to_rgb(img)
            rgb.load()  # to_rgb may hand back the opened image itself: decode it before the file closes
            if img.mode in ("RGB", "RGBA") and "icc_profile" in img.info:  # what a thumbnail keeps
                rgb.info.setdefault("icc_profile", img.info["icc_profile"])
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise FetchError(Reason.IMAGE_NOT_IMAGE, source, f"not a decodable image: {_plain(exc)}") from exc
    if is_blank(rgb):
        colour = rgb.getpixel((0, 0))
        raise FetchError(
            Reason.IMAGE_BLANK, source, f"nothing visible: the whole image is one colour {colour} (or fully transparent)"
        )
    return rgb


def looks_like_svg(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<svg") or (
        head.startswith((b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in data[:4096].lower()
    )


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image's header declares it, read by Pillow's format plugins without the
    decompression-bomb check of ``Image.open`` (nothing is decoded); None when no format reads it."""
    opened = _open_header(data)
    if opened is None:
        return None
    with opened as image:
        return int(image.size[0]), int(image.size[1])


def _open_header(data: bytes) -> ImageFile | None:
    """The image as the first format plugin that reads a positive size from its header opens it (what
    ``Image.open`` does, less its decompression-bomb check; nothing is decoded); None when none does."""
    from PIL import Image

    prefix = data[:16]
    for loaded in (Image.preinit, Image.init):
        loaded()
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            # a format plugin reading untrusted bytes may fail in any way (SyntaxError, struct.error, KeyError,
            # ZeroDivisionError...): that format cannot read them, which is all this answers
            try:
                if accept is not None and not accept(prefix):
                    continue
                image = factory(io.BytesIO(data), "")
                size = image.size
            except Exception:  # noqa: BLE001 - see above
                continue
            if size[0] > 0 and size[1] > 0:
                return image
            image.close()
    return None


def _plain(exc: BaseException) -> str:
    """An exception's message without object reprs (``<_io.BytesIO object at 0x...>``)."""
    return re.sub(r"<[\w.]+ object at 0x[0-9a-f]+>", "the data", str(exc)) or type(exc).__name__


def _guarded(url: str, policy: FetchPolicy) -> Pinned:
    """Parse and pin ``url`` under the policy; the guard's refusals become quarantine reasons."""
    try:
        return pin(parse_url(url), allow_private=policy.allow_private)
    except UrlRefused as exc:
        reason = {"invalid": Reason.IMAGE_URL_INVALID, "blocked": Reason.IMAGE_BLOCKED}.get(exc.kind, Reason.IMAGE_UNREACHABLE)
        raise FetchError(reason, url, str(exc)) from None


class PinnedPools:
    """urllib3 connection pools that connect to the address the guard checked, one pool per (scheme,
    address, port, host name): keep-alive across fetches of one host, TLS verified against the host
    name, no second DNS lookup, and no proxy taken from the environment."""

    def __init__(self, maxsize: int = 8):
        self.maxsize = maxsize
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, pinned: Pinned) -> urllib3.HTTPConnectionPool:
        target = pinned.target
        key = (target.scheme, pinned.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if target.scheme == "https":
                    tls = {} if target.host_is_ip else {"server_hostname": target.host, "assert_hostname": target.host}
                    pool = urllib3.HTTPSConnectionPool(pinned.address, target.port, maxsize=self.maxsize, block=False,
                                                       cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **tls)  # fmt: skip
                else:
                    pool = urllib3.HTTPConnectionPool(pinned.address, target.port, maxsize=self.maxsize, block=False)
                self._pools[key] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _get_once(pools: PinnedPools, url: str, policy: FetchPolicy) -> FetchedImage:
    started = time.monotonic()
    for _ in range(_MAX_REDIRECTS + 1):
        pinned = _guarded(url, policy)  # every hop: parsed, resolved once, checked, pinned
        headers = {"Host": pinned.target.host_header, "Accept": "image/*", "User-Agent": USER_AGENT}
        try:
            resp = pools.pool(pinned).urlopen(
                "GET", pinned.target.path, headers=headers, redirect=False, retries=False, preload_content=False,
                assert_same_host=False, timeout=urllib3.Timeout(connect=policy.timeout_s, read=policy.timeout_s),
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"request failed: {exc.__class__.__name__}: {exc}") from exc
        complete = False  # only a fully read body gives its connection back to the pool
        try:
            location = resp.headers.get("location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            if resp.status != 200:
                raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"HTTP {resp.status}")
            content_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise FetchError(Reason.IMAGE_NOT_IMAGE, url, f"content type {content_type or 'missing'!r}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(Reason.IMAGE_TOO_LARGE, url, f"{declared} bytes exceeds the cap of {policy.max_bytes}")
            buf = bytearray()
            try:
                for chunk in resp.stream(64 * 1024):
                    buf.extend(chunk)
                    if len(buf) > policy.max_bytes:
                        raise FetchError(Reason.IMAGE_TOO_LARGE, url, f"body exceeds the cap of {policy.max_bytes} bytes")
                    if time.monotonic() - started > policy.max_seconds:
                        raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"request failed: slower than {policy.max_seconds:g} s")
            except urllib3.exceptions.HTTPError as exc:
                raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"request failed: {exc.__class__.__name__}: {exc}") from exc
            complete = True
        finally:
            if complete:
                resp.release_conn()
            else:
                resp.close()
        data = bytes(buf)
        width, height = check_image_bytes(data, policy, url)
        return FetchedImage(url=url, data=data, content_type=content_type, width=width, height=height)
    raise FetchError(Reason.IMAGE_UNREACHABLE, url, f"more than {_MAX_REDIRECTS} redirects")


def _is_transient(err: FetchError) -> bool:
    if err.reason is not Reason.IMAGE_UNREACHABLE:
        return False
    return err.message.startswith("request failed") or any(f"HTTP {s}" == err.message for s in _TRANSIENT_STATUS)


def fetch_image(url: str, policy: FetchPolicy, pools: PinnedPools | None = None) -> FetchedImage:
    """Fetch one image under the policy; raises FetchError with a quarantine reason."""
    own = pools is None
    pools = pools or PinnedPools(maxsize=1)
    attempt = 0
    try:
        while True:
            try:
                return _get_once(pools, url, policy)
            except FetchError as err:
                if attempt >= policy.retries or not _is_transient(err):
                    raise
                time.sleep(policy.backoff_s * (2**attempt))
                attempt += 1
    finally:
        if own:
            pools.close()


def fetch_images(
    urls: Iterable[str], policy: FetchPolicy, concurrency: int = 8
) -> list[FetchedImage | FetchError]:
    """Fetch many images with bounded concurrency; results are in input order."""
    pools = PinnedPools(maxsize=concurrency)

    def one(url: str) -> FetchedImage | FetchError:
        try:
            return fetch_image(url, policy, pools)
        except FetchError as err:
            return err

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, urls))
    finally:
        pools.close()
