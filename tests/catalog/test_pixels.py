"""Images decoded faithfully: decoded pixels compared with the ones a viewer sees, for every kind of
image vendors send, through the one helper that ingestion, the encoder and the service share."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.images import FetchError, FetchPolicy, check_image_bytes
from looksync.catalog.pixels import is_blank, to_rgb
from looksync.catalog.quarantine import Reason

INGEST = FetchPolicy(refuse_blank=True)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(to_rgb(Image.open(io.BytesIO(data))), dtype=np.int16)


def test_16_bit_greyscale_is_scaled_not_clipped_to_white():
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16)
    data = encode(Image.fromarray(np.tile(ramp, (8, 1))))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pixels = decoded(data)
    expected = np.round(ramp / 257).astype(np.int16)
    assert np.abs(pixels[0, :, 0] - expected).max() <= 1
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.mean() == pytest.approx(127.5, abs=1)  # plain convert("RGB") gives ~254: almost all white
    check_image_bytes(data, INGEST, "grey16.png")  # not blank


def test_a_palette_image_with_a_transparent_index_is_composited_on_white():
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red (made transparent), 1 blue
    image.paste(1, (0, 0, 5, 10))
    pixels = decoded(encode(image, transparency=0))
    assert tuple(pixels[0, 0]) == (0, 0, 255) and tuple(pixels[0, 9]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_is_composited_on_white(mode):
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 128)).convert(mode)  # half-transparent black
    image.putpixel((0, 0), (0, 255) if mode == "LA" else (0, 0, 0, 255))  # one opaque black pixel
    pixels = decoded(encode(image))
    assert tuple(pixels[0, 0]) == (0, 0, 0)
    assert np.abs(pixels[1, 1] - 127).max() <= 1  # black at half alpha over white: mid grey


def test_a_fully_transparent_image_is_blank_whatever_colour_it_hides():
    hidden = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    hidden.paste((0, 0, 255, 0), (0, 0, 32, 64))  # colour data nobody can see
    data = encode(hidden)
    assert (decoded(data) == 255).all()
    with pytest.raises(FetchError) as caught:
        check_image_bytes(data, INGEST, "clear.png")
    assert caught.value.reason is Reason.IMAGE_BLANK and "nothing visible" in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_single_colour_image_is_blank_and_a_small_product_on_white_is_not(fmt):
    plain = Image.new("RGB", (300, 200), (240, 240, 240))
    with pytest.raises(FetchError, match="one colour"):
        check_image_bytes(encode(plain, fmt), INGEST, "plain")
    product = plain.copy()
    product.paste((20, 33, 94), (140, 90, 160, 110))  # a small navy item on a white packshot
    check_image_bytes(encode(product, fmt), INGEST, "product")
    check_image_bytes(encode(plain, fmt), FetchPolicy(), "a look sent to the service")  # only ingestion refuses


def test_cmyk_is_converted_to_rgb():
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    cyan.paste((0, 0, 0, 255), (0, 0, 4, 8))  # black half
    pixels = decoded(encode(cyan, "JPEG", quality=95))
    assert np.abs(pixels[0, 7] - (0, 255, 255)).max() <= 8 and np.abs(pixels[0, 0]).max() <= 8


def test_cmyk_with_an_unusable_profile_still_converts(caplog):
    image = Image.new("CMYK", (8, 8), (0, 255, 0, 0))  # magenta
    image.info["icc_profile"] = b"not an icc profile"
    assert np.abs(np.asarray(to_rgb(image), dtype=np.int16)[0, 0] - (255, 0, 255)).max() <= 2
    assert "ICC profile not usable" in caplog.text


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored left edge becomes the top
    pixels = decoded(encode(stored, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {})))
    assert pixels.shape[:2] == (40, 20)  # portrait now
    assert np.abs(pixels[2, 10] - (255, 0, 0)).max() <= 12 and np.abs(pixels[37, 10] - (0, 0, 255)).max() <= 12


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 3
    image.seek(2)  # a caller left it on another frame
    assert np.abs(np.asarray(to_rgb(image), dtype=np.int16)[8, 8] - (255, 0, 0)).max() <= 10


def test_the_encoder_and_the_service_decode_through_the_same_helper(tmp_path):
    from embeddings.pipeline import open_image
    from looksync.settings import load_settings
    from serving.inputs import load_image

    image = Image.fromarray(np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1)))
    packshot = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    packshot.paste((200, 30, 40, 255), (16, 16, 48, 48))
    for data in (encode(image), encode(packshot)):
        expected = decoded(data)
        assert (np.asarray(open_image(data, 0), dtype=np.int16) == expected).all()
        served = load_image(data, None, load_settings(data_dir=tmp_path))
        assert (np.asarray(served.image, dtype=np.int16) == expected).all()


def test_is_blank_allows_compression_noise_but_not_content():
    noisy = np.full((32, 32, 3), 128, dtype=np.int16) + np.random.default_rng(1).integers(-2, 3, (32, 32, 3))
    assert is_blank(Image.fromarray(noisy.astype(np.uint8)))
    noisy[10:12, 10:12] = 0
    assert not is_blank(Image.fromarray(noisy.astype(np.uint8)))
