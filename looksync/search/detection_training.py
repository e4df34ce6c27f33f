"""Training the detection heads (``looksync/search/detection.py``) on generated looks: the examples from a
sample's ground truth, the fit on the region finder's crops, calibration and per-layer thresholds on
held-out looks, and validation figures (``looksync heads train``, the demo)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from looksync.search.detection import (
    GENDERS,
    DetectionHeads,
    DetectionHeadsError,
    LogisticHead,
    calibrate,
    fit_logistic,
    region_vectors,
)
from looksync.search.gender_net import (
    GENDER_NET_COPIES,
    GENDER_NET_DRAWS,
    GENDER_NET_EPOCHS,
    GENDER_NET_INPUTS,
    GENDER_NET_JITTER,
    GenderCrops,
    GenderNet,
    look_crops,
)
from looksync.search.gender_net import train_net as train_gender_cnn
from looksync.search.heads_recipe import (
    RECIPE_FIXED_LOOKS,
    RECIPE_GENDER_LOOKS,
    RECIPE_GENDER_SEED_OFFSET,
    RECIPE_NET_EPOCHS,
    RECIPE_NET_LOOKS,
    RECIPE_NET_SEED_OFFSET,
    RECIPE_SEED,
    RECIPE_SIZE,
    RECIPE_VARIED_LOOKS,
)
from looksync.search.presence_net import PresenceNet, region_crops, train_net

log = logging.getLogger(__name__)


@dataclass
class LookExample:
    """One training look: its image and what it holds."""

    image: Any  # PIL image
    gender: str
    present: set[str]  # planted layers in frame
    unsure: set[str] = field(default_factory=set)  # planted, mostly out of frame: not a training example


def look_examples(ground_truth: dict[str, dict[str, Any]], looks_dir: Path) -> list[LookExample]:
    """Training looks from a generated sample's ground truth (``looks/ground_truth.json``)."""
    from PIL import Image

    examples = []
    for look_id, truth in sorted(ground_truth.items()):
        in_frame = truth.get("in_frame", {})
        present = {layer for layer in truth["products"] if in_frame.get(layer, True)}
        with Image.open(Path(looks_dir) / f"{look_id}.png") as image:
            examples.append(
                LookExample(image.convert("RGB"), truth["gender"], present, set(truth["products"]) - present)
            )
    return examples


PRESENCE_FOLDS = 5  # cross-fitting folds for the presence heads' calibration and thresholds
MIN_CLASS_LOOKS = 5  # a layer's own calibration and threshold need this many looks with it and without it
BLEND_L2 = 1e-2  # the presence blend's two weights (head, CNN), lightly regularised


def train_heads(
    examples: Sequence[LookExample],
    encoder: Any,
    place: Callable[[Any, list[str]], Any],
    region_finder: str,
    layers: Sequence[str],
    *,
    calibration: Sequence[LookExample] = (),
    gender_only: Sequence[LookExample] = (),
    gender_calibration: Sequence[LookExample] = (),
    folds: int = PRESENCE_FOLDS,
    seed: int = 101,
    net_examples: Sequence[LookExample] = (),
    net_epochs: int = RECIPE_NET_EPOCHS,
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Fit the presence and gender heads on the region finder's crops of ``examples`` and ``calibration``.

    Presence, per layer: fitted on every look of both; calibrated (Platt) and its threshold chosen
    (``best_f1_threshold``) on out-of-fold probabilities, ``folds`` folds of looks (``cross_fit_presence``),
    so that both are chosen on hundreds of looks instead of the calibration share alone (on 360 generated
    training looks, thresholds chosen on the 36 calibration looks missed layers the heads could find: see
    docs/evaluation.md). Gender: fitted on ``examples`` and ``gender_only``, Platt-scaled on ``calibration`` and
    ``gender_calibration`` (looks that train the gender head alone, leaving the presence heads as they were).

    ``net_examples`` (heads format 5, 6): looks of their own for the presence CNN (``looksync/search/presence_net.py``),
    trained on their regions' pixels (placed, never embedded: a CNN look costs its placement alone); each layer's
    presence then becomes the blend of its head's logit and the CNN's (``cross_fit_blend``), fitted, calibrated
    and thresholded on the heads' looks (their head logits out of fold; the CNN never saw them). The CNN on the
    heads' own looks, cross-fitted in two halves, gained nothing: it needs more looks than the heads can embed
    (docs/evaluation.md, "a pixel CNN for layer presence"). The same looks train the gender CNN
    (``looksync/search/gender_net.py``, format 6), blended with the gender head the same way (``cross_fit_blend`` on
    every gender look of the heads, its own calibration looks included: all out of fold)."""
    started = time.perf_counter()
    shape = DetectionHeads(encoder.model_id, region_finder, {}, LogisticHead(np.zeros(1), 0.0),
                           context_layers=list(layers), gender_cue=True, colour_grids=True, face_cue=True)  # fmt: skip
    x_presence: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    y_presence: dict[str, list[int]] = {layer: [] for layer in layers}
    look_of: dict[str, list[int]] = {layer: [] for layer in layers}  # which look each example is from (the folds)
    net_crops: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}  # the presence CNN's crop and geometry
    net_geo: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    x_gender, y_gender, x_gender_cal, y_gender_cal = [], [], [], []
    gender_crops: list[GenderCrops] = []  # the gender CNN's crops of the gender looks (training, then calibration)
    gender_crops_cal: list[GenderCrops] = []
    looks = [*examples, *calibration]

    def add_gender(example: LookExample, look: Any, calibrating: bool) -> None:
        if example.gender in GENDERS:
            xs, ys = (x_gender_cal, y_gender_cal) if calibrating else (x_gender, y_gender)
            xs.append(shape.gender_input(look))
            ys.append(GENDERS.index(example.gender))
            if net_examples:
                (gender_crops_cal if calibrating else gender_crops).append(
                    look_crops(look.pixels, look.placement.boxes, look.placement.face))

    for i, example in enumerate(looks):
        look = region_vectors(place, encoder, example.image, layers, face=shape.face_cue)
        inputs = {layer: x for layer, x in shape.presence_inputs(look).items() if layer not in example.unsure}
        if net_examples and inputs:
            crops, geo = region_crops(look.pixels, look.placement.boxes, list(inputs))
            for layer, crop, g in zip(inputs, crops, geo, strict=True):
                net_crops[layer].append(crop)
                net_geo[layer].append(g)
        for layer, x in inputs.items():
            x_presence[layer].append(x)
            y_presence[layer].append(int(layer in example.present))
            look_of[layer].append(i)
        add_gender(example, look, calibrating=i >= len(examples))
        if (i + 1) % 100 == 0:
            echo(f"heads: {i + 1}/{len(looks)} looks embedded")
    for i, example in enumerate([*gender_only, *gender_calibration]):
        if example.gender in GENDERS:  # the gender head's own looks: embedded only for it
            look = region_vectors(place, encoder, example.image, layers, face=shape.face_cue)
            add_gender(example, look, calibrating=i >= len(gender_only))
    fold_of = np.empty(len(looks), dtype=int)
    fold_of[np.random.default_rng(seed).permutation(len(looks))] = np.arange(len(looks)) % max(1, folds)
    net_logits: dict[str, np.ndarray] = {}
    if net_examples:
        place = placed_once(place)  # the presence and gender CNNs read the same placements of their looks
        shape.presence_nets = [train_presence_net(net_examples, place, layers, epochs=net_epochs, seed=seed, echo=echo)]
        for layer in layers:
            ys = y_presence[layer]
            if net_crops[layer] and layer in shape.presence_nets[0].layers and min(sum(ys), len(ys) - sum(ys)) >= MIN_CLASS_LOOKS:
                net_logits[layer] = shape.presence_nets[0].logits(np.stack(net_crops[layer]), np.stack(net_geo[layer]),
                                                                  [layer] * len(net_crops[layer]))  # fmt: skip
    for layer in layers:
        if not x_presence[layer]:
            continue
        x, y, layer_folds = np.array(x_presence[layer]), np.array(y_presence[layer]), fold_of[look_of[layer]]
        blend = cross_fit_blend(x, y, layer_folds, net_logits[layer], shape.threshold) if layer in net_logits else None
        if blend is not None:
            shape.presence[layer], shape.presence_blend[layer], threshold = blend
        else:
            shape.presence[layer], threshold = cross_fit_presence(x, y, layer_folds, shape.threshold)
        if threshold is not None:
            shape.layer_thresholds[layer] = threshold
    if not x_gender:
        raise ValueError("no training look has a gender among " + ", ".join(GENDERS))
    gender = fit_logistic(np.array(x_gender), np.array(y_gender))
    if x_gender_cal:
        gender = calibrate(gender, np.array(x_gender_cal), np.array(y_gender_cal))
    shape.gender = gender
    if net_examples:
        nets = train_gender_net(net_examples, place, layers, seed=seed, echo=echo)
        x_all, y_all = np.array([*x_gender, *x_gender_cal]), np.array([*y_gender, *y_gender_cal])
        logits = np.mean([net.logits(GenderCrops.stack([*gender_crops, *gender_crops_cal])) for net in nets], axis=0)
        gender_folds = np.random.default_rng(seed).permutation(len(y_all)) % max(1, folds)
        blend = cross_fit_blend(x_all, y_all, gender_folds, logits, 0.5)
        if blend is not None:
            shape.gender, shape.gender_blend, _ = blend
            shape.gender_nets = nets
    shape.meta = {
        "looks": len(examples),
        "calibration_looks": len(calibration),
        "gender_only_looks": len(gender_only),
        "gender_calibration_looks": len(gender_calibration),
        "presence_folds": folds,
        "examples": {layer: len(v) for layer, v in y_presence.items()},
        "positives": {layer: int(sum(v)) for layer, v in y_presence.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if shape.presence_nets:
        shape.meta["presence_net"] = {**shape.presence_nets[0].meta, "blended": sorted(shape.presence_blend)}
    if shape.gender_nets:
        shape.meta["gender_net"] = {**shape.gender_nets[0].meta, "copies": len(shape.gender_nets),
                                    "blend": [round(float(w), 3) for w in shape.gender_blend.weights]}  # fmt: skip
    return shape


def placed_once(place: Callable[[Any, list[str]], Any]) -> Callable[[Any, list[str]], Any]:
    """``place`` that places each look (the same image object, the same layers) once and then recalls it."""
    placements: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}

    def recalled(look: Any, layers: list[str]) -> Any:
        key = (id(look), tuple(layers))
        if key not in placements or placements[key][0] is not look:  # the image kept: its id is not reused
            placements[key] = (look, place(look, layers))
        return placements[key][1]

    return recalled


def train_gender_net(
    examples: Sequence[LookExample], place: Callable[[Any, list[str]], Any], layers: Sequence[str], *,
    epochs: int = GENDER_NET_EPOCHS, copies: int = GENDER_NET_COPIES, jitter: float = GENDER_NET_JITTER,
    inputs: Sequence[str] = GENDER_NET_INPUTS, seed: int = 101, echo: Callable[[str], None] = log.info,
) -> list[GenderNet]:
    """``copies`` gender CNNs (seeds ``seed``, ``seed + 1``, ...) trained on ``examples``' ``inputs`` crops (their
    placement's, and ``GENDER_NET_DRAWS`` more with each box moved and scaled by up to ``jitter`` of its size: the
    finder's boxes wander on new looks), for the looks with a gender among ``GENDERS``."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for example in examples:
        if example.gender not in GENDERS:
            continue
        placement = place(example.image, list(layers))
        pixels = placement.pixels(example.image)
        for draw in range(1 + GENDER_NET_DRAWS * (jitter > 0)):
            crops.append(look_crops(pixels, placement.boxes, placement.face, jitter=jitter if draw else 0.0, rng=rng))
            labels.append(GENDERS.index(example.gender))
    if len(set(labels)) < 2:
        raise DetectionHeadsError("the gender CNN's looks show one gender only")
    stacked = GenderCrops.stack(crops)
    placed_s = time.perf_counter() - started
    nets = [train_gender_cnn(stacked, np.array(labels), inputs=inputs, epochs=epochs, seed=seed + k) for k in range(copies)]
    meta = {"looks": len(examples), "crops": len(labels), "epochs": epochs, "inputs": nets[0].inputs,
            "placing_seconds": round(placed_s, 1), "training_seconds": round(time.perf_counter() - started - placed_s, 1)}  # fmt: skip
    for net in nets:
        net.meta = meta
    echo(f"heads: gender CNN on {len(examples)} looks ({len(labels)} crops): cut in {placed_s:.0f} s, "
         f"trained in {meta['training_seconds']:.0f} s")  # fmt: skip
    return nets


def train_presence_net(
    examples: Sequence[LookExample], place: Callable[[Any, list[str]], Any], layers: Sequence[str], *,
    epochs: int = RECIPE_NET_EPOCHS, seed: int = 101, echo: Callable[[str], None] = log.info,
) -> PresenceNet:
    """The presence CNN trained on ``examples``' placed regions (each placed layer's main region; a layer
    planted but mostly out of frame is no example), for the layers planted in some look."""
    started = time.perf_counter()
    crops, geo, names, labels = [], [], [], []
    for example in examples:
        placement = place(example.image, list(layers))
        placed = [layer for layer in layers if layer in placement.boxes and layer not in example.unsure]
        if not placed:
            continue
        c, g = region_crops(placement.pixels(example.image), placement.boxes, placed)
        crops.append(c)
        geo.append(g)
        names += placed
        labels += [int(layer in example.present) for layer in placed]
    planted = [layer for layer in layers if any(y and n == layer for n, y in zip(names, labels, strict=True))]
    if not planted:
        raise DetectionHeadsError("the presence CNN's looks plant no layer")
    keep = np.array([n in planted for n in names])
    placed_s = time.perf_counter() - started
    net = train_net(np.concatenate(crops)[keep], np.concatenate(geo)[keep],
                    np.array([planted.index(n) for n in names if n in planted]), np.array(labels)[keep], planted,
                    epochs=epochs, seed=seed)  # fmt: skip
    net.meta = {"looks": len(examples), "crops": int(keep.sum()), "epochs": epochs, "placing_seconds": round(placed_s, 1),
                "training_seconds": round(time.perf_counter() - started - placed_s, 1)}  # fmt: skip
    echo(f"heads: presence CNN on {len(examples)} looks ({int(keep.sum())} crops): placed in {placed_s:.0f} s, "
         f"trained in {net.meta['training_seconds']:.0f} s")  # fmt: skip
    return net


def cross_fit_blend(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, net: np.ndarray, default: float
) -> tuple[LogisticHead, LogisticHead, float | None] | None:
    """One layer's presence head fitted on all of ``x`` (as ``cross_fit_presence`` does, uncalibrated) and its
    blend with the presence CNN: a two-feature logistic head over [the head's logit, the CNN's logit] fitted on
    out-of-fold logits of both (``net``: the CNN's, trained on looks of its own), Platt-scaled on its
    own out-of-fold logits, and the threshold with the best F1 on those. None with under two folds or under
    ``MIN_CLASS_LOOKS`` examples of either class (the layer keeps ``cross_fit_presence``'s head)."""
    x, y, folds = np.asarray(x, dtype=np.float64), np.asarray(y), np.asarray(folds)
    net = np.asarray(net, dtype=np.float64)
    if len(np.unique(folds)) < 2 or min(int(y.sum()), len(y) - int(y.sum())) < MIN_CLASS_LOOKS:
        return None
    z = np.stack([out_of_fold_logits(x, y, folds), net], axis=1)
    calibrated, threshold = calibrated_on(fit_logistic(z, y, l2=BLEND_L2), out_of_fold_logits(z, y, folds, l2=BLEND_L2), y, default)
    return fit_logistic(x, y), calibrated, threshold


def out_of_fold_logits(x: np.ndarray, y: np.ndarray, folds: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Each example's logit from a head (``fit_logistic``, ``l2``) fitted without its fold."""
    logits = np.zeros(len(y))
    for fold in np.unique(folds):
        out = folds == fold
        held_out = fit_logistic(x[~out], y[~out], l2=l2)
        logits[out] = held_out.logit(x[out])
    return logits


def calibrated_on(head: LogisticHead, logits: np.ndarray, y: np.ndarray, default: float) -> tuple[LogisticHead, float | None]:
    """``head`` Platt-scaled (``calibrate``) on its out-of-fold ``logits``, and the threshold with the best F1 on the
    same out-of-fold probabilities."""
    platt = calibrate(LogisticHead(np.ones(1), 0.0), logits[:, None], y)
    a, c = float(platt.weights[0]), platt.bias
    return LogisticHead(head.weights * a, head.bias * a + c), best_f1_threshold(platt.prob(logits[:, None]), y, default,
                                                                               min_each=MIN_CLASS_LOOKS)  # fmt: skip


def cross_fit_presence(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, default: float
) -> tuple[LogisticHead, float | None]:
    """One layer's presence head fitted on all of ``x``, Platt-scaled (``calibrate``) on out-of-fold logits
    (each example scored by a head fitted without its fold), and the threshold with the best F1 on the same
    out-of-fold probabilities. Fewer than two folds, or fewer than ``MIN_CLASS_LOOKS`` examples of either class
    (too few to calibrate on, and a threshold chosen on them is noise): the head as fitted, no threshold of its
    own (the shared one applies)."""
    x, y, folds = np.asarray(x, dtype=np.float64), np.asarray(y), np.asarray(folds)
    head = fit_logistic(x, y)
    if len(np.unique(folds)) < 2 or min(int(y.sum()), len(y) - int(y.sum())) < MIN_CLASS_LOOKS:
        return head, None
    return calibrated_on(head, out_of_fold_logits(x, y, folds), y, default)


def best_f1_threshold(probs: np.ndarray, labels: np.ndarray, default: float, min_each: int = 3) -> float | None:
    """The presence threshold with the best F1 on these looks (ties: the one nearest ``default``), halfway
    between the two probabilities it separates; None with under ``min_each`` looks of either class. A calibrated
    head of a rare layer seldom says more than its base rate, so one threshold of 0.5 for every layer finds
    rare layers never; each layer's own threshold trades that precision for recall where F1 says it pays."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels) > 0.5
    if min(labels.sum(), (~labels).sum()) < min_each:
        return None
    values = np.unique(probs)
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best, best_key = None, None
    for cut in cuts:
        chosen = probs >= cut
        tp = int((chosen & labels).sum())
        f1 = 2 * tp / max(1, chosen.sum() + labels.sum())
        key = (round(f1, 9), -abs(cut - default))
        if best_key is None or key > best_key:
            best, best_key = float(np.clip(cut, 0.0, 1.0)), key
    return best


def validate_heads(
    heads: DetectionHeads, examples: Sequence[LookExample], encoder: Any, place: Callable
) -> dict[str, Any]:
    """Presence precision/recall (pooled) and gender accuracy of ``heads`` on ``examples``."""
    tp = fp = fn = right = 0
    confidences = []
    for example in examples:
        found = heads.detect(region_vectors(place, encoder, example.image, heads.placed_layers(), face=heads.face_cue))
        chosen = set(found.layers) - example.unsure
        tp += len(chosen & example.present)
        fp += len(chosen - example.present)
        fn += len(example.present - chosen)
        right += found.gender == example.gender
        confidences.append(found.gender_confidence)
    return {
        "looks": len(examples),
        "presence_precision": round(tp / max(1, tp + fp), 4),
        "presence_recall": round(tp / max(1, tp + fn), 4),
        "gender_accuracy": round(right / max(1, len(examples)), 4),
        "gender_mean_confidence": round(float(np.mean(confidences)), 4) if confidences else None,
    }


def train_from_sample(
    settings: Any,
    encoder: Any,
    train_root: Path,
    *,
    size: int = RECIPE_SIZE,
    seed: int = RECIPE_SEED,
    fixed_looks: int = RECIPE_FIXED_LOOKS,
    varied_looks: int = RECIPE_VARIED_LOOKS,
    gender_looks: int = RECIPE_GENDER_LOOKS,
    net_looks: int = RECIPE_NET_LOOKS,
    validation_share: float = 0.2,
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Generate training looks under ``train_root`` (their own catalog, the ``train`` framing split: no
    held-out pose family, aspect or figure style) and fit the heads on them (``train_on_looks``); and, for the
    gender head alone, ``gender_looks`` more looks of a second sample in the same proportions under
    ``train_root / "gender-looks"`` (seed ``seed + RECIPE_GENDER_SEED_OFFSET``, half the catalog; 0: none); and,
    for the presence and gender CNNs alone, ``net_looks`` looks of a third sample under ``train_root / "net-looks"`` (seed
    ``seed + RECIPE_NET_SEED_OFFSET``, half the catalog, same proportions; 0: no CNN, format-4 heads)."""
    from looksync.sample import generate_sample

    manifest = generate_sample(train_root, size=size, seed=seed, n_looks=fixed_looks, n_varied_looks=varied_looks,
                               varied_split="train")  # fmt: skip
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    gender_examples: list[LookExample] = []
    gender_sample: dict[str, int] = {}
    if gender_looks > 0:
        total = max(1, fixed_looks + varied_looks)
        gender_fixed = min(gender_looks, max(1, gender_looks * fixed_looks // total)) if fixed_looks else 0
        gender_sample = {"size": max(60, size // 2), "seed": seed + RECIPE_GENDER_SEED_OFFSET,
                         "fixed_looks": gender_fixed, "varied_looks": gender_looks - gender_fixed}  # fmt: skip
        gender_manifest = generate_sample(train_root / "gender-looks", size=gender_sample["size"], seed=gender_sample["seed"],
                                          n_looks=gender_fixed, n_varied_looks=gender_looks - gender_fixed,
                                          varied_split="train")  # fmt: skip
        gender_truth = json.loads(gender_manifest.ground_truth_path.read_text(encoding="utf-8"))
        gender_examples = look_examples(gender_truth, gender_manifest.looks_dir)
    net_examples: list[LookExample] = []
    net_sample: dict[str, int] = {}
    if net_looks > 0:
        started = time.perf_counter()
        total = max(1, fixed_looks + varied_looks)
        net_fixed = min(net_looks, max(1, net_looks * fixed_looks // total)) if fixed_looks else 0
        net_sample = {"size": max(60, size // 2), "seed": seed + RECIPE_NET_SEED_OFFSET, "fixed_looks": net_fixed,
                      "varied_looks": net_looks - net_fixed}  # fmt: skip
        net_manifest = generate_sample(train_root / "net-looks", size=net_sample["size"], seed=net_sample["seed"],
                                       n_looks=net_fixed, n_varied_looks=net_looks - net_fixed, varied_split="train")  # fmt: skip
        net_examples = look_examples(json.loads(net_manifest.ground_truth_path.read_text(encoding="utf-8")),
                                     net_manifest.looks_dir)  # fmt: skip
        net_sample["generating_seconds"] = round(time.perf_counter() - started, 1)
        echo(f"heads: {len(net_examples)} looks for the presence CNN generated in {net_sample['generating_seconds']:.0f} s")
    heads = train_on_looks(settings, encoder, look_examples(truth, manifest.looks_dir), seed=seed,
                           validation_share=validation_share, gender_examples=gender_examples,
                           net_examples=net_examples, echo=echo)  # fmt: skip
    heads.meta["sample"] = {"size": size, "seed": seed, "fixed_looks": fixed_looks, "varied_looks": varied_looks}
    if net_sample:
        heads.meta["sample"]["net_sample"] = net_sample
    if gender_sample:
        heads.meta["sample"]["gender_sample"] = gender_sample
    return heads


def train_on_looks(
    settings: Any,
    encoder: Any,
    examples: Sequence[LookExample],
    *,
    seed: int = 101,
    validation_share: float = 0.2,
    gender_examples: Sequence[LookExample] = (),
    net_examples: Sequence[LookExample] = (),
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Fit the heads on the settings' region finder's crops of ``examples`` (shuffled with ``seed``), except
    the last ``validation_share`` of them: half of those calibrate the gender head and join the presence
    heads' cross-fitting (``train_heads``), the other half measure them (``meta["validation"]``).
    ``gender_examples`` train the gender head alone, split the same way (their validation half: the gender
    accuracy ``meta["validation"]["gender_only"]``). ``net_examples``: the presence CNN's own looks
    (``train_heads``), all of them trained on."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.region_finders import make_region_finder

    order = np.random.default_rng(seed).permutation(len(examples))
    cut = int(len(examples) * (1 - validation_share))
    fit_set, held = [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]
    finder = make_region_finder(settings.region_finder, encoder, settings=settings)
    place = getattr(finder, "place", None)
    if place is None:
        raise DetectionHeadsError(f"region finder {settings.region_finder!r} places no regions; use pose or layout")
    echo(f"heads: {len(fit_set)} training looks, {len(held)} validation looks, regions {finder.name}")
    # calibrated on looks the heads were not fitted on (out of fold, for presence): a head that is sure of
    # itself on its training looks but not right on new ones is made to say so
    calibration, validation = held[: len(held) // 2], held[len(held) // 2 :]
    order = np.random.default_rng(seed).permutation(len(gender_examples))
    cut = int(len(gender_examples) * (1 - validation_share))
    gender_fit, gender_held = [gender_examples[i] for i in order[:cut]], [gender_examples[i] for i in order[cut:]]
    if gender_examples:
        echo(
            f"heads: the gender head also on {len(gender_fit)} training looks, {len(gender_held)} validation looks of its own"
        )
    heads = train_heads(fit_set, encoder, place, finder.name, list(get_taxonomy().layers), calibration=calibration,
                        gender_only=gender_fit, gender_calibration=gender_held[: len(gender_held) // 2],
                        net_examples=net_examples, seed=seed, echo=echo)  # fmt: skip
    if validation:
        heads.meta["validation"] = validate_heads(heads, validation, encoder, place)
    if gender_held[len(gender_held) // 2 :]:
        own = validate_heads(heads, gender_held[len(gender_held) // 2 :], encoder, place)
        heads.meta.setdefault("validation", {})["gender_only"] = {
            "looks": own["looks"],
            "gender_accuracy": own["gender_accuracy"],
        }
    return heads
