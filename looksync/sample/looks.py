"""Sample looks: catalog products worn as layers on a drawn figure, with ground truth.

Each look takes valid (never faulty) products of one market whose gender is the look's or unisex,
and dresses a figure of the look's gender (``looksync.sample.figure``: a woman's or a man's body shape
and hair) in them, each drawn with the same ``draw_garment`` call that drew its product image, in its
body region, outer layers over inner ones. The ground truth records the figure's traits and, per layer,
the share of the garment's pixels left visible by what is drawn over it (a shirt under a closed coat
can be nearly hidden, long hair falls over a top's shoulders), so an evaluation can tell a miss from a
garment nobody could see.
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
from looksync.sample.drawing import drawing_data
from looksync.sample.figure import GENDERS, FigureTraits, draw_traits, dress_figure

LOOK_GENDERS = GENDERS


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
    figure: dict[str, Any] = field(default_factory=dict)  # FigureTraits.to_json(): gender, hair, body shape

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
            "figure": dict(self.figure),
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
    backdrop = np.array(rng.choice(spec["backgrounds"]), dtype=np.uint8)
    traits: FigureTraits = draw_traits(rng, gender)
    dressed = dress_figure(products, traits, "flat")
    pixels = np.where(dressed.label[..., None] > 0, dressed.rgb, backdrop)
    return Look(look_id, market, gender, products, Image.fromarray(pixels), dressed.visible(), dressed.boxes(),
                figure=traits.to_json())  # fmt: skip


def compose_varied_look(
    look_id: str, market: str, gender: str, products: dict[str, ProductSpec], rng: random.Random, split: str
) -> Look:
    """A look in a framing drawn for ``split`` (see ``looksync.sample.framing``)."""
    from looksync.sample.framing import draw_framing, frame_look

    framed = frame_look(products, draw_framing(rng, split), rng, gender)
    return Look(look_id, market, gender, products, framed.image, framed.visible, framed.boxes,
                framed.in_frame, framed.frame_share, framed.framing, framed.figure)  # fmt: skip


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
