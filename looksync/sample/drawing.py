"""Procedural garment drawings for the sample catalog, shared by product images and looks.

``draw_garment`` paints one category's silhouette (``data/drawing.yaml``) into a box of a canvas,
filled with a colour and a pattern, so a product image and the same product worn in a look share
shape, colour and pattern, which is what a visual search has to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw, ImageFilter

from looksync.catalog.vendors.config import YAML_LOADER

DRAWING_PATH = Path(__file__).parent / "data" / "drawing.yaml"

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]


class DrawingError(ValueError):
    """A drawing was asked for something the drawing data does not define."""


@dataclass(frozen=True)
class Silhouette:
    fill: tuple[dict[str, Any], ...]
    details: tuple[dict[str, Any], ...]


@lru_cache(maxsize=1)
def drawing_data() -> dict[str, Any]:
    """The packaged drawing data (silhouettes, canvases, figure, boxes)."""
    return yaml.load(DRAWING_PATH.read_text(encoding="utf-8"), Loader=YAML_LOADER)


@cache
def silhouette(category: str) -> Silhouette:
    shapes = drawing_data()["silhouettes"]
    if category not in shapes:
        raise DrawingError(f"{category!r}: no silhouette in {DRAWING_PATH}; known: {', '.join(shapes)}")
    spec = shapes[category]
    return Silhouette(fill=tuple(_with_mirrors(spec["fill"])), details=tuple(_with_mirrors(spec.get("details", []))))


def _with_mirrors(shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for shape in shapes:
        out.append(shape)
        if shape.get("mirror"):
            out.append(_mirrored(shape))
    return out


def _mirrored(shape: dict[str, Any]) -> dict[str, Any]:
    copy = dict(shape, mirror=False)
    for kind in ("poly", "line"):
        if kind in shape:
            copy[kind] = [[1.0 - x, y] for x, y in shape[kind]]
    for kind in ("ellipse", "rect"):
        if kind in shape:
            x0, y0, x1, y1 = shape[kind]
            copy[kind] = [1.0 - x1, y0, 1.0 - x0, y1]
    return copy


def mix(a: Sequence[int], b: Sequence[int], t: float) -> RGB:
    """Linear blend: t=0 gives a, t=1 gives b."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def contrast_colour(rgb: Sequence[int]) -> RGB:
    """A colour that reads against rgb: darker for light colours, lighter for dark ones."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return mix(rgb, (0, 0, 0), 0.5) if luminance > 150 else mix(rgb, (255, 255, 255), 0.7)


def pattern_fill(size: tuple[int, int], rgb: RGB, pattern: str, period: int = 12) -> Image.Image:
    """A size-sized RGB tile of the colour in the pattern (solid, striped, checked, dotted)."""
    width, height = size
    tile = Image.new("RGB", size, rgb)
    if pattern == "solid":
        return tile
    draw = ImageDraw.Draw(tile)
    other = contrast_colour(rgb)
    half = max(1, period // 2)
    if pattern == "striped":
        for y in range(0, height, period):
            draw.rectangle([0, y, width, y + half - 1], fill=other)
    elif pattern == "checked":
        for y in range(0, height, period):
            for x in range(0, width, period):
                if (x // period + y // period) % 2:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=mix(rgb, other, 0.7))
        for y in range(0, height, period * 2):
            draw.rectangle([0, y, width, y + max(1, period // 6)], fill=other)
    elif pattern == "dotted":
        radius = max(1, period // 4)
        for row, y in enumerate(range(period // 2, height, period)):
            offset = half if row % 2 else 0
            for x in range(period // 2 + offset, width, period):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=other)
    else:
        raise DrawingError(f"{pattern!r}: unknown pattern; known: solid, striped, checked, dotted")
    return tile


def draw_garment(
    canvas: Image.Image,
    category: str,
    colour_rgb: Sequence[int],
    pattern: str,
    box: Sequence[int],
    *,
    pattern_period: int = 12,
) -> None:
    """Paint the category's silhouette into ``box`` (x0, y0, x1, y1 in canvas pixels) of ``canvas``,
    filled with ``colour_rgb`` in ``pattern``, outlined and detailed in a darker shade."""
    shape = silhouette(category)
    x0, y0, x1, y1 = (int(v) for v in box)
    width, height = x1 - x0, y1 - y0
    if width < 2 or height < 2:
        raise DrawingError(f"box {tuple(box)!r} for {category!r} is too small to draw in")
    rgb: RGB = tuple(int(c) for c in colour_rgb)  # type: ignore[assignment]
    mask = Image.new("L", (width, height), 0)
    mask_draw = ImageDraw.Draw(mask)
    for item in shape.fill:
        _draw_shape(mask_draw, item, (0, 0, width, height), fill=255, filled=True)
    canvas.paste(pattern_fill((width, height), rgb, pattern, pattern_period), (x0, y0), mask)
    line_colour = mix(rgb, (0, 0, 0), 0.55) if sum(rgb) > 120 else mix(rgb, (255, 255, 255), 0.35)
    canvas.paste(line_colour, (x0, y0, x1, y1), mask.filter(ImageFilter.FIND_EDGES))
    canvas_draw = ImageDraw.Draw(canvas)
    for item in shape.details:
        _draw_shape(canvas_draw, item, (x0, y0, x1, y1), fill=line_colour, filled=bool(item.get("filled")))


def garment_mask(category: str, box: Sequence[int], canvas_size: tuple[int, int]) -> Image.Image:
    """The pixels ``draw_garment`` fills for ``category`` in ``box``, as an "L" mask of the whole canvas."""
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = Image.new("L", canvas_size, 0)
    mask_draw = ImageDraw.Draw(mask)
    for item in silhouette(category).fill:
        _draw_shape(mask_draw, item, (x0, y0, x1, y1), fill=255, filled=True)
    return mask


def _draw_shape(draw: ImageDraw.ImageDraw, item: dict[str, Any], box: Box, *, fill: Any, filled: bool) -> None:
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0

    def point(p: Sequence[float]) -> tuple[float, float]:
        return (x0 + p[0] * width, y0 + p[1] * height)

    if "poly" in item:
        points = [point(p) for p in item["poly"]]
        draw.polygon(points, fill=fill) if filled else draw.line(points + points[:1], fill=fill, width=1)
    elif "line" in item:
        stroke = max(1, round(float(item.get("width", 0.02)) * (width + height) / 2))
        draw.line([point(p) for p in item["line"]], fill=fill, width=stroke, joint="curve")
    elif "ellipse" in item or "rect" in item:
        kind = "ellipse" if "ellipse" in item else "rect"
        a, b, c, d = item[kind]
        corners = [*point((a, b)), *point((c, d))]
        painter = draw.ellipse if kind == "ellipse" else draw.rectangle
        painter(corners, fill=fill) if filled else painter(
            corners, outline=fill, width=max(1, round((width + height) / 120))
        )
    else:
        raise DrawingError(f"shape {item!r} has none of poly, line, ellipse, rect")


def product_image(
    category: str,
    colour_rgb: Sequence[int],
    pattern: str,
    *,
    scale: float = 1.0,
    shift: tuple[int, int] = (0, 0),
    pattern_period: int = 12,
) -> Image.Image:
    """A catalog photo stand-in: the garment alone on the product canvas (white background)."""
    spec = drawing_data()["product_image"]
    width, height = spec["size"]
    canvas = Image.new("RGB", (width, height), tuple(spec["background"]))
    fx0, fy0, fx1, fy1 = spec["boxes"][category]
    cx, cy = (fx0 + fx1) / 2 * width + shift[0], (fy0 + fy1) / 2 * height + shift[1]
    half_w, half_h = (fx1 - fx0) * width * scale / 2, (fy1 - fy0) * height * scale / 2
    box = (round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))
    draw_garment(canvas, category, colour_rgb, pattern, box, pattern_period=pattern_period)
    return canvas


def look_box(category: str) -> Box:
    boxes = drawing_data()["look_image"]["boxes"]
    if category not in boxes:
        raise DrawingError(f"{category!r}: no look box in {DRAWING_PATH}; known: {', '.join(boxes)}")
    return tuple(boxes[category])  # type: ignore[return-value]
