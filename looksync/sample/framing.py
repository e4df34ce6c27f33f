"""Varied looks: the sample's dressed figure posed, cropped, rotated, mirrored, scaled and placed on
canvases of every aspect, with ground truth per garment (box, visible share, in-frame flag).

The figure (a woman's or a man's, ``looksync.sample.figure``) is first drawn dressed on the fixed 384x640
frame of ``compose_look`` (without the bag), body shaped, then posed piecewise: each arm (upper arm and forearm, sleeves included) and each leg is a segment turned
about its joint (shoulder, elbow, hip), so sleeves follow the arm. The bag is drawn last, at the hip or
in the hand. Every pixel keeps a label (which layer, or the figure, is on top there) and a bit set of
the layers whose garment covers it, and both travel through the same geometry as the colours; the ground
truth is counted from them, never guessed:

- ``visible``: the share of the garment's pixels that are on top and inside the crop;
- ``frame_share``: the share of the garment's pixels inside the crop, whatever is drawn over them;
- ``in_frame``: ``frame_share >= IN_FRAME_MIN`` (a half-body look has no footwear in frame);
- ``boxes``: the box around the garment's visible pixels on the final canvas (absent when none are).

The split (``VARIATION["heldout"]``): one pose family, one aspect and one figure style are never drawn
for ``train`` looks; ``heldout`` looks draw every value, so an evaluation on them measures framings
training never saw beside ones it did, and the breakdown by framing tells them apart.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from looksync.sample.figure import FIGURE_STYLES, bag_box, draw_traits, dress_figure, shape_body, warp_point

POSE_FAMILIES = ("standing", "raised", "bent", "hand_on_hip", "holding_bag", "walking")
ASPECTS = {"9:16": (360, 640), "3:4": (480, 640), "1:1": (576, 576), "4:3": (640, 480), "16:9": (640, 360)}
CROPS = ("full", "three_quarter", "half")
BACKGROUNDS = ("plain", "gradient", "textured")
VARIATION = {
    "heldout": {"pose": "hand_on_hip", "aspect": "4:3", "style": "outlined"},  # never drawn for training looks
    "scale": (0.4, 1.0),  # figure height (after the crop) / canvas height, before fitting the width
    "rotation_deg": 8.0,
}
SPLITS = ("train", "heldout")
IN_FRAME_MIN = 0.5

# the fixed frame's joints (pixels of the 384x640 frame; "l" is the image's left)
_SHOULDER = {"l": (131.0, 142.0), "r": (253.0, 142.0)}
_ELBOW = {"l": (113.0, 234.0), "r": (271.0, 234.0)}
_HAND = {"l": (104.0, 330.0), "r": (280.0, 330.0)}
_HIP = {"l": (165.0, 322.0), "r": (219.0, 322.0)}
# crop lines (y of the fixed frame): half-body just under the waist, three-quarter above the knees-to-shins
_CROP_Y = {"half": 330, "three_quarter": 470}
_PAD = (128, 120)  # room around the fixed frame for raised arms and turned legs
_SEGMENTS = ("leg_l", "leg_r", "torso", "upper_l", "fore_l", "upper_r", "fore_r")


@dataclass(frozen=True)
class Framing:
    """How one varied look is framed (recorded in its ground truth)."""

    pose: str
    aspect: str
    crop: str
    style: str
    background: str
    mirrored: bool
    scale: float  # requested figure height / canvas height
    rotation: float
    position: tuple[float, float]  # where the figure sits in the free space, 0..1 each way

    def to_json(self) -> dict[str, Any]:
        held = VARIATION["heldout"]
        return {
            "variant": "varied",
            "pose": self.pose,
            "aspect": self.aspect,
            "crop": self.crop,
            "style": self.style,
            "background": self.background,
            "mirrored": self.mirrored,
            "scale": round(self.scale, 3),
            "rotation": round(self.rotation, 2),
            "novel": any(getattr(self, key) == value for key, value in held.items()),
        }


def draw_framing(rng: random.Random, split: str) -> Framing:
    """One framing for a look of ``split``: ``train`` never draws a held-out value."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    held = VARIATION["heldout"]

    def pick(key: str, values: tuple[str, ...]) -> str:
        allowed = [v for v in values if split == "heldout" or v != held.get(key)]
        return rng.choice(allowed)

    lo, hi = VARIATION["scale"]
    return Framing(
        pose=pick("pose", POSE_FAMILIES),
        aspect=pick("aspect", tuple(ASPECTS)),
        crop=rng.choice(CROPS),
        style=pick("style", FIGURE_STYLES),
        background=rng.choice(BACKGROUNDS),
        mirrored=rng.random() < 0.5,
        scale=rng.uniform(lo, hi),
        rotation=rng.uniform(-VARIATION["rotation_deg"], VARIATION["rotation_deg"]),
        position=(rng.random(), rng.random()),
    )


# ---- the figure in the fixed frame ------------------------------------------------------------------


def _segment_map(height: int, width: int) -> np.ndarray:
    """Which segment each pixel of the fixed frame belongs to (index into ``_SEGMENTS``)."""
    y, x = np.mgrid[0:height, 0:width]
    seg = np.full((height, width), _SEGMENTS.index("torso"), dtype=np.uint8)
    legs = (y >= 352) | ((y >= 330) & (x >= 131) & (x <= 253))
    seg[legs & (x < 192)] = _SEGMENTS.index("leg_l")
    seg[legs & (x >= 192)] = _SEGMENTS.index("leg_r")
    arm_rows = (y >= 120) & (y < 352)
    for side, outside in (("l", x < 131), ("r", x > 253)):
        seg[arm_rows & outside & (y < 234)] = _SEGMENTS.index(f"upper_{side}")
        seg[arm_rows & outside & (y >= 234)] = _SEGMENTS.index(f"fore_{side}")
    return seg


def _rotation(pivot: tuple[float, float], degrees: float) -> np.ndarray:
    """3x3 forward map turning points by ``degrees`` about ``pivot`` (image axes: +y down)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    px, py = pivot
    return np.array([[c, -s, px - c * px + s * py], [s, c, py - s * px - c * py], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, point: tuple[float, float]) -> tuple[float, float]:
    x, y, _ = matrix @ np.array([point[0], point[1], 1.0])
    return (float(x), float(y))


def pose_angles(pose: str, rng: random.Random) -> dict[str, float]:
    """Outward turn of each upper arm and leg, and the inward bend of each forearm, in degrees."""
    a = {"upper_l": rng.uniform(2, 8), "upper_r": rng.uniform(2, 8), "fore_l": 0.0, "fore_r": 0.0,
         "leg_l": rng.uniform(0, 3), "leg_r": rng.uniform(0, 3)}  # fmt: skip
    sides = ["l", "r"]
    if pose == "raised":
        for side in rng.choice([["l"], ["r"], sides]):
            a[f"upper_{side}"], a[f"fore_{side}"] = rng.uniform(140, 168), rng.uniform(-25, 0)
    elif pose == "bent":
        for side in sides:
            a[f"upper_{side}"], a[f"fore_{side}"] = rng.uniform(8, 25), rng.uniform(60, 105)
    elif pose == "hand_on_hip":
        for side in rng.choice([["l"], ["r"], sides]):
            a[f"upper_{side}"], a[f"fore_{side}"] = rng.uniform(35, 45), rng.uniform(75, 85)
    elif pose == "holding_bag":
        a["upper_r"], a["fore_r"] = rng.uniform(4, 14), rng.uniform(55, 85)
    elif pose == "walking":
        swing = rng.uniform(8, 15)
        a["upper_l"], a["upper_r"] = swing, -swing * 0.6
        a["leg_l"], a["leg_r"] = rng.uniform(6, 12), rng.uniform(6, 12)
    elif pose != "standing":
        raise ValueError(f"pose family {pose!r} is not one of {', '.join(POSE_FAMILIES)}")
    return a


def _segment_matrices(angles: dict[str, float], joints: dict[str, dict[str, tuple[float, float]]]) -> dict[str, np.ndarray]:
    """Forward maps of every segment in the padded frame, turning about ``joints`` (name -> side -> point)."""
    shift = np.array([[1.0, 0.0, _PAD[0]], [0.0, 1.0, _PAD[1]], [0.0, 0.0, 1.0]])
    out = {"torso": shift}
    for side, sign in (("l", 1.0), ("r", -1.0)):  # outward is +angle on the image's left, -angle on its right
        upper = _rotation(joints["shoulder"][side], sign * angles[f"upper_{side}"])
        fore = upper @ _rotation(joints["elbow"][side], -sign * angles[f"fore_{side}"])
        out[f"upper_{side}"], out[f"fore_{side}"] = shift @ upper, shift @ fore
        out[f"leg_{side}"] = shift @ _rotation(joints["hip"][side], sign * angles[f"leg_{side}"])
    return out


def _warp_nearest(
    arrays: list[np.ndarray], inverse: np.ndarray, shape: tuple[int, int], window: tuple[int, int, int, int] | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Sample ``arrays`` (same height and width) at ``inverse`` of every output pixel; also the mask
    of output pixels whose source lies inside. ``window``: (top, left, bottom, right) of the output, the only
    pixels sampled (the results are the window's)."""
    top, left, bottom, right = window or (0, 0, *shape)
    y, x = np.mgrid[top:bottom, left:right]
    sx = np.rint(inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]).astype(np.int64)
    sy = np.rint(inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]).astype(np.int64)
    src_h, src_w = arrays[0].shape[:2]
    inside = (sx >= 0) & (sx < src_w) & (sy >= 0) & (sy < src_h)
    sx, sy = np.clip(sx, 0, src_w - 1), np.clip(sy, 0, src_h - 1)
    return [a[sy, sx] for a in arrays], inside


def _segment_window(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The output window (top, left, bottom, right) that a segment lands in: its source box (``rows`` and ``cols``
    that hold it) moved by ``matrix`` (a turn and a shift), with 2 pixels to spare for the nearest-pixel rounding
    (an output pixel whose rounded source is in the segment lies within 0.71 of the segment's image). None when
    the segment is empty or lands outside the output."""
    if not len(rows) or not len(cols):
        return None
    corners = np.array([[cols[0], rows[0], 1.0], [cols[-1] + 1, rows[0], 1.0], [cols[0], rows[-1] + 1, 1.0],
                        [cols[-1] + 1, rows[-1] + 1, 1.0]]) @ matrix[:2].T  # fmt: skip
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    top, left = max(0, int(np.floor(y0)) - 2), max(0, int(np.floor(x0)) - 2)
    bottom, right = min(shape[0], int(np.ceil(y1)) + 3), min(shape[1], int(np.ceil(x1)) + 3)
    return (top, left, bottom, right) if top < bottom and left < right else None


@dataclass
class PosedFigure:
    rgb: np.ndarray  # H x W x 3
    label: np.ndarray  # H x W: 0 nothing, 1 figure, 2 + i the i-th layer of ``layers`` on top
    cover: np.ndarray  # H x W bit set: bit i when the i-th layer's garment covers the pixel
    layers: list[str]
    hand: dict[str, tuple[float, float]]
    figure: dict[str, Any]  # the figure's traits (FigureTraits.to_json())


def pose_figure(products: dict[str, Any], framing: Framing, rng: random.Random, gender: str) -> PosedFigure:
    """The dressed figure of ``gender`` in the fixed frame, body shaped, posed per ``framing.pose``, in
    the padded frame."""
    traits = draw_traits(rng, gender)
    dressed = dress_figure(products, traits, framing.style, bag=False)
    height, width = dressed.label.shape
    joints = {name: {side: warp_point(traits, point, width) for side, point in sides.items()}
              for name, sides in (("shoulder", _SHOULDER), ("elbow", _ELBOW), ("hand", _HAND), ("hip", _HIP))}  # fmt: skip
    (seg,) = shape_body([_segment_map(height, width)], traits)  # so arms stay arms

    angles = pose_angles(framing.pose, rng)
    matrices = _segment_matrices(angles, joints)
    out_shape = (height + 2 * _PAD[1], width + 2 * _PAD[0])
    out_rgb = np.zeros((*out_shape, 3), dtype=np.uint8)
    out_label = np.zeros(out_shape, dtype=np.uint8)
    out_cover = np.zeros(out_shape, dtype=np.uint16)
    for name in _SEGMENTS:  # legs, torso, then arms over them
        index = _SEGMENTS.index(name)
        held = seg == index
        # each segment is sampled only over the window it lands in (the whole frame each: 0.18 s a look of 0.25)
        window = _segment_window(matrices[name], np.flatnonzero(held.any(1)), np.flatnonzero(held.any(0)), out_shape)
        if window is None:
            continue
        (s_rgb, s_label, s_cover, s_seg), inside = _warp_nearest(
            [dressed.rgb, dressed.label, dressed.cover, seg], np.linalg.inv(matrices[name]), out_shape, window
        )
        mine = inside & (s_seg == index)
        drawn = mine & (s_label > 0)
        part = np.s_[window[0] : window[2], window[1] : window[3]]
        out_rgb[part][drawn], out_label[part][drawn] = s_rgb[drawn], s_label[drawn]
        out_cover[part][mine] |= s_cover[mine]
    hand = {side: _apply(matrices[f"fore_{side}"], joints["hand"][side]) for side in ("l", "r")}

    dressed.rgb, dressed.label, dressed.cover = out_rgb, out_label, out_cover
    if "bag" in products:
        product = products["bag"]
        x0, y0, x1, y1 = bag_box(traits, product.category, width)
        if framing.pose == "holding_bag":  # hangs from the right hand: its top edge at the hand
            hx, hy = hand["r"]
            dx, dy = hx - (x0 + x1) / 2, hy - 8 - y0
        else:  # at the hip, as on the fixed frame
            dx, dy = _PAD
        dressed.wear("bag", product, (round(x0 + dx), round(y0 + dy), round(x1 + dx), round(y1 + dy)))
    return PosedFigure(dressed.rgb, dressed.label, dressed.cover, dressed.layers, hand, traits.to_json())


# ---- framing on a canvas ----------------------------------------------------------------------------


def background(size: tuple[int, int], kind: str, rng: random.Random) -> Image.Image:
    """A plain, gradient or textured backdrop."""
    width, height = size

    def colour(lo: int = 150, hi: int = 250) -> np.ndarray:
        return np.array([rng.randint(lo, hi) for _ in range(3)], dtype=np.float64)

    if kind == "plain":
        return Image.new("RGB", size, tuple(int(c) for c in colour()))
    if kind == "gradient":
        a, b = colour(), colour(90, 240)
        angle = rng.uniform(0, math.pi)
        y, x = np.mgrid[0:height, 0:width]
        t = (x * math.cos(angle) + y * math.sin(angle)).astype(np.float64)
        t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
        return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))
    if kind == "textured":
        np_rng = np.random.default_rng(rng.randrange(2**32))
        base = colour(120, 230)
        noise = np_rng.normal(0, 10, (height, width, 1))
        y, x = np.mgrid[0:height, 0:width]
        period = rng.randint(12, 48)
        if rng.random() < 0.5:  # stripes at an angle
            angle = rng.uniform(0, math.pi)
            wave = np.sin((x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period)
        else:  # tiles
            wave = np.sign(np.sin(x * 2 * math.pi / period) * np.sin(y * 2 * math.pi / period))
        pixels = base + noise + 14 * wave[..., None] * (np_rng.random(3) - 0.5) * 2
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    raise ValueError(f"background {kind!r} is not one of {', '.join(BACKGROUNDS)}")


@dataclass
class FramedLook:
    image: Image.Image
    boxes: dict[str, list[int]]  # layer -> visible box on the canvas
    visible: dict[str, float]
    frame_share: dict[str, float]
    in_frame: dict[str, bool]
    framing: dict[str, Any]
    figure: dict[str, Any]  # the figure's traits: gender, hair, body shape


def frame_look(products: dict[str, Any], framing: Framing, rng: random.Random, gender: str) -> FramedLook:
    """Pose, crop, rotate, mirror, scale and place the dressed figure of ``gender``; count the ground truth."""
    posed = pose_figure(products, framing, rng, gender)
    rows, cols = np.nonzero(posed.label)
    top, bottom = int(rows.min()), int(rows.max()) + 1
    if framing.crop != "full":
        bottom = min(bottom, _CROP_Y[framing.crop] + _PAD[1])
    in_rows = posed.label[top:bottom] > 0
    used = np.nonzero(in_rows.any(axis=0))[0]
    left, right = int(used.min()), int(used.max()) + 1
    margin = 6
    crop = (max(0, left - margin), max(0, top - margin), min(posed.label.shape[1], right + margin),
            min(posed.label.shape[0], bottom))  # fmt: skip

    # ground truth shares, counted in the posed frame
    x0, y0, x1, y1 = crop
    boxed_label, boxed_cover = posed.label[y0:y1, x0:x1], posed.cover[y0:y1, x0:x1]
    visible, frame_share = {}, {}
    for i, layer in enumerate(posed.layers):
        bit = np.uint16(1 << i)
        total = int(((posed.cover & bit) > 0).sum())
        visible[layer] = round(int((boxed_label == 2 + i).sum()) / max(1, total), 3)
        frame_share[layer] = round(int(((boxed_cover & bit) > 0).sum()) / max(1, total), 3)

    alpha = Image.fromarray(np.where(posed.label > 0, 255, 0).astype(np.uint8)).crop(crop)
    rgba = Image.fromarray(posed.rgb).convert("RGBA").crop(crop)
    rgba.putalpha(alpha)
    labels = Image.fromarray(posed.label).crop(crop)
    rgba = rgba.rotate(framing.rotation, resample=Image.Resampling.BILINEAR, expand=True)
    labels = labels.rotate(framing.rotation, resample=Image.Resampling.NEAREST, expand=True)
    if framing.mirrored:
        rgba, labels = ImageOps.mirror(rgba), ImageOps.mirror(labels)

    width, height = ASPECTS[framing.aspect]
    fig_w, fig_h = rgba.size
    target_h = framing.scale * height
    target_h = min(target_h, height, width * fig_h / fig_w)  # the whole (cropped) figure fits
    target_w = max(8, round(target_h * fig_w / fig_h))
    target_h = max(8, round(target_h))
    rgba = rgba.resize((target_w, target_h), Image.Resampling.BILINEAR)
    labels = labels.resize((target_w, target_h), Image.Resampling.NEAREST)
    px = round(framing.position[0] * (width - target_w))
    py = round(framing.position[1] * (height - target_h))
    if framing.crop != "full":  # a cropped figure is cut by the canvas's bottom edge, as a photo would be
        py = height - target_h
    canvas = background((width, height), framing.background, rng)
    canvas.paste(rgba, (px, py), rgba)
    final = np.zeros((height, width), dtype=np.uint8)
    final[py : py + target_h, px : px + target_w] = np.asarray(labels)

    boxes = {}
    for i, layer in enumerate(posed.layers):
        ys, xs = np.nonzero(final == 2 + i)
        if len(xs):
            boxes[layer] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    info = framing.to_json()
    info["scale"] = round(target_h / height, 3)  # what the figure got after fitting the canvas
    return FramedLook(
        image=canvas,
        boxes=boxes,
        visible=visible,
        frame_share=frame_share,
        in_frame={layer: share >= IN_FRAME_MIN for layer, share in frame_share.items()},
        framing=info,
        figure=posed.figure,
    )
