"""Sample looks: catalog products worn as layers on a drawn figure, with ground truth.

Each look takes valid (never faulty) products of one market whose gender is the look's or unisex,
and draws each with the same ``draw_garment`` call that drew its product image, in its body region,
outer layers over inner ones. The ground truth records, per layer, the share of the garment's pixels
left visible by the layers drawn over it (a shirt under a closed coat can be nearly hidden), so an
evaluation can tell a miss from a garment nobody could see.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from looksync.catalog.schema import make_product_id
from looksync.catalog.taxonomy import get_taxonomy
from looksync.sample.catalog import ProductSpec, catalog_data
from looksync.sample.drawing import draw_figure, draw_garment, drawing_data, garment_mask, look_box

LOOK_GENDERS = ("women", "men")


@dataclass
class LookPools:
    """Candidate products per (market, look gender, layer), capped so memory stays flat at any size."""

    cap: int
    pools: dict[tuple[str, str, str], list[ProductSpec]] = field(default_factory=lambda: defaultdict(list))

    def add(self, spec: ProductSpec) -> None:
        for gender in LOOK_GENDERS:
            if spec.gender in (gender, "unisex"):
                pool = self.pools[(spec.market, gender, spec.layer)]
                if len(pool) < self.cap:
                    pool.append(spec)

    def get(self, market: str, gender: str, layer: str) -> list[ProductSpec]:
        return self.pools.get((market, gender, layer), [])


@dataclass
class Look:
    look_id: str
    market: str
    gender: str
    products: dict[str, ProductSpec]  # layer -> product
    image: Image.Image
    visible: dict[str, float] = field(default_factory=dict)  # layer -> share of its pixels not drawn over
    boxes: dict[str, list[int]] = field(default_factory=dict)  # layer -> box around its visible pixels
    in_frame: dict[str, bool] = field(default_factory=dict)  # layer -> at least IN_FRAME_MIN of it in frame
    frame_share: dict[str, float] = field(default_factory=dict)  # layer -> share of its pixels in frame
    framing: dict[str, Any] = field(default_factory=lambda: {"variant": "fixed"})

    def ground_truth(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "gender": self.gender,
            "products": {layer: make_product_id(p.vendor, p.sku) for layer, p in self.products.items()},
            "visible": {layer: round(share, 3) for layer, share in self.visible.items()},
            "boxes": dict(self.boxes),
            "in_frame": {layer: self.in_frame.get(layer, True) for layer in self.products},
            "frame_share": {layer: self.frame_share.get(layer, 1.0) for layer in self.products},
            "framing": dict(self.framing),
        }


def choose_layers(rng: random.Random, pools: LookPools, market: str, gender: str) -> dict[str, ProductSpec]:
    """Pick the look's garments: a one-piece or top + bottom, shoes, then optional layers."""
    rules = catalog_data()["looks"]
    chosen: dict[str, ProductSpec] = {}

    def take(layer: str) -> None:
        candidates = pools.get(market, gender, layer)
        if candidates:
            chosen[layer] = rng.choice(candidates)

    if pools.get(market, gender, "one_piece") and rng.random() < rules["one_piece_rate"] * (gender == "women"):
        take("one_piece")
    else:
        take("topwear")
        take("bottomwear")
    take("footwear")
    for layer, rate in rules["optional_layers"].items():
        if rng.random() < rate:
            take(layer)
    return chosen


def compose_look(look_id: str, market: str, gender: str, products: dict[str, ProductSpec], rng: random.Random) -> Look:
    spec = drawing_data()["look_image"]
    canvas = Image.new("RGB", tuple(spec["size"]), tuple(rng.choice(spec["backgrounds"])))
    draw_figure(canvas, rng.choice(spec["skin_tones"]), rng.choice(spec["hair_colours"]))
    drawn: list[tuple[str, np.ndarray]] = []  # (layer, pixels it covers), in drawing order
    for layer in spec["draw_order"]:
        product = products.get(layer)
        if product is not None:
            draw_garment(canvas, product.category, product.draw_rgb, product.pattern, look_box(product.category),
                         pattern_period=product.pattern_period)  # fmt: skip
            drawn.append((layer, np.asarray(garment_mask(product.category, look_box(product.category), canvas.size)) > 0))
    visible, boxes = {}, {}
    for i, (layer, mask) in enumerate(drawn):
        covered = np.zeros_like(mask)
        for _, later in drawn[i + 1 :]:
            covered |= later
        visible[layer] = float((mask & ~covered).sum() / max(1, mask.sum()))
        ys, xs = np.nonzero(mask & ~covered)
        if len(xs):
            boxes[layer] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return Look(look_id, market, gender, products, canvas, visible, boxes)


def compose_varied_look(
    look_id: str, market: str, gender: str, products: dict[str, ProductSpec], rng: random.Random, split: str
) -> Look:
    """A look in a framing drawn for ``split`` (see ``looksync.sample.framing``)."""
    from looksync.sample.framing import draw_framing, frame_look

    framed = frame_look(products, draw_framing(rng, split), rng)
    return Look(look_id, market, gender, products, framed.image, framed.visible, framed.boxes,
                framed.in_frame, framed.frame_share, framed.framing)  # fmt: skip


def make_looks(pools: LookPools, n_looks: int, seed: int) -> list[Look]:
    """Looks cycle through genders and markets so even a few cover every (market, gender) pair."""
    markets = list(get_taxonomy().markets)
    looks = []
    for j in range(n_looks):
        rng = random.Random(f"{seed}:look:{j}")
        gender = LOOK_GENDERS[j % len(LOOK_GENDERS)]
        market = markets[(j // len(LOOK_GENDERS)) % len(markets)]
        products = choose_layers(rng, pools, market, gender)
        if products:
            looks.append(compose_look(f"look-{j + 1:03d}", market, gender, products, rng))
    return looks


def make_varied_looks(pools: LookPools, n_looks: int, seed: int, split: str = "heldout") -> list[Look]:
    """``n_looks`` looks in varied framings of ``split`` (ids ``vlook-NNN``; ``tlook-NNN`` for ``train``),
    their products drawn like ``make_looks``'s but from their own seeds."""
    markets = list(get_taxonomy().markets)
    prefix = "vlook" if split == "heldout" else "tlook"
    looks = []
    for j in range(n_looks):
        rng = random.Random(f"{seed}:{prefix}:{j}")
        gender = LOOK_GENDERS[j % len(LOOK_GENDERS)]
        market = markets[(j // len(LOOK_GENDERS)) % len(markets)]
        products = choose_layers(rng, pools, market, gender)
        if products:
            looks.append(compose_varied_look(f"{prefix}-{j + 1:03d}", market, gender, products, rng, split))
    return looks
