"""The presence CNN (``looksync/search/presence_net.py``) and the format-5 heads that blend it in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from looksync.search.detection import DetectionHeads, LogisticHead, LookVectors
from looksync.search.detection_training import cross_fit_blend, train_heads
from looksync.search.presence_net import NET_SIZE, PresenceNet, geometry, region_crops, train_net
from looksync.search.regions import Placement

LAYERS = ["topwear", "bag"]


def _patch_looks(n: int, seed: int) -> tuple[list[Image.Image], list[bool]]:
    """Looks of grey noise; half of them show a red patch (the "bag") somewhere in their right half."""
    rng = np.random.default_rng(seed)
    looks, shown = [], []
    for i in range(n):
        pixels = rng.integers(60, 200, size=(96, 64, 3)).astype(np.uint8)
        if i % 2:
            y, x = rng.integers(48, 78), rng.integers(34, 50)
            pixels[y : y + 14, x : x + 12] = (220, 30, 30)
        looks.append(Image.fromarray(pixels))
        shown.append(bool(i % 2))
    return looks, shown


BOXES = {"topwear": [(0, 0, 64, 48)], "bag": [(32, 44, 64, 96)]}


def _crops(looks: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [region_crops(look, BOXES, ["bag"]) for look in looks]
    return np.concatenate([c for c, _ in pairs]), np.concatenate([g for _, g in pairs])


def test_region_crops_cut_each_layers_main_box_and_its_geometry():
    look = Image.new("RGB", (64, 96), (0, 0, 255))
    look.paste((255, 0, 0), (32, 44, 64, 96))
    boxes = {"topwear": [(0, 0, 64, 40)], "bag": [(32, 44, 64, 96), (0, 44, 32, 96)]}
    crops, geo = region_crops(look, boxes, ["topwear", "bag"])
    assert crops.shape == (2, NET_SIZE, NET_SIZE, 3) and crops.dtype == np.uint8
    assert (crops[1] == (255, 0, 0)).all() and (crops[0] == (0, 0, 255)).all()  # the bag's main box, not its other side
    assert geo[1][:4] == pytest.approx([0.5, 44 / 96, 1.0, 1.0])
    assert geometry(np.array([[0.0, 0.0, 0.25, 0.5]]))[0][4:] == pytest.approx([1.0, np.log(0.5)])


def test_the_cnn_learns_whether_a_region_shows_a_patch():
    looks, shown = _patch_looks(160, seed=1)
    crops, geo = _crops(looks)
    net = train_net(crops, geo, np.zeros(len(crops), dtype=int), np.array(shown, dtype=int), ["bag"], epochs=10, seed=0,
                    threads=1)  # fmt: skip
    held, held_shown = _patch_looks(80, seed=2)
    crops, geo = _crops(held)
    logits = net.logits(crops, geo, ["bag"] * len(crops))
    accuracy = float(np.mean((logits > 0) == np.array(held_shown)))
    assert accuracy >= 0.95
    assert (net.logits(crops[:3], geo[:3], ["eyewear"] * 3) == 0).all()  # a layer it has no logit for reads 0


def test_the_blend_leans_on_the_cnn_where_it_knows_what_the_head_does_not():
    rng = np.random.default_rng(3)
    y = np.arange(200) % 2
    x = rng.normal(size=(200, 5))  # the head's inputs: noise
    net = np.where(y > 0, 2.0, -2.0) + rng.normal(scale=0.7, size=200)  # the CNN's logit: informative
    head, blend, threshold = cross_fit_blend(x, y, np.arange(200) % 5, net, 0.5)
    assert head.weights.shape == (5,) and blend.weights.shape == (2,)
    assert blend.weights[1] > 5 * abs(blend.weights[0])
    assert threshold is not None and 0.0 < threshold < 1.0
    assert cross_fit_blend(x[:8], y[:8], np.arange(8) % 5, net[:8], 0.5) is None  # too few of each class


def _net(seed: int = 0) -> PresenceNet:
    looks, shown = _patch_looks(40, seed=seed)
    crops, geo = _crops(looks)
    return train_net(crops, geo, np.zeros(len(crops), dtype=int), np.array(shown, dtype=int), ["bag"], epochs=1, seed=seed,
                     threads=1)  # fmt: skip


def test_format_5_heads_round_trip_with_their_cnn_and_blend(tmp_path):
    rng = np.random.default_rng(4)
    net = _net()
    heads = DetectionHeads("M@1", "pose", {layer: LogisticHead(rng.normal(size=4), 0.1) for layer in LAYERS},
                           LogisticHead(rng.normal(size=4), 0.0), presence_nets=[net],
                           presence_blend={"bag": LogisticHead(np.array([0.5, 1.5]), -0.2)})  # fmt: skip
    path = heads.save(tmp_path / "h5.npz")
    meta = json.loads(bytes(np.load(path, allow_pickle=False)["__meta__"]).decode())
    assert meta["format"] == 6 and meta["presence_net"]["layers"] == ["bag"]  # written as format 6 (no gender CNN)
    back = DetectionHeads.load(path)
    looks, _ = _patch_looks(4, seed=5)
    for look in looks:
        vectors = LookVectors({layer: np.ones(2) for layer in LAYERS}, np.ones(2), None, Placement(BOXES, "pose"),
                              pixels=look)  # fmt: skip
        found, again = heads.detect(vectors), back.detect(vectors)
        assert again.probs == pytest.approx(found.probs)
        crops, geo = region_crops(look, BOXES, ["bag"])
        z = float(heads.presence_inputs(vectors)["bag"] @ heads.presence["bag"].weights + heads.presence["bag"].bias)
        expected = heads.presence_blend["bag"].prob(np.array([z, net.logits(crops, geo, ["bag"])[0]]))
        assert found.probs["bag"] == pytest.approx(float(expected))  # the bag: the blend of head and CNN
        assert found.probs["topwear"] == pytest.approx(float(heads.presence["topwear"].prob(np.ones(4))))  # no blend
    # without the look's pixels the CNN cannot read: the bag's head alone
    bare = LookVectors({layer: np.ones(2) for layer in LAYERS}, np.ones(2), None, Placement(BOXES, "pose"))
    assert back.detect(bare).probs["bag"] == pytest.approx(float(heads.presence["bag"].prob(np.ones(4))))
    # a format-4 file (no CNN, no blend) still loads and reads its heads alone
    plain = DetectionHeads("M@1", "pose", dict(heads.presence), heads.gender)
    with np.load(plain.save(tmp_path / "h4.npz")) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    meta["format"] = 4
    meta.pop("presence_net")
    np.savez(tmp_path / "v4.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    v4 = DetectionHeads.load(tmp_path / "v4.npz")
    assert v4.presence_nets == [] and v4.presence_blend == {}
    vectors = LookVectors({layer: np.ones(2) for layer in LAYERS}, np.ones(2), None, Placement(BOXES, "pose"),
                          pixels=looks[0])  # fmt: skip
    assert v4.detect(vectors).probs["bag"] == pytest.approx(float(heads.presence["bag"].prob(np.ones(4))))


def test_heads_train_their_cnn_on_looks_of_its_own(tiny_encoder, layout_place, train_looks, tmp_path):
    from looksync.catalog.taxonomy import get_taxonomy

    taxonomy = get_taxonomy()
    examples, net_looks = train_looks(4, 18), train_looks(5, 9)
    heads = train_heads(examples, tiny_encoder, layout_place, "layout", list(taxonomy.layers), net_examples=net_looks,
                        net_epochs=1)  # fmt: skip
    assert len(heads.presence_nets) == 1 and heads.meta["presence_net"]["looks"] == 9
    assert set(heads.presence_nets[0].layers) <= set(taxonomy.layers)
    assert heads.presence_blend and set(heads.presence_blend) == set(heads.meta["presence_net"]["blended"])
    for layer in heads.presence_blend:
        assert heads.presence_blend[layer].weights.shape == (2,) and layer in heads.presence_nets[0].layers
    path = heads.save(tmp_path / "h.npz")
    back = DetectionHeads.load(path)
    from looksync.search.detection import region_vectors

    vectors = region_vectors(layout_place, tiny_encoder, examples[0].image, back.placed_layers(), face=back.face_cue)
    assert back.detect(vectors).probs == pytest.approx(heads.detect(vectors).probs)
