"""BlazePose on LiteRT (CPU, numpy + PIL): the person and the body's 33 keypoints in a look.

Two stages, as MediaPipe's pose graphs run them (``pose_detection_cpu.pbtxt``,
``pose_detection_to_roi.pbtxt``, ``pose_landmark_by_roi_cpu.pbtxt``):

1. ``pose_detection.tflite``: the look letterboxed into 224 x 224, values in [-1, 1]; 2,254 SSD anchors
   (5 layers, strides 8, 16, 32, 32, 32, two fixed-size anchors per cell and layer, merged per stride:
   28x28x2 + 14x14x2 + 7x7x6); each anchor regresses a box (the face) and 4 keypoints (hip centre,
   full-body size/rotation point, shoulder centre, upper-body point); sigmoid scores, weighted NMS
   (IoU 0.3).
2. The region of interest: centred on the hip centre, a square of side 2 x |hip centre -> full-body
   point| x 1.25, rotated so the body is upright. It is warped to 256 x 256 (bilinear, edges
   replicated) for ``pose_landmark_full.tflite`` (values in [0, 1]), whose 195 outputs are 39 points x
   (x, y, z, visibility logit, presence logit): the 33 body landmarks, then auxiliary points. They are
   mapped back through the same rotation into the look's pixels. (MediaPipe refines them with the
   heatmap output; not done here, so the model is loaded cut to the two outputs read: ``prune``.)

``selfie_segmentation.tflite`` (256 x 256, [0, 1], the look fitted and edge-padded) gives a person mask: the person's box
when no pose is found.

The models' inputs (the look's fits and the landmark crops) are made in ``crops``.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from looksync.search.pose.crops import LookCache, edge_padded, warp_roi
from looksync.search.pose.prune import prune_outputs

if TYPE_CHECKING:
    from PIL.Image import Image

    from looksync.search.pose.models import PoseModelPaths

LANDMARKS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
LANDMARK_INDEX = {name: i for i, name in enumerate(LANDMARKS)}
LANDMARK_OUTPUTS = ((195,), (1,))  # of the landmark model's outputs, those read: 39 points x 5, the pose flag

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
SEGMENTATION_SIZE = 256
NMS_IOU = 0.3
ROI_SCALE = 1.25
BODY_POINTS = [33, 34]  # the landmark model's auxiliary points: hip centre and full-body point, as the detector's
HEAD_BAND = 0.05  # the head is looked for within this share of the mask's height either side of its midline
REFINE_READS = 1  # landmark reads after the first at most, each in the ROI of the read before
# a further read is skipped when the ROI it would be made in differs from the last read's by at most this share of
# the ROI's side (``roi_change``): the crop would be nearly the same, and so would the landmarks. At 0.1 the second
# read is made on 23% of the 360 heads-training looks with a person (the detector's circle loose, mostly fixed-frame
# figures) and on 20% of the eval looks, keeping the regions' cover of the garments within 0.006 of always reading
# again and look Recall@10 the same (docs/evaluation.md, "Fewer landmark reads")
REFINE_TOLERANCE = 0.1
# the landmark model's pose-presence flag, as MediaPipe thresholds it: a read under it found no body, and is not
# followed by a further read in the ROI it gives (on 220 generated training looks, 10 such second reads made a pose
# usable on 1; docs/evaluation.md, "The region step's wasted reads")
MIN_POSE_SCORE = 0.5


def ssd_anchors(size: int = DETECTOR_SIZE, strides: tuple[int, ...] = (8, 16, 32, 32, 32), per_layer: int = 2) -> np.ndarray:
    """Anchor centres (n x 2, x then y, in [0, 1]) in the detector's output order: per stride (layers
    with the same stride merged), row-major cells, the anchors of a cell together. Fixed anchor size:
    width and height are 1, so only the centres matter."""
    centres = []
    i = 0
    while i < len(strides):
        stride, layers = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            layers, i = layers + 1, i + 1
        cells = math.ceil(size / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, layers * per_layer, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass
class Detection:
    """One person from the detector, in the look's pixels."""

    score: float
    box: np.ndarray  # x0, y0, x1, y1 (the detector's box is the face)
    keypoints: np.ndarray  # 4 x 2: hip centre, full-body point, shoulder centre, upper-body point

    def person_box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The full-body circle (centre: hips, radius: to the full-body point) as a box in the look."""
        centre, radius = self.keypoints[0], float(np.linalg.norm(self.keypoints[1] - self.keypoints[0]))
        return _clip_box((centre[0] - radius * 0.5, centre[1] - radius, centre[0] + radius * 0.5, centre[1] + radius), size)


@dataclass
class PersonFigure:
    """The person mask read as a standing figure: its box, the top of the head (the mask's highest pixel
    near the midline: raised hands or a held bag stretch the box, not this) and the midline (the median x of
    the mask's pixels), in the look's pixels; ``mask``: the person probability it was read from (``person_mask``'s
    grid), where kept."""

    box: tuple[int, int, int, int]
    head_top: float
    midline: float
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class Roi:
    """A rotated square of the look: centre and side in pixels, rotation in radians."""

    cx: float
    cy: float
    side: float
    rotation: float

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """Points given as fractions of the (upright) ROI -> pixels of the look."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        x, y = uv[..., 0] - 0.5, uv[..., 1] - 0.5
        return np.stack([self.cx + self.side * (c * x - s * y), self.cy + self.side * (s * x + c * y)], axis=-1)


@dataclass
class Pose:
    """The body's 33 landmarks in the look's pixels, with sigmoid visibility and presence."""

    points: np.ndarray  # 33 x 2
    visibility: np.ndarray  # 33
    presence: np.ndarray  # 33
    score: float  # the landmark model's pose-presence flag
    detection: Detection
    roi: Roi

    def point(self, name: str) -> np.ndarray:
        return self.points[LANDMARK_INDEX[name]]


def roi_from_detection(detection: Detection) -> Roi:
    return roi_from_body(detection.keypoints[0], detection.keypoints[1])


def roi_from_body(hips: np.ndarray, body: np.ndarray) -> Roi:
    """The ROI around the hip centre, upright along hips -> full-body point, sized to the body's circle."""
    (x0, y0), (x1, y1) = hips, body
    rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))  # to [-pi, pi)
    side = 2.0 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    return Roi(float(x0), float(y0), side, rotation)


def roi_change(before: Roi, after: Roi) -> float:
    """How far the crop of ``after`` is from that of ``before``, as a share of ``before``'s side: the largest
    of the centre's shift, the side's change and the rotation's (its arc at the square's corners, ~0.71 x the
    angle in radians)."""
    turn = abs((after.rotation - before.rotation + math.pi) % (2 * math.pi) - math.pi)
    return max(math.hypot(after.cx - before.cx, after.cy - before.cy) / before.side,
               abs(after.side / before.side - 1.0), turn * math.sqrt(0.5))  # fmt: skip


def _clip_box(box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = size
    x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x1, y1 = min(width, int(math.ceil(box[2]))), min(height, int(math.ceil(box[3])))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _figure(mask: np.ndarray, probability: np.ndarray, size: tuple[int, int]) -> PersonFigure:
    """The figure of a (non-empty) person mask: its box, the midline (the median x of its pixels) and the head top (its
    highest pixel within the head band of the midline), from the mask's row and column counts instead of every
    pixel's coordinates; the same numbers as ``np.nonzero`` and ``np.median`` over them give."""
    rows = np.flatnonzero(mask.any(1))
    counts = mask.sum(0)
    cols = np.flatnonzero(counts)
    y0, y1, x0, x1 = rows[0], rows[-1], cols[0], cols[-1]
    sx, sy = size[0] / mask.shape[1], size[1] / mask.shape[0]
    box = _clip_box((x0 * sx, y0 * sy, (x1 + 1) * sx, (y1 + 1) * sy), size)
    # the median of the pixels' x, column by column: the middle one (odd count) or the mean of the middle two
    n, cumulative = int(counts.sum()), np.cumsum(counts)
    middle = np.searchsorted(cumulative, [(n - 1) // 2, n // 2], side="right")
    midline = float(np.mean(middle)) + 0.5
    band = max(1.0, HEAD_BAND * (y1 + 1 - y0))
    near = np.abs(np.arange(mask.shape[1]) + 0.5 - midline) <= band
    head_top = float(np.flatnonzero(mask[:, near].any(1)).min())
    return PersonFigure(box, head_top * sy, midline * sx, probability)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's WEIGHTED non-max suppression: each kept detection is the score-weighted mean of the
    candidates overlapping the best remaining one by more than ``iou``; it keeps the best score."""
    order = np.argsort(-scores)
    kept = []
    while order.size:
        b = boxes[order]
        ix0, iy0 = np.maximum(b[:, 0], b[0, 0]), np.maximum(b[:, 1], b[0, 1])
        ix1, iy1 = np.minimum(b[:, 2], b[0, 2]), np.minimum(b[:, 3], b[0, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        in_group = inter / np.maximum(areas + areas[0] - inter, 1e-9) > iou
        in_group[0] = True  # the best one, even when its box is degenerate
        group = order[in_group]
        w = scores[group][:, None]
        kept.append((
            float(scores[order[0]]),
            (boxes[group] * w).sum(0) / w.sum(),
            (keypoints[group] * w[:, :, None]).sum(0) / w.sum(),
        ))  # fmt: skip
        order = order[~in_group]
    return kept


class BlazePose:
    """The detector, landmark and segmentation models on one LiteRT interpreter each (CPU). An
    interpreter runs one call at a time, so calls are serialised per instance."""

    def __init__(self, paths: PoseModelPaths, threads: int | None = None, min_detection: float = 0.5):
        from ai_edge_litert.interpreter import Interpreter

        threads = threads or min(4, os.cpu_count() or 1)
        self.threads = threads
        self.detector = Interpreter(model_path=str(paths.detector), num_threads=threads)
        # only the landmarks and the pose flag are read: the mask and heatmap branches are cut (~40% of a call)
        landmarks = prune_outputs(Path(paths.landmarks).read_bytes(), keep=lambda shape: shape in LANDMARK_OUTPUTS)
        self.landmarker = Interpreter(model_content=landmarks, num_threads=threads)
        self.segmenter = Interpreter(model_path=str(paths.segmentation), num_threads=threads)
        for interpreter in (self.detector, self.landmarker, self.segmenter):
            interpreter.allocate_tensors()
        self._check_input(self.detector, DETECTOR_SIZE, paths.detector)
        self._check_input(self.landmarker, LANDMARK_SIZE, paths.landmarks)
        self._check_input(self.segmenter, SEGMENTATION_SIZE, paths.segmentation)
        self.min_detection = min_detection
        self.anchors = ssd_anchors()
        self._outputs = {
            id(it): {tuple(d["shape"][1:]): d["index"] for d in it.get_output_details()}
            for it in (self.detector, self.landmarker, self.segmenter)
        }
        self._input = {id(it): it.get_input_details()[0]["index"] for it in (self.detector, self.landmarker, self.segmenter)}
        self._lock = threading.Lock()

    @staticmethod
    def _check_input(interpreter, size: int, path) -> None:
        shape = tuple(interpreter.get_input_details()[0]["shape"])
        if shape != (1, size, size, 3):
            raise ValueError(f"{path}: input shape {shape}, expected (1, {size}, {size}, 3)")

    def _run(self, interpreter, tensor: np.ndarray) -> dict[tuple, np.ndarray]:
        with self._lock:
            interpreter.set_tensor(self._input[id(interpreter)], np.asarray(tensor[None], dtype=np.float32))
            interpreter.invoke()
            return {shape: interpreter.get_tensor(index)[0] for shape, index in self._outputs[id(interpreter)].items()}

    # ---- stage 1: the person ------------------------------------------------------------------

    def detect(self, look: Image, within: tuple[int, int, int, int] | None = None, cache: LookCache | None = None) -> list[Detection]:
        """People in the look, best first (weighted NMS), in the look's pixels. ``within``: a box of the
        look (x0, y0, x1, y1) that the detector sees instead of the whole look (letterboxed the same way).
        ``cache``: the look's ``LookCache`` (not used with ``within``)."""
        if within is not None:
            x0, y0 = within[0], within[1]
            return [Detection(d.score, d.box + np.array([x0, y0, x0, y0]), d.keypoints + np.array([x0, y0]))
                    for d in self.detect(look.crop(tuple(within)))]  # fmt: skip
        width, height = look.size
        scale = DETECTOR_SIZE / max(width, height)
        # box-reduced by an integer factor first, then bilinear (reducing_gap 1: 0.7 ms instead of 1.2-2.8)
        fitted = (cache or LookCache(look)).fit((max(1, round(width * scale)), max(1, round(height * scale))))
        pad_x, pad_y = (DETECTOR_SIZE - fitted.width) // 2, (DETECTOR_SIZE - fitted.height) // 2
        # values in [-1, 1], the letterbox black (-1); computed in place, in float32 as x / 127.5 - 1
        tensor = np.full((DETECTOR_SIZE, DETECTOR_SIZE, 3), -1.0, dtype=np.float32)
        inner = tensor[pad_y : pad_y + fitted.height, pad_x : pad_x + fitted.width]
        np.divide(np.asarray(fitted), np.float32(127.5), out=inner, dtype=np.float32)
        np.subtract(inner, np.float32(1.0), out=inner)
        out = self._run(self.detector, tensor)
        raw, logits = out[(2254, 12)], out[(2254, 1)][:, 0]
        scores = _sigmoid(logits)
        keep = scores >= self.min_detection
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        centre = raw[:, 0:2] / DETECTOR_SIZE + anchors
        half = raw[:, 2:4] / DETECTOR_SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = raw[:, 4:12].reshape(-1, 4, 2) / DETECTOR_SIZE + anchors[:, None, :]
        detections = []
        for score, box, points in weighted_nms(boxes, keypoints, scores):
            # tensor fractions -> look pixels (the letterbox removed)
            to_px = np.array([DETECTOR_SIZE, DETECTOR_SIZE]) / scale
            offset = np.array([pad_x, pad_y]) / scale
            detections.append(Detection(score, np.concatenate([box[:2] * to_px - offset, box[2:] * to_px - offset]),
                                        points * to_px - offset))  # fmt: skip
        return detections

    # ---- stage 2: the landmarks ---------------------------------------------------------------

    def landmarks(self, look: Image, detection: Detection, refine: int = REFINE_READS,
                  tolerance: float = REFINE_TOLERANCE, roi: Roi | None = None, min_score: float = MIN_POSE_SCORE,
                  cache: LookCache | None = None) -> Pose:  # fmt: skip
        """The landmarks in the detector's ROI, then read up to ``refine`` more times, each in the ROI that the
        previous read's own hip-centre and full-body points give (MediaPipe's tracking ROI: its graphs crop
        each video frame from the landmarks of the one before). The detector places the body's circle
        loosely on drawn figures (the hip centre high, the ROI short of the feet); on 430 generated looks
        one more read gave a usable pose on 199 instead of 185, its regions covering more of each garment
        (0.87 against 0.84 on the varied looks placed from a pose). Each read costs one landmark call, so a
        read is skipped when its ROI would differ from the last one's by at most ``tolerance`` (``roi_change``), or
        when the last read's pose flag is under ``min_score`` (it found no body whose points to follow).
        ``roi``: the first read's ROI instead of the detector's (``figure_roi``: from the person mask). ``cache``: the
        look's ``LookCache``."""
        roi = roi or roi_from_detection(detection)
        cache = cache or LookCache(look)
        for read in range(refine + 1):
            crop = np.divide(warp_roi(look, roi, LANDMARK_SIZE, cache), np.float32(255.0), dtype=np.float32)  # in [0, 1]
            out = self._run(self.landmarker, crop)
            raw, flag = out[(195,)].reshape(39, 5), float(out[(1,)][0])
            if read == refine or flag < min_score:
                break
            following = roi_from_body(*roi.to_image(raw[BODY_POINTS, :2] / LANDMARK_SIZE))
            if roi_change(roi, following) <= tolerance:
                break
            roi = following
        raw = raw[: len(LANDMARKS)]
        points = roi.to_image(raw[:, :2] / LANDMARK_SIZE)
        return Pose(points, _sigmoid(raw[:, 3]), _sigmoid(raw[:, 4]), flag, detection, roi)

    # ---- the person mask ----------------------------------------------------------------------

    def person_mask(self, look: Image, cache: LookCache | None = None) -> np.ndarray:
        """Person probability per pixel of the look, on a grid whose long side is 256 (the look's aspect).

        The segmenter sees the look fitted into its 256 x 256 input and padded with the look's edge pixels,
        not stretched: stretched, a portrait figure is squashed and the model misses its legs or head (on
        120 generated fixed-frame looks the stretched mask found no person on 19 and a box short of the
        head or feet on 24; fitted, 1 and 10). A black border instead of the edge pixels did worse on
        varied looks (a dark band beside a light background). ``cache``: the look's ``LookCache``."""
        width, height = look.size
        scale = SEGMENTATION_SIZE / max(width, height)
        fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
        fitted = np.asarray((cache or LookCache(look)).fit((fit_w, fit_h)))
        pad_x, pad_y = (SEGMENTATION_SIZE - fit_w) // 2, (SEGMENTATION_SIZE - fit_h) // 2
        # padded in uint8, then one float32 x / 255 (0.07-0.16 ms, against 0.10-0.20 padding a float copy and dividing it)
        square = edge_padded(fitted, SEGMENTATION_SIZE, pad_x, pad_y)
        out = self._run(self.segmenter, np.divide(square, np.float32(255.0), dtype=np.float32))
        return out[(SEGMENTATION_SIZE, SEGMENTATION_SIZE, 1)][pad_y : pad_y + fit_h, pad_x : pad_x + fit_w, 0]

    def person_box(self, look: Image, threshold: float = 0.5, min_share: float = 0.02) -> tuple[int, int, int, int] | None:
        """The box of the person mask in the look's pixels, or None when under ``min_share`` of it."""
        figure = self.person_figure(look, threshold, min_share)
        return None if figure is None else figure.box

    def person_figure(self, look: Image, threshold: float = 0.5, min_share: float = 0.02, cache: LookCache | None = None) -> PersonFigure | None:
        """The person mask's box, head top and midline in the look's pixels (``PersonFigure``), or None when
        the mask covers under ``min_share`` of the look. ``cache``: the look's ``LookCache``."""
        probability = self.person_mask(look, cache)
        mask = probability >= threshold
        if mask.mean() < min_share:
            return None
        return _figure(mask, probability, look.size)
