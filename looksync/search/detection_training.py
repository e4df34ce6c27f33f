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
from looksync.search.heads_recipe import RECIPE_FIXED_LOOKS, RECIPE_SEED, RECIPE_SIZE, RECIPE_VARIED_LOOKS

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


def train_heads(
    examples: Sequence[LookExample],
    encoder: Any,
    place: Callable[[Any, list[str]], Any],
    region_finder: str,
    layers: Sequence[str],
    *,
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Fit the presence and gender heads on the region finder's crops of ``examples``."""
    started = time.perf_counter()
    shape = DetectionHeads(encoder.model_id, region_finder, {}, LogisticHead(np.zeros(1), 0.0),
                           context_layers=list(layers), gender_cue=True, colour_grids=True)  # fmt: skip
    x_presence: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    y_presence: dict[str, list[int]] = {layer: [] for layer in layers}
    x_gender, y_gender = [], []
    for i, example in enumerate(examples):
        look = region_vectors(place, encoder, example.image, layers)
        for layer, x in shape.presence_inputs(look).items():
            if layer in example.unsure:
                continue
            x_presence[layer].append(x)
            y_presence[layer].append(int(layer in example.present))
        if example.gender in GENDERS:
            x_gender.append(shape.gender_input(look))
            y_gender.append(GENDERS.index(example.gender))
        if (i + 1) % 100 == 0:
            echo(f"heads: {i + 1}/{len(examples)} looks embedded")
    presence = {
        layer: fit_logistic(np.array(x_presence[layer]), np.array(y_presence[layer]))
        for layer in layers
        if x_presence[layer]
    }
    if not x_gender:
        raise ValueError("no training look has a gender among " + ", ".join(GENDERS))
    gender = fit_logistic(np.array(x_gender), np.array(y_gender))
    meta = {
        "looks": len(examples),
        "examples": {layer: len(v) for layer, v in y_presence.items()},
        "positives": {layer: int(sum(v)) for layer, v in y_presence.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    shape.presence, shape.gender, shape.meta = presence, gender, meta
    return shape


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


def calibrate_heads(heads: DetectionHeads, examples: Sequence[LookExample], encoder: Any, place: Callable) -> None:
    """Platt-scale every head (presence per layer, gender) on ``examples``, looks kept out of the fit, and
    choose each layer's presence threshold on them (``best_f1_threshold``)."""
    x_presence: dict[str, list[np.ndarray]] = {layer: [] for layer in heads.presence}
    y_presence: dict[str, list[int]] = {layer: [] for layer in heads.presence}
    x_gender, y_gender = [], []
    for example in examples:
        look = region_vectors(place, encoder, example.image, heads.placed_layers())
        for layer, x in heads.presence_inputs(look).items():
            if layer in heads.presence and layer not in example.unsure:
                x_presence[layer].append(x)
                y_presence[layer].append(int(layer in example.present))
        if example.gender in GENDERS:
            x_gender.append(heads.gender_input(look))
            y_gender.append(GENDERS.index(example.gender))
    for layer, xs in x_presence.items():
        if xs:
            heads.presence[layer] = calibrate(heads.presence[layer], np.array(xs), np.array(y_presence[layer]))
            probs = np.array([heads.presence[layer].prob(x) for x in xs])
            best = best_f1_threshold(probs, np.array(y_presence[layer]), heads.threshold)
            if best is not None:
                heads.layer_thresholds[layer] = best
    if x_gender:
        heads.gender = calibrate(heads.gender, np.array(x_gender), np.array(y_gender))


def validate_heads(
    heads: DetectionHeads, examples: Sequence[LookExample], encoder: Any, place: Callable
) -> dict[str, Any]:
    """Presence precision/recall (pooled) and gender accuracy of ``heads`` on ``examples``."""
    tp = fp = fn = right = 0
    confidences = []
    for example in examples:
        found = heads.detect(region_vectors(place, encoder, example.image, heads.placed_layers()))
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
    validation_share: float = 0.2,
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Generate training looks under ``train_root`` (their own catalog, the ``train`` framing split: no
    held-out pose family, aspect or figure style) and fit the heads on them (``train_on_looks``)."""
    from looksync.sample import generate_sample

    manifest = generate_sample(train_root, size=size, seed=seed, n_looks=fixed_looks, n_varied_looks=varied_looks,
                               varied_split="train")  # fmt: skip
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    heads = train_on_looks(settings, encoder, look_examples(truth, manifest.looks_dir), seed=seed,
                           validation_share=validation_share, echo=echo)  # fmt: skip
    heads.meta["sample"] = {"size": size, "seed": seed, "fixed_looks": fixed_looks, "varied_looks": varied_looks}
    return heads


def train_on_looks(
    settings: Any,
    encoder: Any,
    examples: Sequence[LookExample],
    *,
    seed: int = 101,
    validation_share: float = 0.2,
    echo: Callable[[str], None] = log.info,
) -> DetectionHeads:
    """Fit the heads on the settings' region finder's crops of ``examples`` (shuffled with ``seed``), except
    the last ``validation_share`` of them: half of those calibrate the heads, the other half measure them
    (before and after calibration, in ``meta``)."""
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
    heads = train_heads(fit_set, encoder, place, finder.name, list(get_taxonomy().layers), echo=echo)
    if held:
        # calibrated on the first half of the held-out looks, measured on the second: a head that is sure
        # of itself on its training looks but not right on new ones is made to say so
        calibration, validation = held[: len(held) // 2], held[len(held) // 2 :]
        heads.meta["validation_uncalibrated"] = validate_heads(heads, validation, encoder, place)
        calibrate_heads(heads, calibration, encoder, place)
        heads.meta["calibration_looks"] = len(calibration)
        heads.meta["validation"] = validate_heads(heads, validation, encoder, place)
    return heads
