"""How an image's pixels are read: the one helper that turns any decoded image into the RGB a person
would see, used by ingestion's checks, the thumbnails, the embedding pipeline and the service.

Pillow's plain ``convert("RGB")`` is wrong for several kinds of product images vendors send:

- 16-bit greyscale (``I;16``, ``I``): values above 255 are clipped, so the image turns almost all white;
  here they are scaled from the 16-bit range to 8 bits.
- transparency (``RGBA``, ``LA``, ``PA``, a palette or ``L``/``RGB`` with a transparent colour): the alpha is
  dropped and the hidden colour data shows; here the image is composited on white, as packshots with
  transparent backgrounds are meant to be seen.
- CMYK: converted with the image's own ICC profile when it has one (to sRGB), else by Pillow's formula.
- EXIF orientation: applied, so a photo taken sideways is embedded upright.
- animations (GIF, APNG, WebP): the first frame.

``is_blank`` tells an image with nothing visible (one colour, a fully transparent one included).
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

WHITE = (255, 255, 255)
BLANK_SPREAD = 4  # an image whose every channel varies by at most this much shows nothing (JPEG noise allowed)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def to_rgb(image: Image) -> Image:
    """The RGB image a viewer sees (see the module docstring). Decodes ``image`` if it is not yet; the
    caller's image object is not changed beyond seeking an animation to its first frame."""
    from PIL import ImageOps

    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image = ImageOps.exif_transpose(image) or image  # a transposed copy; the image itself when no EXIF
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return _deep_to_rgb(image)
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _on_white(image)
    if mode == "RGB":
        return image
    return image.convert("RGB")


def is_blank(rgb: Image) -> bool:
    """True when an RGB image is one colour (within ``BLANK_SPREAD``): nothing to see, nothing to embed.

    Looked at box-averaged down to at most 64 px a side, so compression noise averages out but a small
    product on a plain packshot background still shows. (A box reduction by a whole factor: a tenth of
    the time of a bicubic thumbnail, and ingestion runs it on every image.)"""
    factor = max(1, -(-max(rgb.size) // 64))  # ceil: the reduced image's longest side is at most 64
    small = rgb.reduce(factor) if factor > 1 else rgb
    return all(high - low <= BLANK_SPREAD for low, high in small.getextrema())


def _on_white(image: Image) -> Image:
    from PIL import Image as PILImage

    rgba = image.convert("RGBA")  # palette/L/RGB transparency, LA and premultiplied modes included
    background = PILImage.new("RGBA", rgba.size, (*WHITE, 255))
    return PILImage.alpha_composite(background, rgba).convert("RGB")


def _deep_to_rgb(image: Image) -> Image:
    """16-bit or 32-bit greyscale to 8 bits: the 16-bit range scaled, floats in [0, 1] or [0, 255]."""
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.asarray(image)
    if image.mode == "F":
        top = float(np.nanmax(pixels)) if pixels.size else 0.0
        scaled = pixels * (255.0 if top <= 1.0 else 1.0)
    elif image.mode == "I" and pixels.size and int(pixels.max()) <= 255 and int(pixels.min()) >= 0:
        scaled = pixels.astype(np.float64)  # an "I" image holding 8-bit values
    else:
        scaled = pixels.astype(np.float64) / 257.0  # 0..65535 -> 0..255
    grey = np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
    return PILImage.fromarray(grey, mode="L").convert("RGB")


def _cmyk_to_rgb(image: Image) -> Image:
    profile = image.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception as exc:  # a broken or unsupported profile: the plain conversion still shows the image
            log.warning("CMYK image's ICC profile not usable (%s): converted without it", exc)
    return image.convert("RGB")
