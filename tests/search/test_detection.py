"""Detection heads: logistic heads, their file, their use by the local query generator for looks sent
without hints, and training on a generated sample's looks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from looksync.search.detection import (
    GRID_SIZE,
    HEADS_FORMAT,
    DetectionHeads,
    DetectionHeadsError,
    LogisticHead,
    LookVectors,
    calibrate,
    colour_grid,
    context_features,
    fit_logistic,
    gender_features,
    head_and_shoulders_box,
    region_vectors,
)
from looksync.search.detection_training import (
    best_f1_threshold,
    cross_fit_presence,
    look_examples,
    train_heads,
    validate_heads,
)


def _const(bias: float, dim: int) -> LogisticHead:
    return LogisticHead(np.zeros(dim), bias)


def _look(crops: dict[str, np.ndarray], whole: np.ndarray, head: np.ndarray | None = None) -> LookVectors:
    return LookVectors(crops, whole, head, placement=None)


def test_fit_logistic_separates_separable_data_and_balances_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8))
    y = (x[:, 2] - 0.5 * x[:, 5] > 1.0).astype(int)  # about 1 in 6 positive
    head = fit_logistic(x, y, steps=800)
    predicted = head.prob(x) >= 0.5
    assert (predicted == y).mean() > 0.9
    assert predicted[y == 1].mean() > 0.85  # the rare class is not given up
    constant = fit_logistic(x, np.zeros(300))
    assert np.all(constant.prob(x) < 0.01) and not constant.weights.any()
    with pytest.raises(ValueError, match="do not match"):
        fit_logistic(x, y[:10])


def test_fit_logistic_learns_from_a_feature_on_a_small_scale():
    """Cosines next to embedding components: a feature a thousand times smaller than the others is
    standardised for the fit, not drowned by the regularisation."""
    rng = np.random.default_rng(5)
    signal = rng.normal(size=400)
    x = np.column_stack([1e-3 * signal, rng.normal(size=(400, 6))])
    y = (signal > 0).astype(int)
    head = fit_logistic(x, y)
    assert ((head.prob(x) >= 0.5) == y).mean() > 0.95


def test_calibration_brings_an_overconfident_head_back_to_what_it_knows():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6))
    signal = (x[:, 0] > 0).astype(int)
    overconfident = LogisticHead(np.array([20.0, 0, 0, 0, 0, 0]), 0.0)  # probabilities of ~0 or ~1
    # labels it cannot predict on new looks: its confidence falls to the base rate
    noise = rng.integers(0, 2, size=400)
    lost = calibrate(overconfident, x, noise)
    confidence = np.maximum(lost.prob(x), 1 - lost.prob(x))
    assert confidence.mean() < 0.6 and np.maximum(overconfident.prob(x), 1 - overconfident.prob(x)).mean() > 0.95
    # labels it does predict: it stays sure and right
    kept = calibrate(overconfident, x, signal)
    assert ((kept.prob(x) >= 0.5) == signal).mean() > 0.97
    assert np.maximum(kept.prob(x), 1 - kept.prob(x)).mean() > 0.9
    # too few examples of a class to fit: unchanged
    same = calibrate(overconfident, x[:6], np.array([1, 0, 0, 0, 0, 0]))
    assert same is overconfident


def test_detect_thresholds_keeps_the_best_layer_and_reads_gender():
    dim = 4
    heads = DetectionHeads(
        "M@1", "pose",
        presence={"topwear": _const(3.0, 2 * dim), "footwear": _const(1.0, 2 * dim), "bag": _const(-2.0, 2 * dim)},
        gender=_const(-3.0, 2 * dim),
    )  # fmt: skip
    crops = {layer: np.ones(dim) for layer in ("topwear", "footwear", "bag", "eyewear")}  # eyewear: no head
    found = heads.detect(_look(crops, np.ones(dim)))
    assert found.layers == ["topwear", "footwear"] and found.gender == "women"
    assert set(found.probs) == {"topwear", "footwear", "bag"} and found.probs["bag"] < 0.5
    assert heads.detect(_look(crops, np.ones(dim)), max_layers=1).layers == ["topwear"]
    # nothing above the threshold: still the most likely layer
    assert heads.detect(_look({"bag": np.ones(dim)}, np.ones(dim))).layers == ["bag"]


def test_a_layer_threshold_finds_a_rare_layer_the_shared_one_misses():
    dim = 4
    heads = DetectionHeads("M@1", "pose", presence={"topwear": _const(3.0, 2 * dim), "bag": _const(-1.0, 2 * dim)},
                           gender=_const(0.0, 2 * dim))  # fmt: skip
    crops = {"topwear": np.ones(dim), "bag": np.ones(dim)}  # the bag head says 0.27
    assert heads.detect(_look(crops, np.ones(dim))).layers == ["topwear"]
    heads.layer_thresholds["bag"] = 0.2
    assert heads.detect(_look(crops, np.ones(dim))).layers == ["topwear", "bag"]


def test_context_features_are_the_cosines_of_every_two_placed_crops():
    crops = {"topwear": np.array([1.0, 0.0]), "bottomwear": np.array([2.0, 2.0]), "bag": np.array([0.0, -3.0])}
    context = context_features(crops, ["topwear", "bottomwear", "one_piece", "bag"])
    # pairs in order: top-bottom, top-one_piece, top-bag, bottom-one_piece, bottom-bag, one_piece-bag
    assert context == pytest.approx([np.sqrt(0.5), 0.0, 0.0, 0.0, -np.sqrt(0.5), 0.0])


def test_presence_heads_read_the_context_a_crop_alone_does_not_show():
    """A one-piece garment shows the same fabric in the top and bottom regions: a label that depends only on
    whether two other crops match is learnt from the context, and not from the crop and the whole look."""
    rng = np.random.default_rng(11)
    dim, layers = 8, ["topwear", "bottomwear", "one_piece"]

    def looks(n):
        out, labels = [], []
        for _ in range(n):
            top = rng.normal(size=dim)
            same = rng.random() < 0.5
            bottom = top + 0.1 * rng.normal(size=dim) if same else rng.normal(size=dim)
            crops = {"topwear": top, "bottomwear": bottom, "one_piece": rng.normal(size=dim)}
            out.append(_look(crops, rng.normal(size=dim)))
            labels.append(int(same))
        return out, np.array(labels)

    train, y = looks(300)
    test, y_test = looks(200)
    accuracy = {}
    for name, context in (("with", layers), ("without", [])):
        shape = DetectionHeads("M@1", "test", {}, _const(0.0, 2 * dim), context_layers=context)
        head = fit_logistic(np.array([shape.presence_inputs(look)["one_piece"] for look in train]), y)
        shape.presence["one_piece"] = head
        accuracy[name] = np.mean([(shape.detect(look).probs["one_piece"] >= 0.5) == label
                                  for look, label in zip(test, y_test, strict=True)])  # fmt: skip
    assert accuracy["with"] > 0.95 and accuracy["without"] < 0.7


def test_colour_grid_says_which_colours_are_where_in_the_box():
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    image.paste((255, 0, 0), (30, 10, 90, 70))  # the box's left half red
    image.paste((0, 0, 255), (90, 10, 150, 70))  # its right half blue
    grid = colour_grid(image, (30, 10, 150, 70)).reshape(3, 3, 6)  # rows, columns, (mean RGB, spread RGB)
    assert grid.shape[0] * grid.shape[1] * grid.shape[2] == GRID_SIZE
    assert grid[:, 0, :3] == pytest.approx(np.tile([1.0, 0.0, 0.0], (3, 1)), abs=0.02)  # left column: red
    assert grid[:, 2, :3] == pytest.approx(np.tile([0.0, 0.0, 1.0], (3, 1)), abs=0.02)  # right column: blue
    assert grid[:, 0, 3:] == pytest.approx(np.zeros((3, 3)), abs=0.02)  # one colour: no spread
    assert (grid[:, 1, 3:] > 0.3).any()  # the middle column holds both


def test_presence_heads_read_a_colour_layout_the_crop_vectors_do_not_show():
    """An open jacket shows one colour at the sides of the torso and another down the middle. When the crop
    vectors carry nothing of it (here: noise), heads with the regions' colour grids still learn the layer;
    heads without them cannot."""
    rng = np.random.default_rng(5)
    dim, layers = 8, ["topwear", "outer_topwear"]

    def torso(jacket: bool) -> Image.Image:
        shirt = tuple(int(c) for c in rng.integers(0, 256, 3))
        image = Image.new("RGB", (60, 60), shirt)
        if jacket:
            coat = tuple(int(c) for c in rng.integers(0, 256, 3))
            image.paste(coat, (0, 0, 20, 60))
            image.paste(coat, (40, 0, 60, 60))
        return image

    def looks(n):
        out, labels = [], []
        for _ in range(n):
            jacket = bool(rng.random() < 0.5)
            grid = colour_grid(torso(jacket), (0, 0, 60, 60))
            crops = {layer: rng.normal(size=dim) for layer in layers}
            out.append(LookVectors(crops, rng.normal(size=dim), None, None, {layer: grid for layer in layers}))
            labels.append(int(jacket))
        return out, np.array(labels)

    train, y = looks(300)
    test, y_test = looks(200)
    accuracy = {}
    for name, grids in (("with", True), ("without", False)):
        gender = _const(0.0, 2 * dim + (GRID_SIZE if grids else 0))  # whole, mean crop (and the cue's grid)
        shape = DetectionHeads("M@1", "test", {}, gender, context_layers=layers, colour_grids=grids)
        x = np.array([shape.presence_inputs(look)["outer_topwear"] for look in train])
        shape.presence["outer_topwear"] = fit_logistic(x, y)
        accuracy[name] = np.mean([(shape.detect(look).probs["outer_topwear"] >= 0.5) == label
                                  for look, label in zip(test, y_test, strict=True)])  # fmt: skip
    assert accuracy["with"] > 0.9 and accuracy["without"] < 0.7


def test_the_head_and_shoulders_region_spans_head_and_upper_torso():
    boxes = {"headwear": [(40, 10, 60, 30)], "topwear": [(30, 50, 70, 110)], "bag": [(0, 0, 5, 5)]}
    assert head_and_shoulders_box(boxes) == (30, 10, 70, 71)
    assert head_and_shoulders_box({"topwear": boxes["topwear"]}) is None  # no head in the look


def test_the_gender_head_reads_the_face_crop_or_else_the_head_and_shoulders():
    whole, crop, cue, face = np.full(2, 1.0), np.full(2, 2.0), np.full(2, 3.0), np.full(2, 4.0)
    cue_grid, face_grid = np.full(GRID_SIZE, 0.3), np.full(GRID_SIZE, 0.4)
    read = gender_features(whole, [crop], cue, with_cue=True, cue_grid=cue_grid, with_grid=True, face=face,
                           face_grid=face_grid, with_face=True)  # fmt: skip
    assert np.array_equal(read, np.concatenate([whole, crop, cue, cue_grid, face, face_grid]))
    no_face = gender_features(whole, [crop], cue, with_cue=True, cue_grid=cue_grid, with_grid=True, with_face=True)
    assert np.array_equal(no_face, np.concatenate([whole, crop, cue, cue_grid, cue, cue_grid]))
    # heads without the face crop (format 3) read what they were trained on, face or not
    assert len(gender_features(whole, [crop], cue, with_cue=True, cue_grid=cue_grid, with_grid=True, face=face)) == 6 + GRID_SIZE


def test_region_vectors_embed_the_face_box_in_the_same_batch(tiny_encoder):
    from looksync.search.regions import Placement

    look = Image.new("RGB", (60, 100), (200, 200, 200))
    look.paste((20, 10, 10), (20, 5, 40, 25))  # a dark head
    boxes = {"headwear": [(18, 2, 42, 20)], "topwear": [(10, 30, 50, 70)]}

    def place(image, layers):
        return Placement(boxes=dict(boxes), source="pose", face=(20, 5, 40, 25))

    batches = []
    encode = tiny_encoder.encode_images

    class Counting:
        model_id, dim = tiny_encoder.model_id, tiny_encoder.dim

        def encode_images(self, images, batch_size=32):
            batches.append(len(images))
            return encode(images, batch_size=batch_size)

    with_face = region_vectors(place, Counting(), look, ["headwear", "topwear"], face=True)
    assert batches == [5]  # two layers, head and shoulders, the whole look, the face: one forward
    assert np.allclose(with_face.face, tiny_encoder.encode_images([look.crop((20, 5, 40, 25))])[0], atol=1e-5)
    assert with_face.face_grid[:3].max() < 0.2  # the dark head fills the face box's top-left cell
    without = region_vectors(place, Counting(), look, ["headwear", "topwear"])
    assert batches[-1] == 4 and without.face is None and without.face_grid is None


def test_best_f1_threshold_separates_what_the_probabilities_can():
    # a calibrated rare-layer head: its positives sit at 0.3-0.4, under 0.5, above the negatives
    probs = np.array([0.05, 0.1, 0.12, 0.2, 0.22, 0.31, 0.35, 0.4, 0.15, 0.18])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    cut = best_f1_threshold(probs, labels, 0.5)
    assert 0.22 < cut < 0.31  # every positive found, no negative
    # noisy: the best F1 is still found (not 0.5, which finds nothing)
    noisy = best_f1_threshold(probs, np.array([0, 0, 0, 1, 0, 1, 1, 0, 0, 0]), 0.5)
    chosen = probs >= noisy
    assert chosen[[3, 5, 6]].all()
    # too few of a class: no threshold of its own
    assert best_f1_threshold(probs, np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 0]), 0.5) is None


def test_cross_fitting_calibrates_and_thresholds_on_examples_each_head_did_not_see():
    rng = np.random.default_rng(11)
    folds = np.arange(120) % 5
    # many features, few looks, labels it cannot learn: fitted on all of them, a head is sure of most;
    # calibrated on out-of-fold logits, it says the base rate instead
    x = rng.normal(size=(120, 80))
    noise = (rng.random(120) < 0.3).astype(int)
    overfitted = fit_logistic(x, noise)
    assert np.maximum(overfitted.prob(x), 1 - overfitted.prob(x)).mean() > 0.85
    head, _ = cross_fit_presence(x, noise, folds, 0.5)
    fresh = rng.normal(size=(200, 80))
    assert np.abs(head.prob(fresh) - noise.mean()).mean() < 0.12 < np.abs(overfitted.prob(fresh) - noise.mean()).mean()
    # a rare layer with a real but weak signal: the out-of-fold threshold finds most of it on new looks,
    # where the in-sample probabilities (all near 0 or 1) leave a threshold nothing to choose from
    signal = rng.normal(size=(400, 30))
    rare = (signal[:, 0] + 0.5 * rng.normal(size=400) > 1.2).astype(int)
    head, threshold = cross_fit_presence(signal, rare, np.arange(400) % 5, 0.5)
    assert threshold is not None and threshold < 0.5
    new = rng.normal(size=(2000, 30))
    truth = new[:, 0] + 0.5 * rng.normal(size=2000) > 1.2
    found = head.prob(new) >= threshold
    assert (found & truth).sum() / truth.sum() > 0.7 and (found & truth).sum() / found.sum() > 0.5
    # under 5 looks with the layer: too few to calibrate or choose on, the head as fitted and the shared threshold
    few = np.zeros(400, dtype=int)
    few[np.argsort(-signal[:, 0])[:4]] = 1
    fitted, unset = cross_fit_presence(signal, few, np.arange(400) % 5, 0.5)
    assert unset is None and np.allclose(fitted.weights, fit_logistic(signal, few).weights)
    # one fold: the head as fitted, no threshold of its own
    plain, none = cross_fit_presence(signal, rare, np.zeros(400), 0.5)
    assert none is None and np.allclose(plain.weights, fit_logistic(signal, rare).weights)


def test_heads_file_round_trip_and_checks(tmp_path):
    rng = np.random.default_rng(1)
    heads = DetectionHeads("M@1", "pose", {"topwear": LogisticHead(rng.normal(size=6), 0.3)},
                           LogisticHead(rng.normal(size=6), -0.2), threshold=0.4, meta={"looks": 3},
                           layer_thresholds={"topwear": 0.25}, colour_grids=True, face_cue=True)  # fmt: skip
    path = heads.save(tmp_path / "h" / "heads.npz")
    back = DetectionHeads.load(path)
    x = rng.normal(size=(5, 6))
    assert np.allclose(back.presence["topwear"].prob(x), heads.presence["topwear"].prob(x))
    assert np.allclose(back.gender.prob(x), heads.gender.prob(x))
    assert (back.model_id, back.region_finder, back.threshold, back.meta) == ("M@1", "pose", 0.4, {"looks": 3})
    assert back.layer_thresholds == {"topwear": 0.25} and back.threshold_of("bag") == 0.4 and back.colour_grids
    assert back.face_cue and json.loads(bytes(np.load(path)["__meta__"]).decode())["format"] == HEADS_FORMAT == 6
    back.check("M@1", "pose")
    with pytest.raises(DetectionHeadsError, match="trained on M@1, the encoder is N@2"):
        back.check("N@2", "pose")
    with pytest.raises(DetectionHeadsError, match="'pose' region finder's crops, the engine uses 'layout'"):
        back.check("M@1", "layout")
    with pytest.raises(DetectionHeadsError, match="not found"):
        DetectionHeads.load(tmp_path / "nope.npz")
    # a format-1 file (no context, no head-and-shoulders crop) still loads and reads as it was trained
    old = DetectionHeads("M@1", "pose", {"topwear": LogisticHead(rng.normal(size=4), 0.1)},
                         LogisticHead(rng.normal(size=4), 0.0))  # fmt: skip
    with np.load(old.save(tmp_path / "old.npz")) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    meta["format"] = 4
    meta.pop("presence_net")  # a format-4 file: no presence CNN
    np.savez(tmp_path / "v4.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    assert DetectionHeads.load(tmp_path / "v4.npz").presence_nets == []
    meta["format"] = 3
    meta.pop("face_cue")  # a format-3 file: no face crop
    np.savez(tmp_path / "v3.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    assert DetectionHeads.load(tmp_path / "v3.npz").face_cue is False
    meta["format"] = 2
    meta.pop("colour_grids")  # a format-2 file: no colour grids
    np.savez(tmp_path / "v2.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    assert DetectionHeads.load(tmp_path / "v2.npz").colour_grids is False
    meta["format"] = 1
    for key in ("context_layers", "gender_cue"):
        meta.pop(key)
    np.savez(tmp_path / "v1.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    v1 = DetectionHeads.load(tmp_path / "v1.npz")
    assert v1.context_layers == [] and v1.gender_cue is False and v1.colour_grids is False
    found = v1.detect(_look({"topwear": np.ones(2)}, np.ones(2), head=np.ones(2)))
    assert found.probs["topwear"] == pytest.approx(float(old.presence["topwear"].prob(np.ones(4))))
    meta["format"] = 99
    np.savez(tmp_path / "v99.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    with pytest.raises(DetectionHeadsError, match="heads format 99"):
        DetectionHeads.load(tmp_path / "v99.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(DetectionHeadsError, match="not a detection heads file"):
        DetectionHeads.load(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def tiny_encoder():
    from embeddings import load_encoder

    return load_encoder("LookSync-Tiny", "random:0", device="cpu")


def test_the_local_generator_reads_layers_and_gender_from_the_heads_without_hints(tiny_encoder):
    from embeddings.zeroshot import ZeroShot
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.querygen import LocalQueryGenerator
    from looksync.search.regions import Placement, pixel_boxes

    taxonomy = get_taxonomy()
    dim = 2 * tiny_encoder.dim
    heads = DetectionHeads(
        tiny_encoder.model_id, "test",
        presence={layer: _const(4.0 if layer in ("topwear", "footwear") else -4.0, dim) for layer in taxonomy.layers},
        gender=_const(4.0, dim),
    )  # fmt: skip
    calls = []

    def placer(look, layers):  # every layer at the top half, footwear out of frame
        calls.append(list(layers))
        boxes = {layer: [pixel_boxes(look.size, [(0.0, 0.0, 1.0, 0.5)])[0]] for layer in layers if layer != "footwear"}
        absent = {"footwear": "out of frame"} if "footwear" in layers else {}
        return Placement(boxes=boxes, source="test", absent=absent)

    generator = LocalQueryGenerator(tiny_encoder, ZeroShot(tiny_encoder, taxonomy), taxonomy, layout=False,
                                    placer=placer, heads=heads)  # fmt: skip
    look = Image.new("RGB", (120, 200), (200, 30, 40))
    out = generator.generate(look)
    assert calls == [list(taxonomy.layers)]  # placed once, every layer
    assert [q.layer for q in out.layers] == ["topwear"] and out.gender == "men"
    assert out.absent == {"footwear": "out of frame"} and out.region_source == "test"
    assert "detection" in out.timings_ms
    # hints given: the heads only fill what is missing
    calls.clear()
    hinted = generator.generate(look, layers=["bottomwear"])
    assert [q.layer for q in hinted.layers] == ["bottomwear"] and hinted.gender == "men"
    both = generator.generate(look, layers=["bag"], gender="women")
    assert [q.layer for q in both.layers] == ["bag"] and both.gender == "women"
    assert calls[-1] == ["bag"]  # with every hint given, the heads are not run


@pytest.mark.parametrize(("bias", "used"), [(4.0, True), (0.4, False), (-0.4, False), (-4.0, True)])
def test_an_unsure_gender_is_read_but_not_used(tiny_encoder, bias, used):
    """A gender the heads read with a probability under ``gender_min_confidence`` names no gender in the
    queries (the engine then filters on none); the guess and its confidence are still reported."""
    from embeddings.zeroshot import ZeroShot
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.querygen import LocalQueryGenerator
    from looksync.search.regions import Placement, pixel_boxes

    taxonomy = get_taxonomy()
    dim = 2 * tiny_encoder.dim
    heads = DetectionHeads(tiny_encoder.model_id, "test", {"topwear": _const(4.0, dim)}, gender=_const(bias, dim))

    def placer(look, layers):
        return Placement(boxes={layer: [pixel_boxes(look.size, [(0.0, 0.0, 1.0, 0.5)])[0]] for layer in layers},
                         source="test")  # fmt: skip

    generator = LocalQueryGenerator(tiny_encoder, ZeroShot(tiny_encoder, taxonomy), taxonomy, layout=False,
                                    placer=placer, heads=heads, gender_min_confidence=0.75)  # fmt: skip
    out = generator.generate(Image.new("RGB", (120, 200), (20, 30, 140)))
    guess = "men" if bias > 0 else "women"
    confidence = 1 / (1 + np.exp(-abs(bias)))
    assert out.gender_guess == guess and out.gender_confidence == pytest.approx(confidence)
    assert out.gender == (guess if used else None)
    label = taxonomy.genders[guess].lower()
    assert all((label in q.query.lower()) == used for q in out.layers) and out.layers
    assert all(q.attributes["gender"] == (guess if used else None) for q in out.layers)
    # a requested gender is never second-guessed
    given = generator.generate(Image.new("RGB", (120, 200), (20, 30, 140)), gender="women")
    assert given.gender == "women" and given.gender_guess is None and given.gender_confidence is None


def test_heads_train_on_generated_looks(tiny_encoder, tmp_path):
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample import generate_sample
    from looksync.search.regions import layout_placement

    manifest = generate_sample(tmp_path / "s", size=90, seed=4, n_looks=8, n_varied_looks=16, varied_split="train")
    truth = json.loads(manifest.ground_truth_path.read_text())
    examples = look_examples(truth, manifest.looks_dir)
    assert len(examples) == 24
    cropped = [e for e in examples if e.unsure]
    assert cropped and all(not (e.unsure & e.present) for e in cropped)

    taxonomy = get_taxonomy()

    def place(look, layers):
        return layout_placement(taxonomy, look.size, layers)

    heads = train_heads(examples, tiny_encoder, place, "layout", list(taxonomy.layers))
    assert heads.model_id == tiny_encoder.model_id and heads.region_finder == "layout"
    assert heads.context_layers == list(taxonomy.layers) and heads.gender_cue and heads.colour_grids
    pairs = len(taxonomy.layers) * (len(taxonomy.layers) - 1) // 2
    grids = len(taxonomy.layers) * GRID_SIZE
    assert heads.presence["footwear"].weights.shape == (2 * tiny_encoder.dim + pairs + grids,)
    # whole, mean crop, head and shoulders (vector, grid), face (vector, grid: the head and shoulders' here,
    # where no face box is found)
    assert heads.face_cue and heads.gender.weights.shape == (4 * tiny_encoder.dim + 2 * GRID_SIZE,)
    footwear = sum("footwear" in e.present for e in examples)
    assert heads.meta["positives"]["footwear"] == footwear
    assert heads.meta["examples"]["footwear"] == sum("footwear" not in e.unsure for e in examples)
    figures = validate_heads(heads, examples, tiny_encoder, place)
    assert figures["looks"] == 24 and 0.0 <= figures["presence_precision"] <= 1.0
    assert figures["presence_recall"] > 0.5  # fitted on these very looks: it finds most of their layers


def test_gender_only_looks_train_the_gender_head_and_leave_presence_as_it_was(tiny_encoder, tmp_path):
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.sample import generate_sample
    from looksync.search.regions import layout_placement

    taxonomy = get_taxonomy()

    def place(look, layers):
        return layout_placement(taxonomy, look.size, layers)

    def looks(seed):
        manifest = generate_sample(tmp_path / str(seed), size=60, seed=seed, n_looks=4, n_varied_looks=8, varied_split="train")
        return look_examples(json.loads(manifest.ground_truth_path.read_text()), manifest.looks_dir)

    examples, more = looks(4), looks(5)
    alone = train_heads(examples[:10], tiny_encoder, place, "layout", list(taxonomy.layers), calibration=examples[10:])
    both = train_heads(examples[:10], tiny_encoder, place, "layout", list(taxonomy.layers), calibration=examples[10:],
                       gender_only=more[:9], gender_calibration=more[9:])  # fmt: skip
    for layer, head in alone.presence.items():
        assert np.allclose(both.presence[layer].weights, head.weights) and both.presence[layer].bias == pytest.approx(head.bias)
    assert not np.allclose(both.gender.weights, alone.gender.weights)
    assert both.meta["gender_only_looks"] == 9 and both.meta["gender_calibration_looks"] == 3 and both.meta["looks"] == 10


def test_heads_recipe_is_one_default_for_the_cli_the_demo_and_training():
    """`looksync heads train`, `looksync demo --heads-looks` and ``train_from_sample`` default to one recipe, and a
    smaller demo keeps its proportions (1 look in 6 on the fixed frame, 5 products per 3 looks, at least 60)."""
    import inspect

    from looksync.cli import demo, heads_train
    from looksync.search.detection_training import train_from_sample
    from looksync.search.heads_recipe import (
        RECIPE_GENDER_LOOKS,
        RECIPE_LOOKS,
        RECIPE_NET_LOOKS,
        RECIPE_SEED,
        sample_recipe,
    )

    recipe = sample_recipe()
    cli = {p.name: p.default for p in heads_train.params}
    assert {k: cli[k] for k in recipe} == recipe and cli["seed"] == RECIPE_SEED
    defaults = {k: p.default for k, p in inspect.signature(train_from_sample).parameters.items()}
    assert {k: defaults[k] for k in recipe} == recipe and defaults["seed"] == RECIPE_SEED
    assert defaults["gender_looks"] == cli["gender_looks"] == RECIPE_GENDER_LOOKS
    assert {p.name: p.default for p in demo.params}["heads_looks"] == RECIPE_LOOKS == recipe["fixed_looks"] + recipe["varied_looks"]
    assert sample_recipe(36) == {"size": 60, "fixed_looks": 6, "varied_looks": 30, "net_looks": RECIPE_NET_LOOKS // 10}
    assert sample_recipe(720) == {"size": 1200, "fixed_looks": 120, "varied_looks": 600, "net_looks": 2 * RECIPE_NET_LOOKS}
    assert defaults["net_looks"] == cli["net_looks"] == RECIPE_NET_LOOKS == recipe["net_looks"]
