"""The gender CNN (``looksync/search/gender_net.py``) and the format-6 heads that blend it in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from looksync.search.detection import DetectionHeads, LogisticHead, LookVectors
from looksync.search.detection_training import train_heads
from looksync.search.gender_net import (
    HEAD_SIZE,
    PERSON_SIZE,
    GenderCrops,
    GenderNet,
    head_box,
    look_crops,
    person_box,
    train_net,
)
from looksync.search.regions import Placement

FACE = (24, 8, 40, 26)  # the looks' face box
BOXES = {"headwear": [(20, 0, 44, 14)], "topwear": [(12, 28, 52, 60)], "bottomwear": [(16, 58, 48, 94)]}


def _figure_looks(n: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """Looks of grey noise with a skin-coloured face; on "men" (odd looks) a dark beard under it, on "women" dark
    long hair down both of its sides."""
    rng = np.random.default_rng(seed)
    looks, men = [], []
    for i in range(n):
        pixels = rng.integers(90, 170, size=(96, 64, 3)).astype(np.uint8)
        dx, dy = rng.integers(-2, 3), rng.integers(-2, 3)
        x0, y0, x1, y1 = FACE[0] + dx, FACE[1] + dy, FACE[2] + dx, FACE[3] + dy
        pixels[y0:y1, x0:x1] = (230, 190, 160)
        if i % 2:
            pixels[y1 - 6 : y1, x0 + 2 : x1 - 2] = (40, 30, 20)
        else:
            pixels[y0:y1, x0 - 3 : x0 + 1] = (40, 30, 20)
            pixels[y0:y1, x1 - 1 : x1 + 3] = (40, 30, 20)
        looks.append(Image.fromarray(pixels))
        men.append(i % 2)
    return looks, men


def _crops(looks: list[Image.Image]) -> GenderCrops:
    return GenderCrops.stack([look_crops(look, BOXES, FACE) for look in looks])


def test_the_head_is_the_widened_face_else_the_head_and_shoulders_and_the_person_the_union_of_the_boxes():
    assert head_box(BOXES, (20, 10, 30, 30), (64, 96), margin=0.5) == (15, 0, 35, 40)  # widened, clipped to the look
    assert head_box(BOXES, None, (64, 96)) == (12, 0, 52, 39)  # no face: the head and shoulders
    assert head_box({"topwear": BOXES["topwear"]}, None, (64, 96)) is None
    assert person_box(BOXES) == (12, 0, 52, 94)
    assert person_box({}) is None
    crops = look_crops(Image.new("RGB", (64, 96), (0, 0, 255)), {}, None)
    assert crops.head.shape == (1, HEAD_SIZE, HEAD_SIZE, 3) and crops.person.shape == (1, PERSON_SIZE[1], PERSON_SIZE[0], 3)
    assert crops.found.tolist() == [[0.0, 0.0]] and not crops.head.any()  # nothing found: zeros, and it says so


def test_the_cnn_learns_a_gender_cue_on_the_head():
    looks, men = _figure_looks(200, seed=1)
    net = train_net(_crops(looks), np.array(men), epochs=12, seed=0, threads=1)
    assert net.inputs == ["head", "person"]
    held, held_men = _figure_looks(100, seed=2)
    accuracy = float(np.mean((net.logits(_crops(held)) > 0) == np.array(held_men, dtype=bool)))
    assert accuracy >= 0.95
    head_only = train_net(_crops(looks), np.array(men), inputs=["head"], epochs=1, seed=0, threads=1)
    assert head_only.inputs == ["head"] and head_only.logits(_crops(held[:3])).shape == (3,)


def _net(seed: int = 0) -> GenderNet:
    looks, men = _figure_looks(40, seed=seed)
    return train_net(_crops(looks), np.array(men), epochs=1, seed=seed, threads=1)


def _vectors(look: Image.Image | None, face=FACE) -> LookVectors:
    return LookVectors({layer: np.ones(2) for layer in BOXES}, np.ones(2), None, Placement(BOXES, "pose", face=face),
                       pixels=look)  # fmt: skip


def test_format_6_heads_round_trip_with_their_gender_cnn_and_blend(tmp_path):
    rng = np.random.default_rng(4)
    net = _net()
    heads = DetectionHeads("M@1", "pose", {layer: LogisticHead(rng.normal(size=4), 0.1) for layer in BOXES},
                           LogisticHead(rng.normal(size=4), 0.2), gender_nets=[net],
                           gender_blend=LogisticHead(np.array([0.4, 1.7]), -0.3))  # fmt: skip
    path = heads.save(tmp_path / "h6.npz")
    meta = json.loads(bytes(np.load(path, allow_pickle=False)["__meta__"]).decode())
    assert meta["format"] == 6 and meta["gender_net"] == {"copies": 1, "inputs": ["head", "person"], "width": net.width}
    back = DetectionHeads.load(path)
    looks, _ = _figure_looks(4, seed=5)
    for look in looks:
        found, again = heads.detect(_vectors(look)), back.detect(_vectors(look))
        assert again.gender_prob == pytest.approx(found.gender_prob) and again.gender == found.gender
        z = float(heads.gender_input(_vectors(look)) @ heads.gender.weights + heads.gender.bias)
        cnn = float(net.logits(look_crops(look, BOXES, FACE))[0])
        assert found.gender_prob == pytest.approx(float(heads.gender_blend.prob(np.array([z, cnn]))))
    # without the look's pixels the CNN cannot read: the gender head alone
    assert back.detect(_vectors(None)).gender_prob == pytest.approx(float(heads.gender.prob(np.ones(4))))


def test_heads_of_formats_5_and_older_still_load_and_read_their_gender_head_alone(tmp_path):
    rng = np.random.default_rng(6)
    gender = LogisticHead(rng.normal(size=4), 0.2)
    heads = DetectionHeads("M@1", "pose", {layer: LogisticHead(rng.normal(size=4), 0.1) for layer in BOXES}, gender)
    with np.load(heads.save(tmp_path / "h.npz")) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    assert meta["gender_net"] is None and "gender_blend" not in arrays
    look = _figure_looks(1, seed=7)[0][0]
    for fmt in (5, 4, 1):
        old = {k: v for k, v in meta.items() if k != "gender_net"} | {"format": fmt}
        np.savez(tmp_path / f"v{fmt}.npz", __meta__=np.frombuffer(json.dumps(old).encode(), dtype=np.uint8), **arrays)
        loaded = DetectionHeads.load(tmp_path / f"v{fmt}.npz")
        assert loaded.gender_nets == [] and loaded.gender_blend is None
        assert loaded.detect(_vectors(look)).gender_prob == pytest.approx(float(gender.prob(np.ones(4))))


def test_heads_train_their_gender_cnn_on_the_cnn_looks_and_blend_it(tiny_encoder, layout_place, train_looks, tmp_path):
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.detection import region_vectors

    taxonomy = get_taxonomy()
    examples, net_looks = train_looks(4, 24), train_looks(5, 12)
    heads = train_heads(examples, tiny_encoder, layout_place, "layout", list(taxonomy.layers), net_examples=net_looks,
                        net_epochs=1)  # fmt: skip
    assert len(heads.gender_nets) == 1 and heads.gender_blend is not None
    assert heads.gender_blend.weights.shape == (2,) and heads.meta["gender_net"]["looks"] == 12
    assert heads.gender_nets[0].inputs == ["person"]  # the recipe's input
    plain = train_heads(examples, tiny_encoder, layout_place, "layout", list(taxonomy.layers))
    assert plain.gender_nets == [] and plain.gender_blend is None  # no CNN looks: no CNN
    back = DetectionHeads.load(heads.save(tmp_path / "h.npz"))
    vectors = region_vectors(layout_place, tiny_encoder, examples[0].image, back.placed_layers(), face=back.face_cue)
    assert back.detect(vectors).gender_prob == pytest.approx(heads.detect(vectors).gender_prob)
