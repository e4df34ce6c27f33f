"""The pose models' inputs from a look: its box reductions and pixel arrays made once per look (``LookCache``), the
fits the detector and the person mask see, and the landmark model's rotated crops (``warp_roi``), edge pixels
outside the look. Each is bit for bit what the plain PIL and numpy operations give (``tests/search/test_pose.py``);
they exist because the region step's Python work is part of its 40 ms budget (docs/evaluation.md, "The region
step's Python work")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

    from looksync.search.pose.blazepose import Roi


class LookCache:
    """One look's box-reduced copies and pixel arrays, each made once: the detector's and the person mask's fits and
    the landmark crops of a look mostly reduce it by the same factor (2 for a 640 px look), and the crops' edge fill
    and the finder's colour checks read the same pixels. Nothing in it changes what is computed."""

    def __init__(self, look: Image):
        self.look = look
        self._reduced: dict[int, Image] = {1: look}
        self._pixels: dict[int, np.ndarray] = {}

    def reduced(self, factor: int) -> Image:
        """``look.reduce(factor)``."""
        if factor not in self._reduced:
            self._reduced[factor] = self.look.reduce(factor)
        return self._reduced[factor]

    def pixels(self, factor: int = 1) -> np.ndarray:
        """``np.asarray(self.reduced(factor))`` (read-only)."""
        if factor not in self._pixels:
            self._pixels[factor] = np.asarray(self.reduced(factor))
        return self._pixels[factor]

    def fit(self, size: tuple[int, int]) -> Image:
        """``look.resize(size, BILINEAR, reducing_gap=1.0)``, bit for bit, its box reduction shared: PIL reduces the
        whole look by (int(width / size[0]) or 1, int(height / size[1]) or 1) and resamples that over the look's box
        scaled down by the factors; where both factors are the same, the cached reduction is used."""
        from PIL import Image as PILImage

        width, height = self.look.size
        factor_x, factor_y = int(width / size[0]) or 1, int(height / size[1]) or 1
        if factor_x != factor_y or factor_x == 1:
            return self.look.resize(size, PILImage.Resampling.BILINEAR, reducing_gap=1.0)
        return self.reduced(factor_x).resize(size, PILImage.Resampling.BILINEAR, box=(0, 0, width / factor_x, height / factor_y))


def warp_roi(look: Image, roi: Roi, out: int, cache: LookCache | None = None) -> np.ndarray:
    """The ROI of the look as an out x out x 3 uint8 array, upright. Inside the look: bilinear (PIL's
    affine warp); outside it: the nearest edge pixel (MediaPipe's default replicated border; a black
    border costs the landmark model on half-body looks). The look is box-reduced first when the ROI is
    over twice the output, so the cost stays flat with the look's size. ``cache``: the look's ``LookCache``."""
    from PIL import Image as PILImage

    cache = cache or LookCache(look)
    factor = max(1, int(roi.side // (2 * out)))
    source = cache.reduced(factor)
    side, c, s = roi.side / factor, math.cos(roi.rotation), math.sin(roi.rotation)
    cx, cy = roi.cx / factor, roi.cy / factor
    # output pixel (u, v) -> source pixel: the ROI's rotation and scale
    data = (side * c / out, -side * s / out, cx - 0.5 * side * (c - s),
            side * s / out, side * c / out, cy - 0.5 * side * (s + c))  # fmt: skip
    inside = np.array(source.transform((out, out), PILImage.Transform.AFFINE, data, PILImage.Resampling.BILINEAR))
    width, height = source.size
    # where each output pixel centre falls in the source: x[v, u], y[v, u], one broadcast sum each
    centres = np.arange(out, dtype=np.float32) + np.float32(0.5)
    x = (np.float32(data[0]) * centres)[None, :] + (np.float32(data[1]) * centres + np.float32(data[2]))[:, None]
    y = (np.float32(data[3]) * centres)[None, :] + (np.float32(data[4]) * centres + np.float32(data[5]))[:, None]
    outside = (x < 0.5) | (y < 0.5) | (x > width - 0.5) | (y > height - 0.5)
    if not outside.any():
        return inside
    # the edge pixels, gathered through flat indices with each RGB pixel as one 3-byte item (a third of the cost of
    # indexing rows and columns with boolean masks)
    flat = np.flatnonzero(outside)
    xs, ys = np.clip(x.ravel().take(flat), 0, width - 1), np.clip(y.ravel().take(flat), 0, height - 1)
    index = ys.astype(np.int32) * width + xs.astype(np.int32)
    inside.view("V3").reshape(-1)[flat] = cache.pixels(factor).view("V3").reshape(-1).take(index)
    return inside


def edge_padded(pixels: np.ndarray, side: int, pad_x: int, pad_y: int) -> np.ndarray:
    """``pixels`` (h x w x c) at (pad_x, pad_y) of a side x side square whose rest repeats the nearest edge pixel:
    ``np.pad(..., mode="edge")`` by slices, in the pixels' dtype."""
    height, width = pixels.shape[:2]
    square = np.empty((side, side, pixels.shape[2]), dtype=pixels.dtype)
    columns = slice(pad_x, pad_x + width)
    square[pad_y : pad_y + height, columns] = pixels
    square[:pad_y, columns] = pixels[0]
    square[pad_y + height :, columns] = pixels[-1]
    square[:, :pad_x] = square[:, pad_x : pad_x + 1]
    square[:, pad_x + width :] = square[:, pad_x + width - 1 : pad_x + width]
    return square
