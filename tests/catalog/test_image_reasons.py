"""Each kind of unusable image gets its own quarantine reason and a message without object reprs."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from looksync.catalog.images import FetchError, FetchPolicy, check_image_bytes, header_size
from looksync.catalog.quarantine import Reason

POLICY = FetchPolicy(max_pixels=25_000_000)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height over a tiny compressed body: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def encoded(fmt: str, size=(40, 30)) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("size", [(30000, 30000), (100000, 300), (65535, 65535)])
def test_a_decompression_bomb_is_too_large_not_unreadable(size):
    with pytest.raises(FetchError) as caught:
        check_image_bytes(png_declaring(*size), POLICY, "bomb.png")
    assert caught.value.reason is Reason.IMAGE_TOO_LARGE
    assert f"{size[0]}x{size[1]}" in caught.value.message and "25000000" in caught.value.message


@pytest.mark.parametrize(
    "data, reason, words",
    [
        (b"", Reason.IMAGE_EMPTY, "empty"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', Reason.IMAGE_SVG, "SVG"),
        (
            b'<?xml version="1.0"?>\n<!-- logo -->\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
            Reason.IMAGE_SVG,
            "SVG",
        ),
        (b"\xef\xbb\xbf<svg></svg>", Reason.IMAGE_SVG, "SVG"),
        (b"<html><body>Not found</body></html>", Reason.IMAGE_NOT_IMAGE, "<html>"),
        (b"\x89PNG\r\n\x1a\n and then nothing", Reason.IMAGE_NOT_IMAGE, "not in an image format"),
        (encoded("PNG")[:60], Reason.IMAGE_NOT_IMAGE, "decodable"),  # a PNG cut off after its header
    ],
)
def test_unusable_bodies_get_specific_reasons_without_object_reprs(data, reason, words):
    with pytest.raises(FetchError) as caught:
        check_image_bytes(data, POLICY, "img")
    assert caught.value.reason is reason and words in caught.value.message
    assert "object at 0x" not in caught.value.message and "BytesIO" not in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_the_header_size_is_read_for_common_formats(fmt):
    assert header_size(encoded(fmt, (40, 30))) == (40, 30)
    assert check_image_bytes(encoded(fmt, (40, 30)), POLICY, "img") == (40, 30)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "PPM", "TGA", "PCX"])
def test_damaged_headers_of_every_format_are_refused_with_a_reason_never_an_error(fmt):
    """Untrusted bytes that start like an image (the first bytes of a real file of each format, then cut,
    or with their header bytes scrambled) either read or are refused with a quarantine reason; no format
    plugin's own exception escapes (a 5xx on upload, a crash in ingest)."""
    import random

    whole = encoded(fmt, (40, 30))
    rng = random.Random(fmt)
    bodies = [whole[:n] for n in range(1, min(len(whole), 120))]
    for _ in range(300):
        body = bytearray(whole[: rng.randint(4, min(len(whole), 200))])
        for _ in range(rng.randint(1, 6)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        bodies.append(bytes(body))
    for body in bodies:
        size = header_size(body)
        assert size is None or (size[0] > 0 and size[1] > 0)
        try:
            check_image_bytes(body, POLICY, "img")
        except FetchError as exc:
            assert isinstance(exc.reason, Reason) and "object at 0x" not in exc.message
