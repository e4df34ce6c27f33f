"""Varied looks: framings drawn per split, posed and cropped figures, ground truth counted per garment."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.taxonomy import get_taxonomy
from looksync.sample import generate_sample
from looksync.sample.framing import (
    ASPECTS,
    IN_FRAME_MIN,
    POSE_FAMILIES,
    VARIATION,
    Framing,
    draw_framing,
    frame_look,
)
from tests.sample.outfits import full_outfit


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    root = tmp_path_factory.mktemp("varied")
    manifest = generate_sample(root, size=150, seed=5, n_looks=2, n_varied_looks=16)
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    return manifest, truth


def test_varied_looks_sit_on_their_canvas_with_boxes_inside_it(varied):
    manifest, truth = varied
    varied_ids = [k for k, v in truth.items() if v["framing"]["variant"] == "varied"]
    assert len(varied_ids) == 16 and all(k.startswith("vlook-") for k in varied_ids)
    assert [k for k, v in truth.items() if v["framing"] == {"variant": "fixed"}] == ["look-001", "look-002"]
    for look_id in varied_ids:
        look = truth[look_id]
        with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
            size = image.size
        assert size == ASPECTS[look["framing"]["aspect"]], look_id
        assert set(look["visible"]) == set(look["in_frame"]) == set(look["frame_share"]) == set(look["products"])
        for layer, box in look["boxes"].items():
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1], (look_id, layer, box)
        for layer in look["products"]:
            assert 0.0 <= look["visible"][layer] <= look["frame_share"][layer] <= 1.0
            assert look["in_frame"][layer] == (look["frame_share"][layer] >= IN_FRAME_MIN)
            if look["visible"][layer] == 0.0:  # a few pixels may vanish when the figure is scaled down
                assert layer not in look["boxes"], (look_id, layer)
            elif look["visible"][layer] >= 0.02:
                assert layer in look["boxes"], (look_id, layer)
        assert 0.0 < look["framing"]["scale"] <= 1.0


def test_a_garment_box_shows_the_product_colour(varied):
    """The box of a garment that is mostly in view holds pixels of its product's colour."""
    manifest, truth = varied
    from looksync.catalog.vendors import load_vendor_config, read_feed

    products = {r.product.product_id: r.product for v, p in manifest.feeds.items()
                for r in read_feed(load_vendor_config(v), p) if r.product}  # fmt: skip
    checked = 0
    for look_id, look in truth.items():
        for layer, pid in look["products"].items():
            if look["visible"][layer] < 0.6 or layer not in ("topwear", "bottomwear", "one_piece", "outer_topwear"):
                continue
            reference = np.array(get_taxonomy().colours[products[pid].colours[0]])
            with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
                region = np.asarray(image.convert("RGB").crop(tuple(look["boxes"][layer]))).reshape(-1, 3)
            assert (np.abs(region.astype(int) - reference).sum(axis=1) <= 40).sum() > 50, (look_id, layer)
            checked += 1
    assert checked >= 8


def test_same_seed_same_bytes(tmp_path):
    a = generate_sample(tmp_path / "a", size=60, seed=9, n_looks=0, n_varied_looks=3)
    b = generate_sample(tmp_path / "b", size=60, seed=9, n_looks=0, n_varied_looks=3)
    assert a.ground_truth_path.read_bytes() == b.ground_truth_path.read_bytes()
    for name in sorted(p.name for p in a.looks_dir.glob("*.png")):
        assert (a.looks_dir / name).read_bytes() == (b.looks_dir / name).read_bytes(), name


def test_cropped_looks_report_what_is_out_of_frame():
    products = full_outfit()
    base = Framing(pose="standing", aspect="3:4", crop="full", style="flat", background="plain", mirrored=False,
                   scale=0.9, rotation=0.0, position=(0.5, 0.5))  # fmt: skip
    full = frame_look(products, base, random.Random(1), "men")
    assert all(full.in_frame.values()) and full.frame_share["footwear"] == 1.0
    half = frame_look(products, replace(base, crop="half"), random.Random(1), "men")
    assert half.in_frame["topwear"] and not half.in_frame["footwear"] and not half.in_frame["bottomwear"]
    assert half.frame_share["footwear"] == half.visible["footwear"] == 0.0 and "footwear" not in half.boxes
    three = frame_look(products, replace(base, crop="three_quarter"), random.Random(1), "men")
    assert three.in_frame["topwear"] and three.in_frame["bottomwear"] and not three.in_frame["footwear"]
    assert 0.5 <= three.frame_share["bottomwear"] < 1.0
    # a cropped figure is cut by the canvas's bottom edge
    assert max(box[3] for box in half.boxes.values()) == ASPECTS["3:4"][1]


def test_mirroring_flips_the_boxes():
    products = full_outfit()
    base = Framing(pose="holding_bag", aspect="16:9", crop="full", style="outlined", background="textured",
                   mirrored=False, scale=0.8, rotation=0.0, position=(0.5, 0.5))  # fmt: skip
    plain = frame_look(products, base, random.Random(2), "men")
    flipped = frame_look(products, replace(base, mirrored=True), random.Random(2), "men")
    width = ASPECTS["16:9"][0]
    for layer, (x0, y0, x1, y1) in plain.boxes.items():
        fx0, fy0, fx1, fy1 = flipped.boxes[layer]
        assert abs(fx0 - (width - x1)) <= 2 and abs(fx1 - (width - x0)) <= 2 and (fy0, fy1) == (y0, y1), layer
    assert plain.visible == flipped.visible


def test_heldout_values_are_never_drawn_for_training():
    held = VARIATION["heldout"]
    train = [draw_framing(random.Random(i), "train") for i in range(400)]
    heldout = [draw_framing(random.Random(i), "heldout") for i in range(400)]
    for key, value in held.items():
        assert all(getattr(f, key) != value for f in train), key
        assert any(getattr(f, key) == value for f in heldout), key
    assert {f.pose for f in train} == set(POSE_FAMILIES) - {held["pose"]}
    assert {f.crop for f in train} == {"full", "three_quarter", "half"} and {f.mirrored for f in train} == {True, False}
    assert all(VARIATION["scale"][0] <= f.scale <= VARIATION["scale"][1] for f in train)
    with pytest.raises(ValueError, match="split"):
        draw_framing(random.Random(0), "test")


@pytest.mark.parametrize("pose", POSE_FAMILIES)
def test_every_pose_family_draws(pose):
    products = full_outfit()
    framing = Framing(pose=pose, aspect="9:16", crop="full", style="flat", background="gradient", mirrored=False,
                      scale=1.0, rotation=5.0, position=(0.0, 1.0))  # fmt: skip
    look = frame_look(products, framing, random.Random(3), "men")
    assert look.image.size == ASPECTS["9:16"] and look.in_frame["footwear"]


@pytest.mark.parametrize("pose", ["raised", "walking", "bent"])
def test_a_segment_is_sampled_only_where_it_lands_and_the_same_as_over_the_whole_frame(pose):
    """pose_figure samples each body segment over the window its source box turns and moves to: every output pixel
    whose nearest source pixel is in the segment lies inside that window, and within it the samples are the whole
    frame's."""
    from looksync.sample.framing import (
        _PAD,
        _SEGMENTS,
        _segment_map,
        _segment_matrices,
        _segment_window,
        _warp_nearest,
        pose_angles,
    )

    height, width = 600, 384
    seg = _segment_map(height, width)
    joints = {"shoulder": {"l": (131.0, 140.0), "r": (253.0, 140.0)}, "elbow": {"l": (112.0, 234.0), "r": (272.0, 234.0)},
              "hip": {"l": (160.0, 352.0), "r": (224.0, 352.0)}}  # fmt: skip
    matrices = _segment_matrices(pose_angles(pose, random.Random(4)), joints)
    shape = (height + 2 * _PAD[1], width + 2 * _PAD[0])
    checked = 0
    for name in _SEGMENTS:
        index = _SEGMENTS.index(name)
        held = seg == index
        inverse = np.linalg.inv(matrices[name])
        (whole,), inside = _warp_nearest([seg], inverse, shape)
        lands = inside & (whole == index)
        window = _segment_window(matrices[name], np.flatnonzero(held.any(1)), np.flatnonzero(held.any(0)), shape)
        top, left, bottom, right = window
        assert lands.sum() > 0 and lands[top:bottom, left:right].sum() == lands.sum(), name
        (part,), part_inside = _warp_nearest([seg], inverse, shape, window)
        assert np.array_equal(part, whole[top:bottom, left:right]) and np.array_equal(part_inside, inside[top:bottom, left:right])
        checked += 1
    assert checked == len(_SEGMENTS)
