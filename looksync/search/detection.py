"""Detection heads: which layers a look shows and whose look it is, read from its regions, for look
searches sent without hints (no gender, no layers).

Zero-shot on the whole look does poorly with a small CLIP model (issue 8's note: gender right on 40% of
looks, layers found with precision 0.39 / recall 0.16), so small logistic heads are trained on the
region finder's own crops of generated training looks (``looksync heads train``):

- presence, one head per layer: the layer's main region crop vector next to the whole look's vector and
  the look's *context*, the cosine between every two layers' crops (a dress shows the same fabric in the
  top and bottom regions, a jacket differs from what is under it) and each layer region's colour grid
  (``colour_grid``: where in the region which colours are; an open jacket shows one colour at the sides and
  another down the middle, which a small CLIP model's crop vector hardly tells) -> "this layer's garment is
  in the look"; a layer the finder reports out of frame is not asked;
- gender: the whole look's vector next to the mean of the region crops' vectors and the head-and-shoulders
  crop's (hair, face, neckline), and that crop's colour grid, and (format 4) the face crop's vector and colour
  grid: the head as the pose detector boxes it (``Placement.face``), found on the head even where the
  landmarks are not used and the head-and-shoulders region is placed from the person's box, often off the
  head (gender right without it / with it: 0.86 / 0.88 on the 360 default training looks, 5-fold
  cross-validated; fitted on those, 0.83 / 0.89 on 360 looks of another training-split sample and 0.855 /
  0.865 on 200 looks of a sample with held-out framings; docs/evaluation.md) -> women or men.

Format 5 can carry a small pixel CNN (``looksync/search/presence_net.py``; ``looksync heads train --net-looks``):
it reads each placed layer's region as pixels, and each layer's presence is then a two-feature blend (``presence_blend``) of its logistic head's logit and
the CNN's (the mean of the cross-fitted CNNs' logits), fitted on out-of-fold logits of both; the CNNs' weights are
arrays in the same file.

Format 6 can carry a second small pixel CNN, for gender (``looksync/search/gender_net.py``, trained on the same
``--net-looks`` looks): it reads the person (the union of the placed layers' main regions) as pixels, where the
figures show gender by hair, beard and body shape; the gender is then the two-feature blend (``gender_blend``) of
the gender head's logit and the CNN's, fitted and Platt-scaled on out-of-fold logits of every gender look of the
heads (``gender_prob``). ``--net-looks 0``: neither CNN (format-4 heads). Heads files of format 1 (no context, no
head-and-shoulders crop), 2 (no colour grids), 3 (no face crop), 4 (no CNN) and 5 (no gender CNN) still load and
are read as they were trained.

Training them (``looksync heads train``, the demo) is ``looksync/search/detection_training.py``.

Heads belong to one CLIP model (its ``model_id``) and one region finder; ``LocalQueryGenerator`` uses
them only when both match, so vectors from another model are never fed to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

HEADS_FORMAT = 6
READABLE_FORMATS = (1, 2, 3, 4, 5, 6)
GRID_CELLS = 3  # colour_grid: cells per side
GRID_SIZE = GRID_CELLS * GRID_CELLS * 6
GENDERS = ("women", "men")  # the gender head's two classes; the second is the positive one


class DetectionHeadsError(ValueError):
    """A detection heads file is missing, unreadable or for another model or finder."""


@dataclass
class LogisticHead:
    weights: np.ndarray  # (d,)
    bias: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias

    def prob(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(x), -40, 40)))


def blended_prob(head: LogisticHead, blend: LogisticHead | None, x: np.ndarray, net_logit: float | None) -> float:
    """``head``'s probability for ``x``, or, given a CNN's logit and a blend, the blend of the head's logit and
    the CNN's (formats 5 and 6)."""
    if net_logit is None or blend is None:
        return float(head.prob(x))
    return float(blend.prob(np.array([float(head.logit(x)), net_logit])))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 400, lr: float = 0.5) -> LogisticHead:
    """L2-regularised logistic regression by full-batch gradient descent, classes weighted to balance. Each
    feature is standardised for the fit (and the scaling folded back into the weights), so features of
    different scales (embedding components, cosines) are regularised alike."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or not len(y):
        raise ValueError(f"fit_logistic: x {x.shape} and y {y.shape} do not match")
    positives = y.sum()
    if positives in (0, len(y)):  # one class only: a constant head
        p = float(np.clip(positives / len(y), 1e-3, 1 - 1e-3))
        return LogisticHead(np.zeros(x.shape[1]), float(np.log(p / (1 - p))))
    sample_w = np.where(y > 0.5, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives)))
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)  # a constant feature: left as it is (its weight stays 0)
    xs = (x - mean) / scale
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ w + b, -40, 40)))
        g = sample_w * (p - y) / len(y)
        w -= lr * (xs.T @ g + l2 * w)
        b -= lr * float(g.sum())
    return LogisticHead(w / scale, b - float((w / scale) @ mean))


def calibrate(head: LogisticHead, x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, steps: int = 50) -> LogisticHead:
    """Platt scaling on looks the head was not fitted on: ``a * logit + c`` fitted by Newton's method (unweighted,
    lightly regularised toward a = 1, c = 0), folded into the head's weights. A head that separates its
    training looks but is at chance on new ones gets a ~ 0: its probabilities come back to the base rate
    instead of 0.0 / 1.0, so a confidence threshold downstream means something. Too few examples of each
    class to fit (under 5): the head is returned unchanged."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) != len(x) or min(y.sum(), len(y) - y.sum()) < 5:
        return head
    z = np.clip(head.logit(x), -40, 40)
    features = np.stack([z, np.ones_like(z)], axis=1)
    prior = np.array([1.0, 0.0])  # a, c: the head as it is

    def loss(theta: np.ndarray) -> float:
        margin = features @ theta
        return float(np.sum(np.logaddexp(0.0, margin) - y * margin) + 0.5 * l2 * len(y) * np.sum((theta - prior) ** 2))

    theta = prior.copy()
    for _ in range(steps):  # Newton's method with step halving (saturated logits make full steps overshoot)
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ theta, -40, 40)))
        grad = features.T @ (p - y) + l2 * len(y) * (theta - prior)
        hess = (features * (p * (1 - p))[:, None]).T @ features + l2 * len(y) * np.eye(2)
        step, before = np.linalg.solve(hess, grad), loss(theta)
        while loss(theta - step) > before and np.abs(step).max() > 1e-10:
            step = step / 2
        theta = theta - step
        if np.abs(step).max() < 1e-8:
            break
    a, c = float(theta[0]), float(theta[1])
    return LogisticHead(head.weights * a, head.bias * a + c)


def context_features(crops: dict[str, np.ndarray], layers: Sequence[str]) -> np.ndarray:
    """The cosine between the crops of every two of ``layers`` (in that order; 0 where either is not placed)."""
    units = {}
    for layer in layers:
        if layer in crops:
            vector = np.asarray(crops[layer], dtype=np.float64)
            norm = np.linalg.norm(vector)
            units[layer] = vector / norm if norm else vector
    return np.array([
        float(units[a] @ units[b]) if a in units and b in units else 0.0
        for i, a in enumerate(layers) for b in layers[i + 1 :]
    ])  # fmt: skip


def presence_features(crop: np.ndarray, whole: np.ndarray, *context: np.ndarray) -> np.ndarray:
    parts = [np.asarray(crop, dtype=np.float64), np.asarray(whole, dtype=np.float64)]
    return np.concatenate([*parts, *(np.asarray(c, dtype=np.float64) for c in context)])


def colour_grid(image: Any, box: tuple[int, int, int, int]) -> np.ndarray:
    """The mean and spread of R, G and B (0-1) in each cell of a ``GRID_CELLS`` x ``GRID_CELLS`` grid over
    ``box`` of ``image``: ``GRID_SIZE`` values, cells row by row."""
    side = 10 * GRID_CELLS
    pixels = np.asarray(image.crop(box).convert("RGB").resize((side, side)), dtype=np.float64) / 255.0
    cells = pixels.reshape(GRID_CELLS, 10, GRID_CELLS, 10, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 100, 3)
    return np.concatenate([cells.mean(axis=1), cells.std(axis=1)], axis=1).ravel()


def grid_context(grids: dict[str, np.ndarray], layers: Sequence[str]) -> np.ndarray:
    """The colour grids of ``layers``' regions in that order (zeros where a layer is not placed)."""
    return np.concatenate([grids[layer] if layer in grids else np.zeros(GRID_SIZE) for layer in layers])


def gender_features(whole: np.ndarray, crops: Iterable[np.ndarray], cue: np.ndarray | None = None,
                    with_cue: bool = False, cue_grid: np.ndarray | None = None,
                    with_grid: bool = False, face: np.ndarray | None = None,
                    face_grid: np.ndarray | None = None, with_face: bool = False) -> np.ndarray:  # fmt: skip
    """The whole look's vector, the mean of the region crops' vectors and, ``with_cue``, the head-and-shoulders
    crop's vector and, ``with_grid``, its colour grid (zeros when the look shows no head and shoulders) and,
    ``with_face``, the face crop's vector and colour grid (the head-and-shoulders crop's where no face was
    found, so that its weights still read a head)."""
    whole = np.asarray(whole, dtype=np.float64)
    crops = [np.asarray(c, dtype=np.float64) for c in crops]
    mean = np.mean(crops, axis=0) if crops else np.zeros_like(whole)
    parts = [whole, mean]
    if with_cue:
        parts.append(np.zeros_like(whole) if cue is None else np.asarray(cue, dtype=np.float64))
    if with_grid:
        parts.append(np.zeros(GRID_SIZE) if cue_grid is None else np.asarray(cue_grid, dtype=np.float64))
    if with_face:
        face, face_grid = (face, face_grid) if face is not None else (cue, cue_grid)
        parts.append(np.zeros_like(whole) if face is None else np.asarray(face, dtype=np.float64))
        parts.append(np.zeros(GRID_SIZE) if face_grid is None else np.asarray(face_grid, dtype=np.float64))
    return np.concatenate(parts)


def head_and_shoulders_box(boxes: dict[str, list[tuple[int, int, int, int]]]) -> tuple[int, int, int, int] | None:
    """The gender cue's region: from the top of the head (the headwear region, above the eyes) to the upper
    third of the topwear region (shoulders, neckline, hair that falls on them), as wide as both. None when the
    look shows no head or no shoulders (a finder placed no headwear or topwear region)."""
    if "headwear" not in boxes or "topwear" not in boxes:
        return None
    hx0, hy0, hx1, hy1 = boxes["headwear"][0]
    tx0, ty0, tx1, ty1 = boxes["topwear"][0]
    x0, x1 = min(hx0, tx0), max(hx1, tx1)
    y0 = min(hy0, ty0)
    y1 = max(y0 + 2, int(ty0 + 0.35 * (ty1 - ty0)))
    return (x0, y0, max(x1, x0 + 2), y1)


@dataclass
class LookVectors:
    """What the heads read from one look: each placed layer's main-region crop vector, the whole look's
    vector, the head-and-shoulders crop's vector (None where not placed), the placement, the colour grids of
    the same regions; ``embedded``: every box embedded for them (and the layers' other extents, when asked
    for) -> its vector, cut from ``placement.pixels``; the query generator reads the layers it searches from
    these instead of embedding the same crops again."""

    crops: dict[str, np.ndarray]
    whole: np.ndarray
    head: np.ndarray | None
    placement: Any
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    head_grid: np.ndarray | None = None
    embedded: dict[tuple[int, int, int, int], np.ndarray] = field(default_factory=dict)
    face: np.ndarray | None = None  # the face crop's vector and colour grid (asked for and found only)
    face_grid: np.ndarray | None = None
    pixels: Any = field(default=None, repr=False)  # the image the boxes are cut from (the presence CNN reads it)


@dataclass
class Detected:
    layers: list[str]  # most likely first
    gender: str
    probs: dict[str, float]  # layer -> presence probability
    gender_prob: float  # probability of GENDERS[1]

    @property
    def gender_confidence(self) -> float:
        """The head's probability of the gender it chose."""
        return max(self.gender_prob, 1.0 - self.gender_prob)


@dataclass
class DetectionHeads:
    model_id: str
    region_finder: str
    presence: dict[str, LogisticHead]
    gender: LogisticHead
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)  # training figures
    # layer -> its presence threshold, chosen on calibration looks (best F1); a layer not here uses ``threshold``
    layer_thresholds: dict[str, float] = field(default_factory=dict)
    # the layers whose crops' pairwise cosines the presence heads read (empty: format-1 heads, no context)
    context_layers: list[str] = field(default_factory=list)
    gender_cue: bool = False  # the gender head reads the head-and-shoulders crop too (format 2)
    colour_grids: bool = False  # the heads read the regions' colour grids too (format 3)
    face_cue: bool = False  # the gender head reads the face crop too (format 4)
    # the presence CNN (format 5): its cross-fitted copies (a query reads their mean logit) and, per layer, the
    # blend of the layer's head's logit and the CNN's (a layer without a blend reads its head alone)
    presence_nets: list[Any] = field(default_factory=list)  # presence_net.PresenceNet
    presence_blend: dict[str, LogisticHead] = field(default_factory=dict)
    # the gender CNN (format 6): its copies (a query reads their mean logit) and the blend of the gender head's logit
    # and the CNN's (None: the gender head alone)
    gender_nets: list[Any] = field(default_factory=list)  # gender_net.GenderNet
    gender_blend: LogisticHead | None = None

    def presence_inputs(self, look: LookVectors) -> dict[str, np.ndarray]:
        """Each placed layer's presence features, the look's context computed once for all of them."""
        context = [context_features(look.crops, self.context_layers)] if self.context_layers else []
        if self.colour_grids:
            context.append(grid_context(look.grids, self.context_layers))
        return {layer: presence_features(vector, look.whole, *context) for layer, vector in look.crops.items()}

    def gender_input(self, look: LookVectors) -> np.ndarray:
        return gender_features(look.whole, look.crops.values(), look.head, with_cue=self.gender_cue,
                               cue_grid=look.head_grid, with_grid=self.colour_grids, face=look.face,
                               face_grid=look.face_grid, with_face=self.face_cue)  # fmt: skip

    def gender_net_logit(self, look: LookVectors) -> float | None:
        """The gender CNNs' mean logit for ``look`` (None without CNNs, a blend or the look's pixels)."""
        if not self.gender_nets or self.gender_blend is None or look.pixels is None:
            return None
        from looksync.search.gender_net import look_crops, mean_logits

        return float(mean_logits(self.gender_nets, look_crops(look.pixels, look.placement.boxes, look.placement.face))[0])

    def gender_prob(self, look: LookVectors) -> float:
        """The probability of ``GENDERS[1]``: the gender head's, or (format 6) the blend of its logit and the
        gender CNN's."""
        return blended_prob(self.gender, self.gender_blend, self.gender_input(look), self.gender_net_logit(look))

    def placed_layers(self) -> list[str]:
        """The layers to place on a look for these heads: those with a head and those of the context."""
        return [*self.context_layers, *(layer for layer in self.presence if layer not in self.context_layers)]

    def threshold_of(self, layer: str) -> float:
        return self.layer_thresholds.get(layer, self.threshold)

    def net_logits(self, look: LookVectors, layers: Sequence[str]) -> dict[str, float]:
        """The presence CNNs' mean logit for each of ``layers``' main regions of ``look`` (none without CNNs or
        without the look's pixels)."""
        if not self.presence_nets or look.pixels is None or not layers:
            return {}
        from looksync.search.presence_net import mean_logits, region_crops

        crops, geo = region_crops(look.pixels, look.placement.boxes, layers)
        return dict(zip(layers, mean_logits(self.presence_nets, crops, geo, layers).tolist(), strict=True))

    def presence_probs(self, look: LookVectors) -> dict[str, float]:
        """Each placed layer's presence probability: its head's, or (format 5) the blend of its head's logit
        and the CNN's."""
        inputs = {layer: x for layer, x in self.presence_inputs(look).items() if layer in self.presence}
        nets = self.net_logits(look, [layer for layer in inputs if layer in self.presence_blend])
        return {layer: blended_prob(self.presence[layer], self.presence_blend.get(layer), x, nets.get(layer))
                for layer, x in inputs.items()}  # fmt: skip

    def detect(self, look: LookVectors, max_layers: int = 6) -> Detected:
        """Layers whose presence probability reaches the threshold (at least the most likely one) and
        the more likely gender, from the look's region vectors."""
        probs = self.presence_probs(look)
        ranked = sorted(probs, key=lambda layer: probs[layer], reverse=True)
        layers = [layer for layer in ranked if probs[layer] >= self.threshold_of(layer)][:max_layers] or ranked[:1]
        gender_prob = self.gender_prob(look)
        return Detected(layers, GENDERS[int(gender_prob >= 0.5)], probs, gender_prob)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"presence/{layer}": head.weights for layer, head in self.presence.items()}
        arrays["gender"] = self.gender.weights
        arrays.update({f"blend/{layer}": head.weights for layer, head in self.presence_blend.items()})
        for k, net in enumerate(self.presence_nets):
            arrays.update(net.to_arrays(f"net/{k}"))
        if self.gender_blend is not None:
            arrays["gender_blend"] = self.gender_blend.weights
        for k, net in enumerate(self.gender_nets):
            arrays.update(net.to_arrays(f"gnet/{k}"))
        meta = {
            "format": HEADS_FORMAT,
            "model_id": self.model_id,
            "region_finder": self.region_finder,
            "threshold": self.threshold,
            "layer_thresholds": self.layer_thresholds,
            "context_layers": self.context_layers,
            "gender_cue": self.gender_cue,
            "colour_grids": self.colour_grids,
            "face_cue": self.face_cue,
            "bias": {**{f"presence/{layer}": h.bias for layer, h in self.presence.items()}, "gender": self.gender.bias,
                     **{f"blend/{layer}": h.bias for layer, h in self.presence_blend.items()},
                     **({"gender_blend": self.gender_blend.bias} if self.gender_blend is not None else {})},
            "presence_net": ({"copies": len(self.presence_nets), "layers": self.presence_nets[0].layers,
                              "width": self.presence_nets[0].width} if self.presence_nets else None),
            "gender_net": ({"copies": len(self.gender_nets), "inputs": self.gender_nets[0].inputs,
                            "width": self.gender_nets[0].width} if self.gender_nets else None),
            "meta": self.meta,
        }
        with path.open("wb") as out:
            np.savez(out, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> DetectionHeads:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DetectionHeadsError(f"{path}: detection heads file not found; train one with `looksync heads train`")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["__meta__"]).decode())
                arrays = {k: np.array(data[k]) for k in data.files if k != "__meta__"}
        except (OSError, ValueError, KeyError) as exc:
            raise DetectionHeadsError(f"{path}: not a detection heads file ({exc})") from None
        if meta.get("format") not in READABLE_FORMATS:
            raise DetectionHeadsError(f"{path}: heads format {meta.get('format')!r}, readable: "
                                      f"{', '.join(map(str, READABLE_FORMATS))}; retrain with `looksync heads train`")
        bias = meta["bias"]
        presence = {
            k.split("/", 1)[1]: LogisticHead(v, float(bias[k])) for k, v in arrays.items() if k.startswith("presence/")
        }
        blend = {k.split("/", 1)[1]: LogisticHead(v, float(bias[k])) for k, v in arrays.items() if k.startswith("blend/")}
        nets = []
        if meta.get("presence_net"):
            from looksync.search.presence_net import PresenceNet

            spec = meta["presence_net"]
            try:
                nets = [PresenceNet.from_arrays(arrays, f"net/{k}", spec["layers"], spec["width"])
                        for k in range(int(spec["copies"]))]  # fmt: skip
            except (KeyError, ValueError) as exc:
                raise DetectionHeadsError(f"{path}: presence CNN unreadable ({exc})") from None
        gender_nets, gender_blend = [], None
        if meta.get("gender_net"):
            from looksync.search.gender_net import GenderNet

            spec = meta["gender_net"]
            try:
                gender_nets = [GenderNet.from_arrays(arrays, f"gnet/{k}", spec["inputs"], spec["width"])
                               for k in range(int(spec["copies"]))]  # fmt: skip
                gender_blend = LogisticHead(arrays["gender_blend"], float(bias["gender_blend"]))
            except (KeyError, ValueError) as exc:
                raise DetectionHeadsError(f"{path}: gender CNN unreadable ({exc})") from None
        return cls(meta["model_id"], meta["region_finder"], presence, LogisticHead(arrays["gender"], float(bias["gender"])),
                   float(meta["threshold"]), meta.get("meta", {}),
                   {k: float(v) for k, v in meta.get("layer_thresholds", {}).items()},
                   list(meta.get("context_layers", [])), bool(meta.get("gender_cue", False)),
                   bool(meta.get("colour_grids", False)), bool(meta.get("face_cue", False)), nets, blend,
                   gender_nets, gender_blend)  # fmt: skip

    def check(self, model_id: str, region_finder: str) -> None:
        if self.model_id != model_id:
            raise DetectionHeadsError(f"detection heads were trained on {self.model_id}, the encoder is {model_id}")
        if self.region_finder != region_finder:
            raise DetectionHeadsError(
                f"detection heads were trained on the {self.region_finder!r} region finder's crops, "
                f"the engine uses {region_finder!r}"
            )


def region_vectors(
    place: Callable[[Any, list[str]], Any], encoder: Any, look: Any, layers: Sequence[str], *, extents: bool = False,
    face: bool = False,
) -> LookVectors:
    """Each placed layer's main-region crop vector, the head-and-shoulders crop's and the whole look's, in one
    batch, and the colour grids of the same regions; also the placement (its ``absent`` layers have no vector).
    ``face``: the placement's face box (``Placement.face``, where the finder found one) goes into the batch too,
    for the gender head of format-4 heads.
    ``extents``: every placed layer's other extents go into the batch too (in ``embedded`` only), so that the
    query generator reads the layers it then searches without a second batch (one forward of a few more crops
    measured cheaper than a second forward of the searched layers' extents alone: ``bench/bench_nohint.py``)."""
    from looksync.search.regions import box_crops

    placement = place(look, list(layers))
    pixels = placement.pixels(look)
    placed = [layer for layer in layers if layer in placement.boxes]
    head_box = head_and_shoulders_box(placement.boxes)
    face_box = placement.face if face else None
    boxes = [placement.boxes[layer][0] for layer in placed] + ([head_box] if head_box else [])
    others = [box for layer in placed for box in placement.boxes[layer][1:]] if extents else []
    crops = box_crops(pixels, encoder, [*boxes, (0, 0, look.size[0], look.size[1]), *others,
                                        *([face_box] if face_box else [])])  # fmt: skip
    vectors = crops.vectors
    return LookVectors(dict(zip(placed, vectors[: len(placed)], strict=True)), vectors[len(boxes)],
                       vectors[len(placed)] if head_box else None, placement,
                       {layer: colour_grid(pixels, placement.boxes[layer][0]) for layer in placed},
                       colour_grid(pixels, head_box) if head_box else None,
                       dict(zip(crops.boxes, vectors, strict=True)),
                       vectors[-1] if face_box else None,
                       colour_grid(pixels, face_box) if face_box else None, pixels)  # fmt: skip
