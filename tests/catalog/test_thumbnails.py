"""Thumbnails: size, EXIF orientation, transparency, modes, undecodable bytes; the content-addressed
store on a local directory and on S3 (moto's real server on loopback)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from looksync.catalog.object_store import LocalStore
from looksync.catalog.schema import image_digest
from looksync.catalog.thumbnails import THUMBNAIL_MAX_SIDE, ThumbnailError, ThumbnailStore, make_thumbnail
from looksync.settings import load_settings

RED, BLUE, GREEN, WHITE = (220, 20, 20), (20, 20, 220), (20, 180, 20), (255, 255, 255)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int], left, right, mode: str = "RGB") -> Image.Image:
    """An image whose left half is ``left`` and right half ``right``."""
    width, height = size
    image = Image.new(mode, size, left)
    image.paste(Image.new(mode, (width - width // 2, height), right), (width // 2, 0))
    return image


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.mode == "RGB"
    return image


def near(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1000, 500), (256, 128)), ((300, 900), (85, 256)), ((256, 256), (256, 256)), ((100, 60), (100, 60))],
)
def test_longest_side_is_capped_and_never_enlarged(size, expected):
    assert decoded(make_thumbnail(encode(Image.new("RGB", size, RED)))).size == expected


def test_large_jpeg_is_small_and_keeps_its_colours():
    photo = halves((3000, 2000), RED, BLUE)
    source = encode(photo, "JPEG", quality=95)
    thumb = make_thumbnail(source)
    image = decoded(thumb)
    assert image.size == (THUMBNAIL_MAX_SIDE, 171) and len(thumb) < len(source) / 10
    assert near(image.getpixel((20, 85)), RED) and near(image.getpixel((235, 85)), BLUE)


@pytest.mark.parametrize(
    ("orientation", "size", "top", "bottom"),
    [
        (6, (128, 256), RED, BLUE),  # stored landscape, shown rotated 90 degrees clockwise: left half on top
        (8, (128, 256), BLUE, RED),  # rotated 90 degrees counter-clockwise: right half on top
        (1, (256, 128), None, None),  # upright: as stored
    ],
)
def test_exif_orientation_is_applied(orientation, size, top, bottom):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = encode(halves((600, 300), RED, BLUE), "JPEG", quality=95, exif=exif)
    image = decoded(make_thumbnail(stored))
    assert image.size == size
    assert not image.getexif().get(0x0112)  # the thumbnail is upright: no orientation left to apply twice
    if top is not None:
        assert near(image.getpixel((64, 20)), top) and near(image.getpixel((64, 235)), bottom)


def test_transparency_is_flattened_onto_white():
    rgba = halves((400, 200), (0, 0, 0, 0), (*GREEN, 255), mode="RGBA")  # transparent black | opaque green
    image = decoded(make_thumbnail(encode(rgba)))
    assert near(image.getpixel((30, 64)), WHITE, 8) and near(image.getpixel((225, 64)), GREEN)

    palette = halves((200, 100), 0, 1, mode="P")
    palette.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    gif = encode(palette, "GIF", transparency=0)  # palette index 0 (black) transparent
    image = decoded(make_thumbnail(gif))
    assert near(image.getpixel((20, 50)), WHITE, 8) and near(image.getpixel((180, 50)), GREEN)

    grey_alpha = halves((200, 100), (0, 0), (90, 255), mode="LA")
    image = decoded(make_thumbnail(encode(grey_alpha)))
    assert near(image.getpixel((20, 50)), WHITE, 8) and near(image.getpixel((180, 50)), (90, 90, 90))


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "I;16"])
def test_other_modes_become_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decoded(make_thumbnail(encode(Image.new(mode, (300, 150)), fmt))).size == (256, 128)


@pytest.mark.parametrize("data", [b"", b"<html>not an image</html>", encode(Image.new("RGB", (50, 50)))[:60]])
def test_undecodable_bytes_raise_thumbnail_error(data):
    with pytest.raises(ThumbnailError, match="not a decodable image"):
        make_thumbnail(data)


def test_same_image_same_bytes():
    source = encode(halves((640, 480), RED, BLUE), "JPEG")
    assert make_thumbnail(source) == make_thumbnail(source)


def test_store_is_content_addressed_and_writes_an_image_once(tmp_path):
    store = ThumbnailStore(LocalStore(tmp_path / "thumbnails"))
    image = encode(halves((800, 400), RED, BLUE))
    image_hash = image_digest(image)
    assert store.get(image_hash) is None and not store.exists(image_hash)

    assert store.ensure(image_hash, image) is True
    path = tmp_path / "thumbnails" / image_hash[:2] / f"{image_hash}.jpg"
    written = path.stat().st_mtime_ns
    assert store.get(image_hash) == path.read_bytes() == make_thumbnail(image)
    # the same image again (another product, vendor or run): nothing made, nothing written
    assert store.ensure(image_hash, image) is False
    assert path.stat().st_mtime_ns == written
    assert list(store.objects.list()) == [f"{image_hash[:2]}/{image_hash}.jpg"]

    for bad in ("../../etc/passwd", image_hash.upper(), image_hash + "\n", image_hash[:-1]):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            store.get(bad)


def test_ensure_many_records_failures_and_keeps_going(tmp_path):
    store = ThumbnailStore.from_settings(load_settings(data_dir=tmp_path))
    assert store.uri == (tmp_path / "thumbnails").resolve().as_uri()
    good = {image_digest(b): b for b in (encode(Image.new("RGB", (300, 300), c)) for c in (RED, BLUE))}
    broken = b"GIF89a not really"
    run = store.ensure_many({**good, image_digest(broken): broken}, concurrency=2)
    assert sorted(run.written) == sorted(good) and not run.existing
    assert list(run.failed) == [image_digest(broken)] and "not a decodable image" in run.failed[image_digest(broken)]
    assert run.counts() == {"written": 2, "existing": 0, "failed": 1}
    again = store.ensure_many(good)
    assert again.counts() == {"written": 0, "existing": 2, "failed": 0}


def test_store_on_s3_when_a_bucket_is_configured(tmp_path, s3_bucket, s3_endpoint):
    client, bucket = s3_bucket
    settings = load_settings(data_dir=tmp_path, s3_bucket=bucket, s3_endpoint_url=s3_endpoint, s3_prefix="prod")
    store = ThumbnailStore.from_settings(settings)
    assert store.uri == f"s3://{bucket}/prod/thumbnails"
    image = encode(Image.new("RGB", (500, 500), GREEN))
    image_hash = image_digest(image)
    assert store.get(image_hash) is None
    assert store.ensure_many({image_hash: image}).counts() == {"written": 1, "existing": 0, "failed": 0}
    body = client.get_object(Bucket=bucket, Key=f"prod/thumbnails/{image_hash[:2]}/{image_hash}.jpg")["Body"].read()
    assert decoded(body).size == (256, 256) and store.get(image_hash) == body
    assert store.ensure(image_hash, image) is False
    assert not (tmp_path / "thumbnails").exists()
