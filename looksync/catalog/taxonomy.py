"""The taxonomy as data: layers, standard categories, genders, markets, colours, patterns.

Loaded from ``looksync/catalog/data/taxonomy.yaml`` (or another file given explicitly) and validated on load,
so a category pointing at an unknown layer is an error at startup, not a silent miss at query time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

DEFAULT_TAXONOMY_PATH = Path(__file__).parent / "data" / "taxonomy.yaml"


class TaxonomyError(ValueError):
    """The taxonomy file is malformed or a lookup names something it does not define."""


@dataclass(frozen=True)
class Layer:
    id: str
    label: str
    prompt: str
    # where the layer sits on an upright, front-facing, full-body figure: (left, top, right, bottom) as
    # fractions of the look; a layout prior (on-figure training crops), None when the taxonomy gives none
    slot: tuple[float, float, float, float] | None = None
    # other extents the layer's garments take (shorts and skirts end higher than trousers); each is
    # cropped too and a product scores its best match over the crops
    alt_slots: tuple[tuple[float, float, float, float], ...] = ()
    # where the layer sits on the body, from pose keypoints (the pose region finder): the main extent,
    # then other extents, like slot and alt_slots; empty when the taxonomy gives none
    pose: tuple[PoseExtent, ...] = ()


@dataclass(frozen=True)
class PoseExtent:
    """One box of a layer on the body: the box around ``points`` (pose landmark names, at their
    estimated positions), grown by ``pad`` (left, top, right, bottom) in units of the body's torso
    length, then clipped to the look. It is placed only when, from each group of ``seen``, at least
    one point is visible and inside the look, and from each group of ``framed``, at least one point is
    inside the look (visible or not: the pose model's visibility of knees at a crop's edge runs low while
    they are plainly there). ``outward``: ``pad``'s left and right mean towards and
    away from the body's midline (a bag or a watch on either side), not the image's left and right.
    ``unless_continuous``: chains of three points (a, b, c); the extent is left out when an extent before it
    was placed and, along every chain, the look's colour from a to b runs on from b to c (trousers past the
    knees: the longer extent holds the garment, the shorter one is a crop that adds nothing)."""

    points: tuple[str, ...]
    seen: tuple[tuple[str, ...], ...]
    pad: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    outward: bool = False
    framed: tuple[tuple[str, ...], ...] = ()
    unless_continuous: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Category:
    id: str
    layer: str
    label: str


@dataclass(frozen=True)
class Market:
    id: str
    currency: str
    language: str
    minor_units: int
    max_price: float | None = None  # the most a product's price can be (feeds: above it is quarantined)


@dataclass(frozen=True)
class Taxonomy:
    layers: dict[str, Layer]
    categories: dict[str, Category]
    genders: dict[str, str]  # id -> label
    markets: dict[str, Market]
    colours: dict[str, tuple[int, int, int]]
    patterns: tuple[str, ...]
    _by_layer: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def layer_of(self, category: str) -> str:
        try:
            return self.categories[category].layer
        except KeyError:
            raise TaxonomyError(f"{category!r}: not a standard category; known: {', '.join(self.categories)}") from None

    def categories_of(self, layer: str) -> tuple[str, ...]:
        if layer not in self.layers:
            raise TaxonomyError(f"{layer!r}: not a layer; known: {', '.join(self.layers)}")
        return self._by_layer.get(layer, ())

    def currency_of(self, market: str) -> str:
        try:
            return self.markets[market].currency
        except KeyError:
            raise TaxonomyError(f"{market!r}: not a market; known: {', '.join(self.markets)}") from None


def _require(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise TaxonomyError(f"{where}: missing {key!r}")
    return mapping[key]


def _box(value: object, what: str, item: dict, path: Path) -> tuple[float, float, float, float]:
    ok = isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value)
    if not ok or not (0 <= value[0] < value[2] <= 1 and 0 <= value[1] < value[3] <= 1):  # type: ignore[index]
        raise TaxonomyError(
            f"{path}: layer {item.get('id')!r}: {what} must be [left, top, right, bottom] fractions with "
            f"0 <= left < right <= 1 and 0 <= top < bottom <= 1, got {value!r}"
        )
    return tuple(float(v) for v in value)  # type: ignore[return-value, union-attr]


def _slot(item: dict, path: Path) -> tuple[float, float, float, float] | None:
    slot = item.get("slot")
    return None if slot is None else _box(slot, "slot", item, path)


def _alt_slots(item: dict, path: Path) -> tuple[tuple[float, float, float, float], ...]:
    alts = item.get("alt_slots") or []
    if alts and "slot" not in item:
        raise TaxonomyError(f"{path}: layer {item.get('id')!r}: alt_slots needs a slot")
    if not isinstance(alts, list):
        raise TaxonomyError(f"{path}: layer {item.get('id')!r}: alt_slots must be a list of boxes, got {alts!r}")
    return tuple(_box(box, "each of alt_slots", item, path) for box in alts)


def _names(value: object, what: str, item: dict, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose {what} must be a non-empty list of landmark names, got {value!r}")
    return tuple(value)


def _pose(item: dict, path: Path) -> tuple[PoseExtent, ...]:
    extents = item.get("pose") or []
    if not isinstance(extents, list):
        raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose must be a list of extents, got {extents!r}")
    parsed = []
    for extent in extents:
        if not isinstance(extent, dict) or not {"points", "seen"} <= set(extent) or set(extent) - {"points", "seen", "pad", "outward", "framed", "unless_continuous"}:
            raise TaxonomyError(
                f"{path}: layer {item.get('id')!r}: each pose extent needs points and seen "
                f"(and optionally pad, outward, framed, unless_continuous), got {extent!r}"
            )
        chains = extent.get("unless_continuous", [])
        if not isinstance(chains, list) or not all(isinstance(c, list) and len(c) == 3 for c in chains):
            raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose unless_continuous must be a list of 3-point chains, got {chains!r}")
        seen, framed = extent["seen"], extent.get("framed", [])
        if not isinstance(seen, list) or not seen:
            raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose seen must be a list of groups, got {seen!r}")
        if not isinstance(framed, list):
            raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose framed must be a list of groups, got {framed!r}")
        pad = extent.get("pad", [0, 0, 0, 0])
        if not (isinstance(pad, list) and len(pad) == 4 and all(isinstance(v, (int, float)) and -1 <= v <= 3 for v in pad)):
            raise TaxonomyError(f"{path}: layer {item.get('id')!r}: pose pad must be 4 numbers in [-1, 3], got {pad!r}")
        parsed.append(PoseExtent(
            points=_names(extent["points"], "points", item, path),
            seen=tuple(_names(group, "seen group", item, path) for group in seen),
            pad=tuple(float(v) for v in pad),  # type: ignore[arg-type]
            outward=bool(extent.get("outward", False)),
            framed=tuple(_names(group, "framed group", item, path) for group in framed),
            unless_continuous=tuple(_names(chain, "unless_continuous chain", item, path) for chain in chains),  # type: ignore[misc]
        ))  # fmt: skip
    return tuple(parsed)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (the packaged one by default)."""
    path = Path(path) if path else DEFAULT_TAXONOMY_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{path}: expected a mapping at the top level")

    layers = {}
    for item in _require(raw, "layers", str(path)):
        layer = Layer(
            id=item["id"], label=item["label"], prompt=item["prompt"], slot=_slot(item, path),
            alt_slots=_alt_slots(item, path), pose=_pose(item, path),
        )  # fmt: skip
        if layer.id in layers:
            raise TaxonomyError(f"{path}: layer {layer.id!r} defined twice")
        layers[layer.id] = layer

    categories = {}
    by_layer: dict[str, list[str]] = {}
    for cid, item in _require(raw, "categories", str(path)).items():
        layer = _require(item, "layer", f"{path}: category {cid!r}")
        if layer not in layers:
            raise TaxonomyError(f"{path}: category {cid!r} maps to unknown layer {layer!r}")
        categories[cid] = Category(id=cid, layer=layer, label=item.get("label", cid))
        by_layer.setdefault(layer, []).append(cid)

    genders = {g["id"]: g["label"] for g in _require(raw, "genders", str(path))}
    markets = {
        mid: Market(id=mid, currency=m["currency"], language=m["language"], minor_units=int(m["minor_units"]),
                    max_price=float(m["max_price"]) if m.get("max_price") is not None else None)
        for mid, m in _require(raw, "markets", str(path)).items()
    }
    colours = {}
    for name, rgb in _require(raw, "colours", str(path)).items():
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(0 <= int(c) <= 255 for c in rgb)):
            raise TaxonomyError(f"{path}: colour {name!r} needs [r, g, b] in 0..255, got {rgb!r}")
        colours[name] = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    patterns = tuple(_require(raw, "patterns", str(path)))

    return Taxonomy(
        layers=layers,
        categories=categories,
        genders=genders,
        markets=markets,
        colours=colours,
        patterns=patterns,
        _by_layer={k: tuple(v) for k, v in by_layer.items()},
    )


@lru_cache(maxsize=1)
def get_taxonomy() -> Taxonomy:
    """The packaged taxonomy, loaded once per process."""
    return load_taxonomy()
