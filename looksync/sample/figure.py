"""The figure sample looks are dressed on: a woman or a man, drawn ``flat`` or ``outlined``.

A generated look shows a woman or a man, and wears garments of that gender or unisex, so the figure
carries what tells them apart, as a photo does: the body's shape (broad shoulders and narrow hips, or
narrow shoulders and waist and wide hips: the dressed figure is scaled across, row by row, so the
garments follow the body) and the hair (long or shoulder-length locks falling over the garments, or
short hair, some men bearded). Each look draws its gender's traits (``draw_traits``) from the ranges in
``data/drawing.yaml`` (``look_image.figures``); the drawing style is independent of gender.

``dress_figure`` draws the figure and its garments on the fixed 384x640 frame and keeps, per pixel,
which layer is on top (``label``) and which garments cover it (``cover``), so a look's ground truth is
counted from what was drawn, whatever the body shape or the hair covers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from looksync.sample.drawing import DrawingError, draw_garment, drawing_data, garment_mask, look_box, mix

GENDERS = ("women", "men")
FIGURE_STYLES = ("flat", "outlined")
FIGURE, FIRST_LAYER = 1, 2  # label values: the figure (skin, hair), then 2 + i for the i-th worn layer
BODY_ROWS = ("shoulders", "waist", "hips")
# layers drawn over hair that falls on the shoulders (a hat or sunglasses sit on top of it)
OVER_HAIR = ("headwear", "eyewear")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class FigureTraits:
    """What one look's figure looks like (recorded in its ground truth as ``figure``)."""

    gender: str
    skin: RGB
    hair_colour: RGB
    hair: str  # the hair style, one of its gender's in drawing.yaml
    beard: bool
    body: dict[str, float]  # scale across the figure at its shoulders, waist and hips

    def to_json(self) -> dict[str, Any]:
        return {"gender": self.gender, "hair": self.hair, "beard": self.beard, **self.body}


def figures_data() -> dict[str, Any]:
    return drawing_data()["look_image"]["figures"]


def draw_traits(rng: random.Random, gender: str) -> FigureTraits:
    """A figure of ``gender``: skin tone and hair colour (any gender), then its gender's hair style,
    beard and body shape."""
    if gender not in GENDERS:
        raise DrawingError(f"figure gender {gender!r} is not one of {', '.join(GENDERS)}")
    spec = drawing_data()["look_image"]
    skin = tuple(rng.choice(spec["skin_tones"]))
    hair_colour = tuple(rng.choice(spec["hair_colours"]))
    data = figures_data()[gender]
    hair = rng.choice(list(data["hair"]))
    beard = rng.random() < data["beard_rate"]
    body = {row: round(rng.uniform(*data["body"][row]), 3) for row in BODY_ROWS}  # as recorded: redrawable
    return FigureTraits(gender, skin, hair_colour, hair, beard, body)  # type: ignore[arg-type]


# ---- body shape ---------------------------------------------------------------------------------------


def _knots(traits: FigureTraits) -> tuple[list[float], list[float]]:
    """Rows of the fixed frame and the scale across the figure there: 1 at the head and the feet, the
    traits' values at shoulders, waist and hips, halfway back to 1 at the knees (linear between)."""
    rows, body = figures_data()["rows"], traits.body
    knots = [(rows["head"], 1.0), (rows["shoulders"], body["shoulders"]), (rows["waist"], body["waist"]),
             (rows["hips"], body["hips"]), (rows["knees"], (body["hips"] + 1.0) / 2), (rows["feet"], 1.0)]  # fmt: skip
    return [float(y) for y, _ in knots], [v for _, v in knots]


def row_scales(traits: FigureTraits, height: int) -> np.ndarray:
    """The scale across the figure at each row of the fixed frame."""
    return np.interp(np.arange(height), *_knots(traits))


def warp_point(traits: FigureTraits, point: tuple[float, float], width: int) -> tuple[float, float]:
    """Where ``point`` of the fixed frame goes when the body is shaped."""
    x, y = point
    scale = float(np.interp(y, *_knots(traits)))
    return (width / 2 + (x - width / 2) * scale, y)


def shape_body(arrays: Sequence[np.ndarray], traits: FigureTraits) -> list[np.ndarray]:
    """``arrays`` (same height and width) with the figure scaled across about the frame's midline, row
    by row (nearest pixel, so labels stay labels); what comes from outside the frame is 0."""
    height, width = arrays[0].shape[:2]
    scales = row_scales(traits, height)
    y, x = np.mgrid[0:height, 0:width]
    centre = width / 2
    sx = np.floor(centre + (x + 0.5 - centre) / scales[y]).astype(np.int64)
    inside = (sx >= 0) & (sx < width)
    sx = np.clip(sx, 0, width - 1)
    out = []
    for array in arrays:
        warped = array[y, sx]
        warped[~inside] = 0
        out.append(warped)
    return out


# ---- drawing -----------------------------------------------------------------------------------------


def _with_mirrors(shapes: list[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    out = []
    for shape in shapes:
        out.append(shape)
        if shape.get("mirror"):
            copy = dict(shape, mirror=False)
            if "poly" in shape:
                copy["poly"] = [[width - x, y] for x, y in shape["poly"]]
            for kind in ("ellipse", "rect"):
                if kind in shape:
                    x0, y0, x1, y1 = shape[kind]
                    copy[kind] = [width - x1, y0, width - x0, y1]
            out.append(copy)
    return out


def _paint(draw: ImageDraw.ImageDraw, shapes: list[dict[str, Any]], fill: Any, outline: Any = None) -> None:
    width = 2 if outline is not None else 0
    for item in shapes:
        if "poly" in item:
            draw.polygon([tuple(p) for p in item["poly"]], fill=fill, outline=outline, width=width)
        elif "ellipse" in item:
            draw.ellipse(item["ellipse"], fill=fill, outline=outline, width=width)
        elif "rect" in item:
            draw.rectangle(item["rect"], fill=fill, outline=outline, width=width)
        else:
            raise DrawingError(f"figure shape {item!r} has none of poly, ellipse, rect")


def _hair(traits: FigureTraits, part: str, width: int) -> list[dict[str, Any]]:
    data = figures_data()[traits.gender]
    if traits.hair not in data["hair"]:
        raise DrawingError(f"hair style {traits.hair!r} is not one of {traits.gender}'s: {', '.join(data['hair'])}")
    shapes = list(data["hair"][traits.hair].get(part, []))
    if part == "front" and traits.beard:
        shapes += data.get("beard", [])
    return _with_mirrors(shapes, width)


def draw_figure(canvas: Image.Image, traits: FigureTraits, style: str, paint: Any = None) -> None:
    """The undressed figure: hair behind it, body and head, hair over the head; ``outlined`` adds dark
    outlines and a face. ``paint``: draw every part in that one colour (a mask of the figure)."""
    if style not in FIGURE_STYLES:
        raise DrawingError(f"figure style {style!r} is not one of {', '.join(FIGURE_STYLES)}")
    draw = ImageDraw.Draw(canvas)
    width = canvas.size[0]
    skin, hair = (paint, paint) if paint is not None else (tuple(traits.skin), tuple(traits.hair_colour))
    outline = None if style == "flat" else (paint if paint is not None else mix(traits.skin, (0, 0, 0), 0.45))
    _paint(draw, _hair(traits, "back", width), hair, outline)  # behind the body: the neck is in front of it
    for item in drawing_data()["look_image"]["figure"]:
        _paint(draw, [item], skin if item["colour"] == "skin" else hair, outline)
    _paint(draw, _hair(traits, "front", width), hair, outline)
    if style == "outlined" and paint is None:
        for x in (178, 206):  # eyes, brows, mouth
            draw.ellipse([x - 4, 74, x + 4, 82], fill=(250, 250, 250), outline=outline)
            draw.ellipse([x - 2, 76, x + 2, 80], fill=(40, 30, 30))
            draw.line([(x - 6, 68), (x + 6, 67)], fill=hair, width=2)
        draw.line([(184, 102), (200, 102)], fill=(170, 70, 70), width=2)


def draw_hair_over(canvas: Image.Image, traits: FigureTraits, style: str, paint: Any = None) -> None:
    """The locks that fall over the garments (none for short hair)."""
    shapes = _hair(traits, "over", canvas.size[0])
    if shapes:
        hair = paint if paint is not None else tuple(traits.hair_colour)
        outline = None if style == "flat" else (paint if paint is not None else mix(traits.skin, (0, 0, 0), 0.45))
        _paint(ImageDraw.Draw(canvas), shapes, hair, outline)


# ---- the dressed figure ------------------------------------------------------------------------------


@dataclass
class DressedFigure:
    rgb: np.ndarray  # H x W x 3, black where nothing is drawn
    label: np.ndarray  # H x W: 0 nothing, FIGURE, FIRST_LAYER + i for the i-th of ``layers`` on top
    cover: np.ndarray  # H x W bit set: bit i when the i-th layer's garment covers the pixel
    layers: list[str]  # the worn layers in drawing order
    traits: FigureTraits

    def wear(self, layer: str, product: Any, box: Sequence[int]) -> None:
        """Draw ``product`` (worn as ``layer``) into ``box`` over everything drawn so far."""
        i = self.layers.index(layer)
        image = Image.fromarray(self.rgb)
        draw_garment(image, product.category, product.draw_rgb, product.pattern, box,
                     pattern_period=product.pattern_period)  # fmt: skip
        mask = np.asarray(garment_mask(product.category, box, image.size)) > 0
        self.rgb = np.asarray(image).copy()
        self.label[mask] = FIRST_LAYER + i
        self.cover[mask] |= np.uint16(1 << i)

    def visible(self) -> dict[str, float]:
        """Per layer, the share of its garment's pixels on top."""
        out = {}
        for i, layer in enumerate(self.layers):
            total = int(((self.cover & np.uint16(1 << i)) > 0).sum())
            out[layer] = round(int((self.label == FIRST_LAYER + i).sum()) / max(1, total), 3)
        return out

    def boxes(self) -> dict[str, list[int]]:
        """Per layer, the box around its visible pixels (absent when none are)."""
        out = {}
        for i, layer in enumerate(self.layers):
            ys, xs = np.nonzero(self.label == FIRST_LAYER + i)
            if len(xs):
                out[layer] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        return out


def bag_box(traits: FigureTraits, category: str, width: int) -> tuple[int, int, int, int]:
    """The bag's box at the hip, moved with the hip when the body is shaped."""
    x0, y0, x1, y1 = look_box(category)
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    dx = warp_point(traits, centre, width)[0] - centre[0]
    return (round(x0 + dx), y0, round(x1 + dx), y1)


def dress_figure(products: dict[str, Any], traits: FigureTraits, style: str, *, bag: bool = True) -> DressedFigure:
    """The figure of ``traits`` wearing ``products`` (layer -> product) on the fixed frame, garments in the
    drawing order, locks of long hair over them (under headwear and eyewear), body shaped; the bag last,
    at the hip (``bag=False``: not drawn, for a caller that places it after posing the figure)."""
    spec = drawing_data()["look_image"]
    width, height = spec["size"]
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw_figure(canvas, traits, style)
    silhouette = Image.new("L", (width, height), 0)
    draw_figure(silhouette, traits, style, paint=255)
    label = np.where(np.asarray(silhouette) > 0, FIGURE, 0).astype(np.uint8)
    cover = np.zeros((height, width), dtype=np.uint16)
    layers = [layer for layer in spec["draw_order"] if layer in products]

    def hair_over() -> None:
        draw_hair_over(canvas, traits, style)
        locks = Image.new("L", (width, height), 0)
        draw_hair_over(locks, traits, style, paint=255)
        label[np.asarray(locks) > 0] = FIGURE

    hair_drawn = False
    for i, layer in enumerate(layers):
        if layer in OVER_HAIR and not hair_drawn:
            hair_over()
            hair_drawn = True
        if layer == "bag":
            continue  # drawn after the body is shaped, where the hip (or the posed hand) puts it
        product = products[layer]
        box = look_box(product.category)
        draw_garment(canvas, product.category, product.draw_rgb, product.pattern, box,
                     pattern_period=product.pattern_period)  # fmt: skip
        mask = np.asarray(garment_mask(product.category, box, canvas.size)) > 0
        label[mask] = FIRST_LAYER + i
        cover[mask] |= np.uint16(1 << i)
    if not hair_drawn:
        hair_over()
    rgb, label, cover = shape_body([np.asarray(canvas).copy(), label, cover], traits)
    dressed = DressedFigure(rgb, label, cover, layers, traits)
    if bag and "bag" in products:
        dressed.wear("bag", products["bag"], bag_box(traits, products["bag"].category, width))
    return dressed
