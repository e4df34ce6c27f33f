"""The BlazePose pipeline and the pose region finder on real model files: a sample look (the project's
drawn figure), a real photograph (waist-up), and looks with no person; the fallbacks in order."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
from PIL import Image

from looksync.catalog.taxonomy import get_taxonomy
from looksync.search.pose import LANDMARKS, BlazePose, PoseRegionFinder, pose_placement, resolve_pose_models
from looksync.search.pose.blazepose import REFINE_TOLERANCE, Detection, PersonFigure, Roi, roi_change, ssd_anchors
from looksync.search.pose.regions import (
    continuous,
    figure_frame,
    figure_roi,
    person_box_placement,
    pick_sides,
    pose_span,
    retry_box,
    side_evidence,
)
from looksync.search.regions import Placement, box_iou, layer_slots, layout_placement
from looksync.settings import Settings

ALL_LAYERS = list(get_taxonomy().layers)


def _inside(box, size) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def _finder(estimator, **options) -> PoseRegionFinder:
    return PoseRegionFinder(None, estimator=estimator, **options)  # place() needs no CLIP encoder


def test_ssd_anchors_follow_the_pose_detection_graph():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)  # 28x28x2 + 14x14x2 + 7x7x6
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])  # the stride-16 layer starts after 28 x 28 x 2
    assert np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])  # strides 32, 32, 32 merged: 6 per cell
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_pose_on_a_sample_look(blazepose, sample_look):
    image, truth = sample_look
    detections = blazepose.detect(image)
    assert detections and detections[0].score >= 0.5
    pose = blazepose.landmarks(image, detections[0])
    assert pose.points.shape == (len(LANDMARKS), 2) and pose.score >= 0.5
    y = {name: pose.point(name)[1] for name in ("nose", "left_shoulder", "left_hip", "left_knee", "left_ankle")}
    assert y["nose"] < y["left_shoulder"] < y["left_hip"] < y["left_knee"] < y["left_ankle"]
    width, height = image.size
    assert abs(pose.point("nose")[0] - width / 2) < 0.15 * width  # the figure stands in the middle
    assert pose.point("left_ankle")[1] > 0.75 * height and pose.point("nose")[1] < 0.25 * height
    placement = _finder(blazepose).place(image, sorted(truth["products"]))
    assert placement.source == "pose" and not placement.degraded and "region_pose" in placement.timings_ms
    assert set(placement.boxes) == set(truth["products"]) and not placement.absent
    assert all(_inside(box, image.size) for boxes in placement.boxes.values() for box in boxes)
    assert placement.boxes["footwear"][0][1] > 0.7 * height  # the feet, at the bottom of the figure
    # the detector's face box: around the nose, centred above the shoulders (it reaches down to them)
    x0, y0, x1, y1 = placement.face
    assert _inside(placement.face, image.size) and (y0 + y1) / 2 < pose.point("left_shoulder")[1]
    assert x0 < pose.point("nose")[0] < x1 and y0 < pose.point("nose")[1] < y1


def test_pose_on_a_real_photograph(blazepose, astronaut):
    """Waist-up: the nose and shoulders on the person; footwear and bottomwear out of frame."""
    pose = blazepose.landmarks(astronaut, blazepose.detect(astronaut)[0])
    nose, left, right = pose.point("nose"), pose.point("left_shoulder"), pose.point("right_shoulder")
    assert 180 < nose[0] < 280 and 90 < nose[1] < 180  # her face is at about x 190-270, y 60-190
    assert right[0] < nose[0] < left[0]  # facing the camera: her left shoulder on the image's right
    assert nose[1] < min(left[1], right[1]) < 320 and abs(left[1] - right[1]) < 40
    assert (pose.visibility[[0, 11, 12]] > 0.9).all()

    placement = _finder(blazepose).place(astronaut, ALL_LAYERS)
    assert placement.source == "pose"
    assert {"topwear", "outer_topwear", "headwear", "eyewear"} <= set(placement.boxes)
    assert all(_inside(box, astronaut.size) for boxes in placement.boxes.values() for box in boxes)
    assert {"footwear", "bottomwear", "one_piece"} <= set(placement.absent)
    assert placement.absent["footwear"].startswith("out of frame: left_ankle, right_ankle")
    assert "out of frame" in placement.absent["bottomwear"]
    eyes = placement.boxes["eyewear"][0]
    assert eyes[1] < nose[1] and eyes[0] < nose[0] < eyes[2]


def test_a_layer_whose_anchors_are_hidden_is_not_in_the_look(blazepose, sample_look):
    image, _ = sample_look
    pose = blazepose.landmarks(image, blazepose.detect(image)[0])
    pose.visibility[[LANDMARKS.index("left_ankle"), LANDMARKS.index("right_ankle")]] = 0.1
    placement = pose_placement(get_taxonomy(), pose, image.size, ["bottomwear", "topwear"])
    assert len(placement.boxes["bottomwear"]) == 1  # the long extent needs an ankle; the short one is left
    assert placement.boxes["bottomwear"][0][3] < pose.point("left_ankle")[1]


def test_knees_in_the_look_but_not_sure_still_place_the_short_extent(blazepose, sample_look):
    """A three-quarter look cut below the knees: the pose model's visibility of the knees at the edge runs low
    (0.2-0.45 on such looks) though they are there. The hips seen and the knees in the look place the hips-to-knees
    extent; knees out of the look leave the layer out, saying so."""
    image, _ = sample_look
    pose = blazepose.landmarks(image, blazepose.detect(image)[0])
    legs = [LANDMARKS.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    pose.visibility[legs] = 0.2
    placement = pose_placement(get_taxonomy(), pose, image.size, ["bottomwear"])
    assert len(placement.boxes["bottomwear"]) == 1 and "bottomwear" not in placement.absent
    assert placement.boxes["bottomwear"][0][3] >= pose.point("left_knee")[1]
    pose.points[legs, 1] = image.height + 50  # below the look
    placement = pose_placement(get_taxonomy(), pose, image.size, ["bottomwear"])
    assert "bottomwear" not in placement.boxes
    assert "out of frame: left_knee, right_knee" in placement.absent["bottomwear"]


def test_the_cropped_top_of_a_look_has_no_feet(blazepose, sample_look):
    image, truth = sample_look
    top = image.crop((0, 0, image.width, int(image.height * 0.6)))
    placement = _finder(blazepose).place(top, sorted(truth["products"]))
    assert placement.source == "pose"
    assert placement.absent["footwear"].startswith("out of frame")
    assert all(_inside(box, top.size) for boxes in placement.boxes.values() for box in boxes)


class _Unsure:
    """The real estimator whose landmark reads in a ROI given to it (the person figure's) are never sure."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def landmarks(self, look, detection, roi=None, **reads):
        pose = self.estimator.landmarks(look, detection, roi=roi, **reads)
        if roi is not None:
            pose.score = 0.0
        return pose


def test_fallbacks_in_order(pose_models_dir, blazepose, astronaut):
    # 1. no pose from the detector (its threshold above any score) -> the landmarks read in the ROI from the
    # person mask's figure, said in degraded
    strict = BlazePose(resolve_pose_models("pypi", pose_models_dir, fetch=False), threads=2, min_detection=0.999)
    placement = _finder(strict).place(astronaut, ["topwear", "footwear"])
    assert placement.source == "pose"
    assert placement.degraded == ["regions_pose_figure: no person detected; landmarks read in the ROI from the person mask's figure"]
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask", "region_pose_figure"}
    assert "topwear" in placement.boxes and placement.absent["footwear"].startswith("out of frame")

    # 2. that read not sure either -> the person's box from the mask, both reasons said
    placement = _finder(_Unsure(strict)).place(astronaut, ["topwear", "footwear"])
    assert placement.source == "person_box"
    assert placement.degraded[0].startswith("regions_person_box: no person detected; read in the ROI from the person mask's "
                                            "figure: no pose landmarks (presence 0.00); layers placed at the taxonomy slots")  # fmt: skip
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask", "region_pose_figure"}
    # the figure's read off (LOOKSYNC_POSE_FIGURE_ROI=0): straight to the person's box
    placement = _finder(strict, figure_roi=False).place(astronaut, ["topwear", "footwear"])
    assert placement.source == "person_box"
    assert placement.degraded[0].startswith("regions_person_box: no person detected; layers placed at the taxonomy slots")
    assert "person mask" in placement.degraded[0]
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask"}
    assert all(_inside(box, astronaut.size) for boxes in placement.boxes.values() for box in boxes)
    # the mask's box runs off the bottom of the photo: the figure is fitted by width, the feet fall outside
    assert "topwear" in placement.boxes and placement.absent["footwear"].startswith("out of frame")
    assert placement.face is None  # no detection, no face box
    # with the retry on (LOOKSYNC_POSE_RETRY), the detector tries again within the person mask's box (here the
    # whole photo) first, with no more luck, and says so
    placement = _finder(strict, retry=True, figure_roi=False).place(astronaut, ["topwear", "footwear"])
    assert re.match(r"regions_person_box: no person detected; read again within the person mask's box \[0, 0, 512, 512\]: "
                    r"no person detected; layers placed at the taxonomy slots", placement.degraded[0])  # fmt: skip
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask", "region_pose_retry"}

    # 3. no person at all (no mask, so no figure either) -> the taxonomy slots of the whole look
    blank = Image.new("RGB", (400, 300), (200, 220, 240))
    placement = _finder(blazepose).place(blank, ["topwear", "footwear"])
    assert placement.source == "layout" and placement.degraded[0].startswith("regions_layout: no person detected")
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask"}
    assert set(placement.boxes) == {"topwear", "footwear"} and not placement.absent

    # without the mask, no pose goes straight to the layout
    placement = _finder(strict, person_mask=False).place(astronaut, ["topwear"])
    assert placement.source == "layout" and set(placement.timings_ms) == {"region_pose"}


def test_unknown_landmarks_in_the_taxonomy_are_refused(blazepose, tmp_path):
    from looksync.catalog.taxonomy import DEFAULT_TAXONOMY_PATH, load_taxonomy

    custom = tmp_path / "taxonomy.yaml"
    custom.write_text(DEFAULT_TAXONOMY_PATH.read_text().replace("[left_eye, right_eye, nose]", "[left_eye, third_eye]"))
    with pytest.raises(ValueError, match=r"unknown landmarks \['third_eye'\]"):
        PoseRegionFinder(None, taxonomy=load_taxonomy(custom), estimator=blazepose)


def test_auto_uses_pose_when_its_files_are_cached_else_layout_recorded(pose_models_dir, tmp_path, astronaut):
    """``region_finder=auto``: pose from cached, checked model files; with none cached, layout with the
    reason in every placement, and nothing downloaded."""
    from looksync.search.region_finders import LayoutFallbackFinder, make_region_finder
    from looksync.settings import load_settings

    found = make_region_finder("auto", None, settings=load_settings(region_finder="auto", pose_models_dir=pose_models_dir))
    assert isinstance(found, PoseRegionFinder)
    assert found.place(astronaut, ["topwear"]).source == "pose"

    empty = tmp_path / "no-models"
    missing = make_region_finder("auto", None, settings=load_settings(region_finder="auto", pose_models_dir=empty))
    assert isinstance(missing, LayoutFallbackFinder)
    assert not empty.exists() or not any(empty.rglob("*"))  # no pip download happened
    placement = missing.place(astronaut, ["topwear", "footwear"])
    assert placement.source == "layout" and set(placement.boxes) == {"topwear", "footwear"}
    assert placement.degraded[0].startswith("regions_layout: pose model files not available")
    assert "pose_detection.tflite" in placement.degraded[0] and "looksync models fetch" in placement.degraded[0]


def test_a_deployment_that_sets_no_finder_reads_looks_with_auto(monkeypatch):
    """The shipped default is ``auto`` (pose where its files are cached); the tests pin ``layout`` only for
    themselves (tests/conftest.py), so an operator's unset variable gets the body-anchored finder."""
    from looksync.settings import load_settings

    assert load_settings().region_finder == "layout"  # the tests' pin
    monkeypatch.delenv("LOOKSYNC_REGION_FINDER")
    assert load_settings().region_finder == "auto"


def test_blanking_whitens_the_background_and_keeps_the_person(blazepose, sample_look):
    """``pose_blank_background``: the crops are cut from the look with the person mask's background made
    white; the person's pixels stay as drawn; off, the crops come from the look itself."""
    image, truth = sample_look
    layers = sorted(truth["products"])
    plain = _finder(blazepose).place(image, layers)
    assert plain.image is None and plain.pixels(image) is image
    finder = _finder(blazepose)
    finder.blank_background = True
    blanked = finder.place(image, layers)
    assert blanked.boxes == plain.boxes and "region_blank" in blanked.timings_ms
    pixels = np.asarray(blanked.pixels(image), dtype=np.int16)
    original = np.asarray(image, dtype=np.int16)
    width, height = image.size
    corner = pixels[: height // 20, : width // 20]
    assert np.abs(original[: height // 20, : width // 20] - 255).max() > 5  # the drawn background is not white
    assert (corner >= 250).all()  # ... and is blanked
    worn = next(layer for layer in ("topwear", "one_piece", "outer_topwear", "bottomwear") if layer in blanked.boxes)
    x0, y0, x1, y1 = blanked.boxes[worn][0]
    centre = (slice((y0 + y1) // 2 - 3, (y0 + y1) // 2 + 3), slice((x0 + x1) // 2 - 3, (x0 + x1) // 2 + 3))
    assert np.abs(pixels[centre] - original[centre]).max() <= 8  # the garment worn is kept


def test_blank_background_blends_by_the_mask():
    from looksync.search.pose.regions import blank_background

    look = Image.new("RGB", (40, 20), (10, 20, 30))
    mask = np.zeros((4, 4), dtype=np.float32)
    mask[:, 2:] = 1.0  # the right half is the person
    out = np.asarray(blank_background(look, mask))
    assert (out[:, :8] == 255).all() and (out[:, 32:] == (10, 20, 30)).all()


def test_the_landmark_model_is_cut_to_the_outputs_read_and_computes_the_same(pose_models_dir, blazepose, sample_look):
    """The landmark model runs without its mask and heatmap branches: fewer operators, two outputs, and on
    a real crop the same landmarks and pose flag, bit for bit, as the full model from the file."""
    from ai_edge_litert.interpreter import Interpreter

    from looksync.search.pose.blazepose import LANDMARK_SIZE, roi_from_detection, warp_roi

    full = Interpreter(model_path=str(resolve_pose_models("pypi", pose_models_dir, fetch=False).landmarks), num_threads=1)
    full.allocate_tensors()
    cut = blazepose.landmarker
    assert len(cut._get_ops_details()) < 0.8 * len(full._get_ops_details())
    assert sorted(tuple(d["shape"][1:]) for d in cut.get_output_details()) == [(1,), (195,)]
    assert len(full.get_output_details()) == 5

    image, _ = sample_look
    crop = warp_roi(image, roi_from_detection(blazepose.detect(image)[0]), LANDMARK_SIZE)[None].astype(np.float32) / 255.0
    results = []
    for interpreter in (full, cut):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop)
        interpreter.invoke()
        by_shape = {tuple(d["shape"][1:]): interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        results.append((by_shape[(195,)], by_shape[(1,)]))
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
    assert results[1][1][0, 0] >= 0.5  # a pose found on the drawn figure (the flag is a probability)


def test_pruning_that_keeps_no_output_is_refused(pose_models_dir):
    from looksync.search.pose.prune import prune_outputs

    model = resolve_pose_models("pypi", pose_models_dir, fetch=False).landmarks.read_bytes()
    with pytest.raises(ValueError, match=r"no output of the model is kept; its output shapes: \[\(1, 195\)"):
        prune_outputs(model, keep=lambda shape: False)
    assert prune_outputs(model, keep=lambda shape: True) is model  # every output kept: the model as it is


def test_a_pose_read_upside_down_is_not_used(blazepose, sample_look):
    """Fashion looks show people upright (give or take a lean): a pose the detector reads turned over is
    confident and wrong, so the person's box is placed instead, with the reason."""
    image, truth = sample_look
    turned = image.rotate(180)
    pose = blazepose.landmarks(turned, blazepose.detect(turned)[0])
    assert pose.score >= 0.5 and abs(np.degrees(pose.roi.rotation)) > 120  # sure of itself, and upside down
    # (the figure's read off: on a turned look the mask's "head" is the feet, and that read is not checked for it)
    # the detector's own body axis is already that far over, so the landmarks are not read at all
    counting = _Counting(blazepose)
    placement = _finder(counting, figure_roi=False).place(turned, sorted(truth["products"]))
    assert placement.source == "person_box"
    assert re.match(r"regions_person_box: the detector's pose tilted 1[2-8]\d degrees from upright \(over 60\), landmarks "
                    r"not read; layers placed at the taxonomy slots", placement.degraded[0])  # fmt: skip
    assert counting.calls == 0
    # allowed any tilt, the same look is placed from the pose; an upright look is placed from the pose
    assert _finder(counting, max_tilt=180).place(turned, ["topwear"]).source == "pose" and counting.calls >= 1
    assert _finder(blazepose).place(image, ["topwear"]).source == "pose"


def test_the_person_mask_keeps_the_looks_aspect_and_finds_the_whole_figure(blazepose, fixed_looks):
    """The segmenter sees the look fitted into its square and padded with the edge pixels: stretched, a
    portrait figure is squashed and the mask lost the head or the legs (or the whole person) on 4 of these 6."""
    assert len(fixed_looks) == 6
    for look in fixed_looks:
        mask = blazepose.person_mask(look)
        assert mask.shape == (256, round(256 * look.width / look.height))  # the look's grid, long side 256
        box = blazepose.person_box(look)
        assert box is not None
        assert box[1] < 0.1 * look.height and box[3] > 0.9 * look.height  # head to feet


def test_a_loose_detector_circle_is_corrected_by_the_second_read(blazepose, sample_look):
    """On drawn figures the detector places the body's circle high and small, so the first ROI ends above
    the feet and the landmarks crowd upwards; the second read, in the ROI the landmarks' own hip-centre and
    full-body points give (as MediaPipe tracks a video), finds the ankles at the shoes."""
    image, truth = sample_look
    detection = blazepose.detect(image)[0]
    hips, body = detection.keypoints[0].copy(), detection.keypoints[1]
    hips[1] -= 0.15 * image.height
    loose = Detection(detection.score, detection.box, np.array([hips, hips + (body - detection.keypoints[0]) * 0.85,
                                                                *detection.keypoints[2:]]))  # fmt: skip
    shoes_top = truth["boxes"]["footwear"][1]
    ankles = lambda pose: (pose.point("left_ankle")[1] + pose.point("right_ankle")[1]) / 2  # noqa: E731
    assert ankles(blazepose.landmarks(image, loose, refine=0)) < shoes_top - 50  # one read: well above the shoes
    refined = blazepose.landmarks(image, loose)
    assert refined.score >= 0.5 and abs(ankles(refined) - shoes_top) < 25


def test_roi_change_is_how_far_the_crop_moves_as_a_share_of_its_side():
    roi = Roi(cx=100.0, cy=200.0, side=50.0, rotation=0.0)
    assert roi_change(roi, roi) == 0.0
    assert roi_change(roi, Roi(105.0, 200.0, 50.0, 0.0)) == pytest.approx(0.1)  # the centre 5 px of 50
    assert roi_change(roi, Roi(100.0, 200.0, 60.0, 0.0)) == pytest.approx(0.2)  # the side 1.2x
    assert roi_change(roi, Roi(100.0, 200.0, 50.0, 0.1)) == pytest.approx(0.1 * 0.5**0.5)  # the corners' arc
    # a turn across -pi / pi is a small turn, not nearly a full one
    assert roi_change(Roi(0.0, 0.0, 10.0, math.pi - 0.01), Roi(0.0, 0.0, 10.0, -math.pi + 0.01)) == pytest.approx(0.02 * 0.5**0.5)


class _Counting:
    """The real estimator, counting its landmark model's calls."""

    def __init__(self, estimator):
        self.estimator, self.calls = estimator, 0

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def _run(self, interpreter, tensor):
        self.calls += interpreter is self.estimator.landmarker
        return self.estimator._run(interpreter, tensor)

    def landmarks(self, *args, **reads):
        return BlazePose.landmarks(self, *args, **reads)  # the real method, its model calls counted


def test_a_further_landmark_read_is_skipped_when_its_roi_would_hardly_move(blazepose, pose_models_dir, sample_look):
    """LOOKSYNC_POSE_REFINE_TOLERANCE: the second read is made in the ROI the first read's own body points give;
    when that ROI is within the tolerance of the first one, the read is skipped and the first read's landmarks kept."""
    image, _ = sample_look
    detection = blazepose.detect(image)[0]
    counting = _Counting(blazepose)
    landmarks = BlazePose.landmarks.__get__(counting)  # the real method, its model calls counted
    first = landmarks(image, detection, refine=0)
    reread = landmarks(image, detection, refine=1, tolerance=0.0)
    assert counting.calls == 3
    moved = roi_change(first.roi, reread.roi)
    assert moved > 0.01  # the sample figure's detector circle is loose: the second ROI moves

    counting.calls = 0
    kept = landmarks(image, detection, refine=1, tolerance=moved + 1e-6)  # within the tolerance: one read
    assert counting.calls == 1 and kept.roi == first.roi and np.allclose(kept.points, first.points)
    counting.calls = 0
    again = landmarks(image, detection, refine=1, tolerance=moved * 0.5)  # beyond it: read again, in the new ROI
    assert counting.calls == 2 and again.roi == reread.roi and np.allclose(again.points, reread.points)
    default = blazepose.landmarks(image, detection)  # the default tolerance: read again only if the ROI moves more
    assert default.roi == (reread.roi if moved > REFINE_TOLERANCE else first.roi)
    counting.calls = 0
    landmarks(image, detection, refine=3, tolerance=0.0)  # an ROI that never stands exactly still: every read made
    assert counting.calls == 4

    # a read that finds no body (its pose flag under min_score) is not followed, however far its ROI would move
    counting.calls = 0
    unsure = landmarks(image, detection, refine=1, tolerance=0.0, min_score=1.01)
    assert counting.calls == 1 and unsure.roi == first.roi
    counting.calls = 0
    landmarks(image, detection, refine=1, tolerance=0.0, min_score=first.score)  # the flag at min_score: read again
    assert counting.calls == 2

    # the finder takes both from the settings
    settings = Settings(pose_models_dir=pose_models_dir, pose_refine_reads=0, pose_refine_tolerance=0.25)
    finder = PoseRegionFinder.from_settings(None, settings=settings, fetch=False)
    assert (finder.refine_reads, finder.refine_tolerance) == (0, 0.25)


class _Crowded:
    """The real estimator whose landmarks are squeezed into the upper 40% of where it reads them, as the
    landmark model is sometimes sure of them on drawn figures."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def landmarks(self, look, detection, **reads):
        pose = self.estimator.landmarks(look, detection, **reads)
        top = pose.points[:, 1].min()
        pose.points[:, 1] = top + (pose.points[:, 1] - top) * 0.4
        return pose


def test_a_pose_that_spans_part_of_the_person_is_not_used(blazepose, sample_look):
    image, truth = sample_look
    pose = blazepose.landmarks(image, blazepose.detect(image)[0])
    assert pose_span(pose, image.size, blazepose.person_box(image)) > 0.85  # a standing figure: eyes to heels

    placement = _finder(_Crowded(blazepose)).place(image, sorted(truth["products"]))
    assert placement.source == "person_box"
    assert re.match(r"regions_person_box: the pose spans 0\.\d\d of the person mask's height \(under 0\.70\); read in the ROI "
                    r"from the person mask's figure: the pose spans 0\.\d\d", placement.degraded[0])  # fmt: skip
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask", "region_pose_figure"}
    assert placement.face == _finder(blazepose).place(image, ["topwear"]).face  # the head, though no landmarks
    # the check off (LOOKSYNC_POSE_MIN_SPAN=0), or no person mask to check against: the pose is used
    assert _finder(_Crowded(blazepose), min_span=0).place(image, ["topwear"]).source == "pose"
    assert _finder(_Crowded(blazepose), person_mask=False).place(image, ["topwear"]).source == "pose"


def test_the_slots_in_a_fixed_looks_person_box_land_where_the_layout_puts_them(pose_models_dir, sample_look):
    """The taxonomy slots describe the fixed-frame figure, so fitted to that figure's person-mask box they
    must give back the layout's boxes: the frame is fitted to the mask's measured extent (0.039-0.934 of the
    height), not the garments' (0.01-0.96, which shrank every slot)."""
    image, _ = sample_look
    strict = BlazePose(resolve_pose_models("pypi", pose_models_dir, fetch=False), threads=2, min_detection=0.999)
    layers = [name for name in ALL_LAYERS if layer_slots(get_taxonomy(), name)]
    placement = _finder(strict, figure_roi=False).place(image, layers)
    assert placement.source == "person_box" and set(placement.boxes) == set(layers)
    layout = layout_placement(get_taxonomy(), image.size, layers)

    def overlap(name: str) -> float:
        """The main box's IoU with the layout's; for a layer worn on either side (the bag), its two slots' in either
        order (``pick_sides`` puts first the side that shows more)."""
        pose = get_taxonomy().layers[name].pose
        if not (pose and all(extent.outward for extent in pose) and len(placement.boxes[name]) > 1):
            return box_iou(placement.boxes[name][0], layout.boxes[name][0])
        ours, theirs = placement.boxes[name], layout.boxes[name]
        assert len(ours) == len(theirs) == 2
        return max(min(box_iou(a, b) for a, b in zip(order, theirs, strict=True)) for order in (ours, ours[::-1]))

    overlaps = [overlap(name) for name in layers]
    assert min(overlaps) > 0.8 and np.mean(overlaps) > 0.88



def test_detection_within_a_box_is_in_the_looks_pixels(blazepose, sample_look):
    """The detector shown a box of a larger canvas finds what it finds in that box alone, moved by the box's corner."""
    image, _ = sample_look
    canvas = Image.new("RGB", (image.width * 2, image.height + 100), (90, 90, 90))
    canvas.paste(image, (300, 60))
    alone, within = blazepose.detect(image)[0], blazepose.detect(canvas, within=(300, 60, 300 + image.width, 60 + image.height))[0]
    assert abs(alone.score - within.score) < 1e-6
    assert np.allclose(within.keypoints, alone.keypoints + [300, 60], atol=0.01)
    assert np.allclose(within.box, alone.box + [300, 60, 300, 60], atol=0.01)


def test_a_look_without_a_usable_pose_is_read_again_within_the_person_mask_box(blazepose, varied_looks, sample_look):
    """With the retry on: a three-quarter look: in the whole look the landmark model is sure of nothing; within the person mask's
    box (widened by 0.15 of its height), where the figure fills more of the detector's square, the pose is found
    and the layer is placed from it. A look whose first read is usable pays for no second one."""
    image, truth = varied_looks["vlook-005"]
    layers = sorted(truth["boxes"])
    without = _finder(blazepose, figure_roi=False).place(image, layers)  # the retry is off by default (LOOKSYNC_POSE_RETRY)
    assert without.source == "person_box" and without.degraded[0].startswith("regions_person_box: no pose landmarks")
    placement = _finder(blazepose, retry=True, figure_roi=False).place(image, layers)
    assert placement.source == "pose" and not placement.degraded
    assert set(placement.timings_ms) == {"region_pose", "region_person_mask", "region_pose_retry"}
    assert set(placement.boxes) == set(layers)
    assert all(box_iou(placement.boxes[name][0], tuple(truth["boxes"][name])) > 0.7 for name in layers)

    box = blazepose.person_box(image)
    pad = 0.15 * (box[3] - box[1])
    assert retry_box(box, image.size) == (max(0, int(box[0] - pad)), max(0, int(box[1] - pad)),
                                          min(image.width, int(np.ceil(box[2] + pad))), min(image.height, int(np.ceil(box[3] + pad))))  # fmt: skip

    image, truth = sample_look
    assert "region_pose_retry" not in _finder(blazepose, retry=True).place(image, ["topwear"]).timings_ms


def test_the_person_box_slots_hang_from_the_head_not_from_raised_hands(blazepose, varied_looks):
    """Both arms raised: the person mask's box starts at the hands, so slots fitted to the box sit too high (the
    bag above the hip). The mask's highest pixel near its midline is the head's top; hung from it, the bag's slot
    lands on the bag."""
    image, truth = varied_looks["vlook-006"]
    assert truth["framing"]["pose"] == "raised"
    figure = blazepose.person_figure(image)
    x0, y0, x1, y1 = figure.box
    assert figure.box == blazepose.person_box(image)
    assert figure.head_top > y0 + 0.15 * (y1 - y0)  # the hands are well above the head
    assert x0 < figure.midline < x1
    layers = sorted(truth["boxes"])
    placement = _finder(blazepose, pick_side=False).place(image, layers)
    assert placement.source == "person_box"
    bag = tuple(truth["boxes"]["bag"])
    assert max(box_iou(b, bag) for b in placement.boxes["bag"]) > 0.5
    from_box = person_box_placement(get_taxonomy(), figure.box, image.size, layers)  # the box's top and centre
    assert max(box_iou(b, bag) for b in from_box.boxes["bag"]) < 0.25
    assert _finder(blazepose, figure_axis=False, pick_side=False).place(image, layers).boxes == from_box.boxes
    picked = _finder(blazepose).place(image, layers)  # the bag's side picked in the person's box too
    assert picked.boxes["bag"] == [max(placement.boxes["bag"], key=lambda b: box_iou(b, bag))] and "region_sides" in picked.timings_ms


def test_the_figure_frame_is_fitted_from_the_head_top_and_the_midline():
    """The frame's height runs from the head's top to the box's bottom and its centre is the mask's midline (a
    bag held out to one side widens the box, not the body); without them, the box's top and centre."""
    box, size = (100, 40, 300, 560), (600, 700)
    height = (560 - 40) / (0.934 - 0.039)
    assert np.allclose(figure_frame(box, size), (200 - 0.3 * height, 40 - 0.039 * height, 0.6 * height, height))
    left, top, width, height = figure_frame(box, size, PersonFigure(box, head_top=120.0, midline=170.0))
    assert np.isclose(height, (560 - 120) / (0.934 - 0.039)) and np.isclose(top, 120 - 0.039 * height)
    assert np.isclose(left + width / 2, 170.0) and np.isclose(width, 0.6 * height)


def _figure_on_white(size=(300, 400), person=(120, 180)):
    """A white look with a grey person column between ``person``'s x bounds, and its mask on a coarser grid."""
    pixels = np.full((size[1], size[0], 3), 255, np.uint8)
    pixels[40:380, person[0]:person[1]] = 128
    mask = np.zeros((size[1] // 2, size[0] // 2), np.float32)
    mask[20:190, person[0] // 2 : person[1] // 2] = 0.9
    return pixels, mask


def test_side_evidence_counts_what_lies_beside_the_body_and_not_the_person():
    pixels, mask = _figure_on_white()
    background = np.array([255, 255, 255], np.int16)
    left, right = (20, 150, 150, 300), (150, 150, 280, 300)
    assert side_evidence(pixels, mask, left, background) == side_evidence(pixels, mask, right, background) == 0.0
    pixels[200:260, 200:250] = (150, 40, 30)  # a bag beside the right hip, outside the person mask
    share = side_evidence(pixels, mask, right, background)
    assert np.isclose(share, 60 * 50 / (150 * 130 - 150 * 30), rtol=0.05)  # its share of the box's non-person pixels
    assert side_evidence(pixels, mask, left, background) == 0.0
    mask[100:130, 100:125] = 0.9  # the mask takes the bag in: the person's own pixels are not evidence
    assert side_evidence(pixels, mask, right, background) == 0.0


def test_a_bag_is_cropped_on_the_side_that_shows_one_else_on_both():
    taxonomy = get_taxonomy()
    pixels, mask = _figure_on_white()
    left, right = (20, 150, 150, 300), (150, 150, 280, 300)

    def placed():
        return Placement(boxes={"bag": [left, right], "bottomwear": [(100, 200, 200, 380), (100, 200, 200, 300)]}, source="pose")

    nothing = placed()
    pick_sides(taxonomy, nothing, pixels, mask)
    assert nothing.boxes == placed().boxes  # nothing beside the body: both sides stay
    pixels[200:260, 200:250] = (150, 40, 30)
    one = placed()
    pick_sides(taxonomy, one, pixels, mask)
    assert one.boxes["bag"] == [right]
    assert one.boxes["bottomwear"] == placed().boxes["bottomwear"]  # a layer not worn on either side keeps its extents
    pixels[200:245, 30:80] = (40, 40, 150)  # something on the other side too, nearly as much: no clear side, both
    both = placed()  # stay, the side with more unlike the background first (the box the heads read)
    pick_sides(taxonomy, both, pixels, mask)
    assert both.boxes["bag"] == [right, left]
    pixels[195:265, 25:95] = (40, 40, 150)  # now a little more on the left: still no clear side, the left first
    both = placed()
    pick_sides(taxonomy, both, pixels, mask)
    assert both.boxes["bag"] == [left, right]
    pixels[195:265, 25:95] = 255
    pixels[190:290, 190:270] = (150, 40, 30)  # a bigger bag that the mask takes in (it touches the body): every
    mask[95:145, 90:135] = 0.9  # pixel of the boxes tells
    assert side_evidence(pixels, mask, right, np.array([255, 255, 255], np.int16)) == 0.0
    taken_in = placed()
    pick_sides(taxonomy, taken_in, pixels, mask)
    assert taken_in.boxes["bag"] == [right]


def test_the_pose_finder_crops_a_carried_bag_on_its_side(blazepose, pose_models_dir, bench_looks):
    image, truth = bench_looks["look-003"]
    layers = sorted(truth["products"])
    bag = tuple(truth["boxes"]["bag"])
    both = _finder(blazepose, pick_side=False).place(image, layers)
    assert both.source == "pose" and len(both.boxes["bag"]) == 2
    one = _finder(blazepose).place(image, layers)
    assert one.source == "pose" and len(one.boxes["bag"]) == 1 and "region_sides" in one.timings_ms
    assert box_iou(one.boxes["bag"][0], bag) == max(box_iou(b, bag) for b in both.boxes["bag"]) > 0.3
    assert {k: v for k, v in one.boxes.items() if k != "bag"} == {k: v for k, v in both.boxes.items() if k != "bag"}
    settings = Settings(pose_models_dir=pose_models_dir, pose_pick_side=False)
    assert PoseRegionFinder.from_settings(None, settings=settings, fetch=False).pick_side is False


class _Legs:
    """A pose of named points only (what ``continuous`` reads)."""

    def __init__(self, **points):
        self.points = {name: np.array(xy, dtype=np.float32) for name, xy in points.items()}

    def point(self, name):
        return self.points[name]


def test_a_garment_runs_on_where_its_colour_does_along_every_chain():
    pixels = np.full((400, 200, 3), 255, np.uint8)
    pixels[100:380, 40:160] = (30, 40, 120)  # trousers from the hips to the ankles
    legs = _Legs(left_hip=(70, 100), left_knee=(70, 240), left_ankle=(70, 370),
                 right_hip=(130, 100), right_knee=(130, 240), right_ankle=(130, 370))  # fmt: skip
    chains = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
    assert continuous(pixels, legs, chains)
    pixels[250:380, 100:160] = (200, 160, 130)  # one bare shin: not the same garment all the way down
    assert not continuous(pixels, legs, chains)
    assert continuous(pixels, legs, chains[:1])  # the other leg alone still runs on
    legs.points["left_ankle"] = np.array([70.0, 420.0])  # a point out of the look: nothing to tell
    assert not continuous(pixels, legs, chains[:1])
    assert not continuous(pixels, legs, ())


def test_the_knee_crop_of_long_trousers_is_left_out(blazepose, pose_models_dir, bench_looks):
    image, truth = bench_looks["look-002"]
    layers = sorted(truth["products"])
    trousers = tuple(truth["boxes"]["bottomwear"])
    both = _finder(blazepose, pick_length=False).place(image, layers)
    one = _finder(blazepose).place(image, layers)
    assert both.source == one.source == "pose" and len(both.boxes["bottomwear"]) == 2
    assert one.boxes["bottomwear"] == both.boxes["bottomwear"][:1]  # hips to ankles, the crop that holds them
    assert box_iou(one.boxes["bottomwear"][0], trousers) > box_iou(both.boxes["bottomwear"][1], trousers)
    settings = Settings(pose_models_dir=pose_models_dir, pose_pick_length=False)
    assert PoseRegionFinder.from_settings(None, settings=settings, fetch=False).pick_length is False


def test_the_figure_roi_is_hung_from_the_head_and_scaled_by_the_height_or_the_width():
    """The landmark ROI from the person mask's figure: upright, on the midline, centred at 0.48 of the 3:5 frame's
    height below its top (where the hip centre is), 1.25 x that height on a side; the frame is fitted by the
    height from the head's top, or by the width when the mask reaches the look's bottom (within 3%)."""
    size = (600, 1000)
    whole = PersonFigure((200, 100, 400, 900), head_top=120.0, midline=290.0)
    height = (900 - 120) / (0.934 - 0.039)
    top = 120 - 0.039 * height
    roi = figure_roi(whole, size)
    assert roi.rotation == 0.0 and np.isclose(roi.cx, 290.0)
    assert np.isclose(roi.cy, top + 0.48 * height) and np.isclose(roi.side, 1.25 * height)
    cut = PersonFigure((200, 100, 400, 975), head_top=120.0, midline=290.0)  # 25 px short of the bottom: cut
    height = (400 - 200) / 0.586 / 0.6
    roi = figure_roi(cut, size)
    assert np.isclose(roi.cy, 120 - 0.039 * height + 0.48 * height) and np.isclose(roi.side, 1.25 * height)
    # the ROI's own frame -> the look's pixels: its centre, and its bottom edge's middle straight below
    assert np.allclose(roi.to_image(np.array([0.5, 0.5])), (roi.cx, roi.cy))
    assert np.allclose(roi.to_image(np.array([0.5, 1.0])), (roi.cx, roi.cy + roi.side / 2))


def test_landmarks_read_in_a_given_roi_are_in_the_looks_pixels(blazepose, astronaut):
    """A read in a ROI that runs off the look (the figure's ROI of a waist-up photo does) fills the outside with
    the look's edge pixels, so the same photo edge-padded and read in the same ROI moved by the padding gives the
    same landmarks moved by the padding: the points come back in the look's pixels, wherever the ROI lies."""
    figure = blazepose.person_figure(astronaut)
    roi = figure_roi(figure, astronaut.size)
    assert roi.cy + roi.side / 2 > astronaut.height  # off the bottom of the photo
    dx, dy = 48, 30  # multiples of the factor the look is box-reduced by before the warp (3 here), so the grids align
    assert int(roi.side // 512) == 3
    padded = Image.fromarray(np.pad(np.asarray(astronaut), ((dy, 60), (dx, 20), (0, 0)), mode="edge"))
    detection = Detection(0.0, np.zeros(4), np.zeros((4, 2)))
    alone = blazepose.landmarks(astronaut, detection, refine=0, roi=roi)
    moved = blazepose.landmarks(padded, detection, refine=0, roi=Roi(roi.cx + dx, roi.cy + dy, roi.side, roi.rotation))
    assert alone.roi == roi
    # the same up to the crops' resampling (one model pixel is roi.side / 256, 7 px here), far under the shift
    error = np.abs(moved.points - alone.points - [dx, dy])
    assert error.max() < roi.side / 256 * 1.2 and np.median(error) < roi.side / 256 / 2


def test_a_waist_up_photo_without_a_detection_is_read_in_the_figures_roi(pose_models_dir, blazepose, astronaut):
    """The detector held back (its threshold above any score): the landmarks read in the ROI from the person
    mask land on the person as the detector's own do (nose and shoulders within 0.06 of the photo's side)."""
    strict = BlazePose(resolve_pose_models("pypi", pose_models_dir, fetch=False), threads=2, min_detection=0.999)
    finder = _finder(strict)
    pose = finder.figure_pose(astronaut, strict.person_figure(astronaut))
    reference = blazepose.landmarks(astronaut, blazepose.detect(astronaut)[0])
    for name in ("nose", "left_shoulder", "right_shoulder"):
        assert np.linalg.norm(pose.point(name) - reference.point(name)) < 0.06 * astronaut.width, name
    assert pose.detection.score == 0.0 and np.allclose(pose.detection.box, strict.person_figure(astronaut).box)


def test_a_cut_figure_without_a_detector_pose_is_placed_from_the_figures_roi(blazepose, varied_looks):
    """A three-quarter look (cut at the knees) whose detector read the landmark model is not sure of: read in the
    ROI from the person mask's figure, the pose places its garments closer to their boxes than the person's box
    slots, and the feet are out of frame."""
    image, truth = varied_looks["vlook-003"]
    assert truth["framing"]["crop"] == "three_quarter"
    layers = sorted(truth["boxes"])
    before = _finder(blazepose, figure_roi=False).place(image, [*layers, "footwear"])
    # (the detector reads this figure upside down, so its landmarks are not read)
    assert before.source == "person_box" and before.degraded[0].startswith("regions_person_box: the detector's pose tilted")
    placement = _finder(blazepose).place(image, [*layers, "footwear"])
    assert placement.source == "pose" and len(placement.degraded) == 1
    assert re.fullmatch(r"regions_pose_figure: the detector's pose tilted \d+ degrees from upright \(over 60\), landmarks not "
                        r"read; landmarks read in the ROI from the person mask's figure", placement.degraded[0])  # fmt: skip
    assert placement.absent["footwear"].startswith("out of frame")
    assert all(_inside(box, image.size) for boxes in placement.boxes.values() for box in boxes)

    def iou(p, layer):
        return max(box_iou(b, tuple(truth["boxes"][layer])) for b in p.boxes[layer])

    assert iou(placement, "bottomwear") > iou(before, "bottomwear") + 0.05 and iou(placement, "topwear") > iou(before, "topwear") + 0.05


def _reference_warp(look, roi, out):
    """``warp_roi`` as first written: PIL's reduce and affine warp, then every outside pixel's nearest edge pixel
    through boolean indexing."""
    factor = max(1, int(roi.side // (2 * out)))
    source = look.reduce(factor) if factor > 1 else look
    side, c, s = roi.side / factor, math.cos(roi.rotation), math.sin(roi.rotation)
    cx, cy = roi.cx / factor, roi.cy / factor
    data = (side * c / out, -side * s / out, cx - 0.5 * side * (c - s), side * s / out, side * c / out, cy - 0.5 * side * (s + c))
    inside = np.array(source.transform((out, out), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR))
    width, height = source.size
    centres = np.arange(out, dtype=np.float32) + np.float32(0.5)
    x = (np.float32(data[0]) * centres)[None, :] + (np.float32(data[1]) * centres + np.float32(data[2]))[:, None]
    y = (np.float32(data[3]) * centres)[None, :] + (np.float32(data[4]) * centres + np.float32(data[5]))[:, None]
    outside = (x < 0.5) | (y < 0.5) | (x > width - 0.5) | (y > height - 0.5)
    pixels = np.asarray(source)
    inside[outside] = pixels[np.clip(y[outside], 0, height - 1).astype(np.int32), np.clip(x[outside], 0, width - 1).astype(np.int32)]
    return inside


def test_the_region_steps_shortcuts_compute_what_the_plain_operations_do():
    """The look's shared reductions (``LookCache``), the landmark crop's edge fill, the mask's edge padding, the person
    figure from counts and a segment's colour from one gather are speed-ups only: bit for bit what PIL's resize,
    boolean indexing, ``np.pad``, ``np.nonzero`` + ``np.median`` and a patch at a time give (identical placements on 301 training looks: docs/evaluation.md, "The region
    step's Python work")."""
    from looksync.search.pose.blazepose import HEAD_BAND, _figure
    from looksync.search.pose.crops import LookCache, edge_padded, warp_roi
    from looksync.search.pose.regions import segment_colour

    rng = np.random.default_rng(3)
    for width, height in ((384, 640), (640, 360), (577, 575), (479, 641), (1500, 900), (200, 90)):
        look = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        cache = LookCache(look)
        for long_side in (224, 256):
            scale = long_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            assert np.array_equal(np.asarray(cache.fit(size)), np.asarray(look.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)))
        for roi in (Roi(width / 2, height / 2, min(width, height) / 2, 0.0), Roi(width * 0.3, height * 0.6, 2.6 * height, 0.4),
                    Roi(-20.0, height + 5.0, 700.0, -2.9), Roi(width / 2, height / 2, 4.0 * max(width, height), math.pi / 2)):  # fmt: skip
            assert np.array_equal(warp_roi(look, roi, 256, cache), _reference_warp(look, roi, 256))
    pixels = rng.integers(0, 256, (154, 256, 3), dtype=np.uint8)
    for pad_x, pad_y in ((0, 51), (51, 0), (3, 7)):
        part = pixels[: 256 - 2 * pad_y, : 256 - 2 * pad_x]
        expected = np.pad(part, ((pad_y, 256 - part.shape[0] - pad_y), (pad_x, 256 - part.shape[1] - pad_x), (0, 0)), mode="edge")
        assert np.array_equal(edge_padded(part, 256, pad_x, pad_y), expected)
    edges = [((0.5, 0.5), (1.0, 39.0)), ((3.0, 39.5), (59.5, 38.0)), ((59.9, 2.0), (58.0, 30.0)), ((10.0, 1.0), (50.0, 0.2))]
    for a, b in [*(np.array(e) for e in edges), *(rng.uniform(0, 1, (2, 2)) * (59.999, 39.999) for _ in range(40))]:
        # segments anywhere in a small look: along its edges (patches cut by them) and anywhere (mostly whole)
        colours = []
        for t in np.linspace(0.3, 0.8, 7):
            x, y = (int(v) for v in (1 - t) * a + t * b)
            colours.append(pixels[max(0, y - 2) : min(40, y + 3), max(0, x - 2) : min(60, x + 3)].reshape(-1, 3).mean(0))
        assert np.array_equal(segment_colour(pixels[:40, :60], a, b), np.median(colours, axis=0))
    for mask in (rng.random((256, 144)) < 0.3, np.pad(rng.random((90, 41)) < 0.7, ((30, 136), (60, 43))),
                 np.pad(np.ones((5, 6), bool), ((100, 151), (0, 138)))):  # fmt: skip
        ys, xs = np.nonzero(mask)
        midline = float(np.median(xs)) + 0.5
        band = max(1.0, HEAD_BAND * (ys.max() + 1 - ys.min()))
        head_top = float(ys[np.abs(xs + 0.5 - midline) <= band].min())
        figure = _figure(mask, mask.astype(np.float32), (576, 1024))
        sx, sy = 576 / mask.shape[1], 1024 / mask.shape[0]
        assert (figure.midline, figure.head_top) == (midline * sx, head_top * sy)
        assert figure.box == (int(math.floor(xs.min() * sx)), int(math.floor(ys.min() * sy)), int(math.ceil((xs.max() + 1) * sx)),
                              int(math.ceil((ys.max() + 1) * sy)))  # fmt: skip


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_bag_held_in_front_of_the_body_is_inside_its_crop(blazepose, mirrored):
    """A bag hangs centred under the hand that holds it: held in front, it lies mostly inward of the wrist, and the
    bag's pose boxes reach past the wrist on both sides to take it in (on generated looks of the train split, the
    share of a held bag's box inside the main bag crop went from 0.15 to 0.57: docs/evaluation.md)."""
    from looksync.sample.framing import Framing, frame_look
    from tests.sample.outfits import outfits

    framing = Framing(pose="holding_bag", aspect="3:4", crop="full", style="flat", background="plain",
                      mirrored=mirrored, scale=0.9, rotation=0.0, position=(0.5, 0.5))  # fmt: skip
    outfit = next(o for o in outfits("women", 40) if "bag" in o)
    look = frame_look(outfit, framing, random.Random(3), "women")
    bag = look.boxes["bag"]
    placement = _finder(blazepose).place(look.image, ["bag", "topwear"])
    assert placement.source == "pose"

    def covered(box):  # the share of the bag's own box inside ``box``
        w = max(0, min(bag[2], box[2]) - max(bag[0], box[0]))
        h = max(0, min(bag[3], box[3]) - max(bag[1], box[1]))
        return w * h / ((bag[2] - bag[0]) * (bag[3] - bag[1]))

    best = max(covered(box) for box in placement.boxes["bag"])
    assert best >= 0.45, (best, bag, placement.boxes["bag"])  # 0.16 and 0.0 with the boxes ending at the wrist
