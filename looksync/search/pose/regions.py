"""``PoseRegionFinder`` (``pose``): each layer's boxes from the body's keypoints, for looks in any
framing, and which layers are not in the look.

The anchors are data: each layer's ``pose`` extents in the taxonomy (``looksync/catalog/data/taxonomy.yaml``).
Fallbacks, in order, each recorded in the placement's ``degraded`` notes and ``timings_ms``:

1. ``pose``: BlazePose finds a person and its landmarks (pose-presence flag >= 0.5), the body no further
   from upright than ``max_tilt`` (the detector reads some figures upside down, and the landmark model is
   then sure of landmarks that are all wrong), and its landmarks spanning at least ``min_span`` of the
   person mask's height (on drawn figures the landmark model is sometimes sure of points crowded into
   the upper body: on 172 generated training looks with a pose and a mask, the 15 under 0.7 had regions covering
   0.28 less of each garment than the person's box gives); every layer with pose extents is placed from
   them or reported not in the look, with the reason. With ``retry`` (off by default: it rarely finds a
   pose, see ``Settings.pose_retry``), a look without a usable pose is read again within the person
   mask's box, widened, before falling back (``timings_ms["region_pose_retry"]``);
   ``pose`` from the person's figure (``figure_roi``, on by default): no usable pose from the detector, but a
   person mask: the landmark model reads the ROI that a standing figure hung from the mask's head top and
   midline, and scaled by its height (or by its width when the figure is cut by the look's bottom edge), would
   have (``figure_roi``; the same checks apply; ``timings_ms["region_pose_figure"]``, and a
   ``regions_pose_figure`` note in ``degraded`` says why the detector's pose was not used). The detector reads
   half and three-quarter figures upside down or not at all (its hip-centre and body keypoints assume a whole
   body); the landmark model, given an upright ROI where the whole body would be (the missing legs filled with
   the look's bottom-edge pixels), finds the upper body's landmarks on most of them;
2. ``person_box``: no pose, but a person box (the selfie-segmentation mask's box, else the detector's
   full-body circle): the taxonomy slots, which describe a full figure on a 3:5 portrait canvas, are
   placed in a frame fitted to that box (by its height, or by its width when the box runs off the
   bottom of the look); with the mask (``figure_axis``), the frame's top is the head's top and its centre the
   mask's midline, not the box's (raised hands and a held bag stretch the box, not the body); slots that
   fall mostly outside the look are reported not in the look;
3. ``layout``: no person at all: the taxonomy slots of the whole look (the ``layout`` finder).
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from looksync.catalog.taxonomy import Taxonomy, get_taxonomy
from looksync.search.pose.blazepose import (
    LANDMARK_INDEX,
    MIN_POSE_SCORE,
    REFINE_READS,
    REFINE_TOLERANCE,
    ROI_SCALE,
    BlazePose,
    Detection,
    PersonFigure,
    Pose,
    Roi,
    roi_from_detection,
)
from looksync.search.pose.crops import LookCache
from looksync.search.pose.models import PoseModelPaths, resolve_pose_models
from looksync.search.regions import (
    Box,
    ClipBoxRegionFinder,
    Placement,
    Region,
    find_placed,
    layer_slots,
    layout_placement,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL.Image import Image

    from embeddings import ClipEncoder
    from looksync.catalog.taxonomy import PoseExtent
    from looksync.settings import Settings

log = logging.getLogger(__name__)

# the taxonomy slots describe a figure on a 3:5 (width:height) portrait canvas whose person-mask box runs from
# 0.039 to 0.934 of its height, arms 0.586 of its width wide (medians over 90 generated fixed-frame looks; the
# garments' own slots reach 0.01-0.96, so fitting those to the mask's box shrank every slot by 6%)
LAYOUT_FIGURE_TOP, LAYOUT_FIGURE_BOTTOM, LAYOUT_ASPECT, LAYOUT_FIGURE_WIDTH = 0.039, 0.934, 0.6, 0.586
MIN_SHARE_IN_LOOK = 0.3  # a fallback slot with less of its area inside the look is out of frame
MIN_BOX_PX = 4
RETRY_MARGIN = 0.15  # the retry's crop: the person mask's box widened by this share of its height on each side
# one side of a layer worn on either side (a bag: extents all ``outward``): a pixel in a side's box, outside the person
# mask, whose colour is this far (L1 over RGB, 0-765) from the look's border colour is something beside the body; a
# side is kept alone when that share there is SIDE_MIN_GAP more than on the other side and SIDE_MIN_RATIO times it
# (on 46 pose-placed generated training looks with a bag, the side with the larger share was the bag's on 43; with the
# gap and ratio, one side was kept on 27, the wrong one on 1; docs/service.md, "One side of the bag")
SIDE_COLOUR_DISTANCE, SIDE_MIN_GAP, SIDE_MIN_RATIO = 60.0, 0.05, 2.0
# no clear side that way (the mask takes a bag in where it touches the body): every pixel of each side's box, a side
# kept alone at SIDE_WHOLE_MIN_GAP more and the same ratio (on 127 pose-placed looks with a bag of the two samples,
# after the cut figures' ROI: one side kept on 73 -> 86, the wrong one on 4 -> 4)
SIDE_WHOLE_MIN_GAP = 0.1
SIDE_SAMPLES = 96  # pixels read along a side box's longer side (a grid, not every pixel)
# an extent ``unless_continuous``: the colour of a segment is the median of 5 x 5 patches at 7 points from 0.3 to 0.8 of
# its length; two segments' colours within this L1 distance (RGB, 0-765) are one garment running on (on 47 pose-placed
# generated training looks with bottomwear, every look whose legs were all within 60 wore the long garment, 20 of the
# 47; short garments and boots measured 80-470; docs/service.md, "One side of the bag, one length of the legs")
CONTINUOUS_DISTANCE, SEGMENT_SAMPLES, SEGMENT_PATCH = 60.0, 7, 2
# the landmark ROI from the person's figure (``figure_roi``), in ``figure_frame``'s 3:5 frame: centred on the hip
# centre, which the landmark model puts at 0.44-0.51 of the frame's height on generated looks placed from the
# detector's pose (medians per framing), with a side of 1.25 x the frame's height (their ROIs: 0.98-1.18 after
# the read; a larger first ROI found a pose on more cut figures); a mask box ending within FIGURE_CUT_MARGIN of
# the look's bottom is a figure cut by it (the mask thins out at the edge)
FIGURE_ROI_HIP, FIGURE_ROI_SIDE, FIGURE_CUT_MARGIN = 0.48, 1.25, 0.03


def retry_box(box: Box, size: tuple[int, int], margin: float = RETRY_MARGIN) -> Box:
    """The person mask's box widened by ``margin`` of its height on every side, within the look."""
    pad = margin * (box[3] - box[1])
    return (max(0, int(box[0] - pad)), max(0, int(box[1] - pad)), min(size[0], int(math.ceil(box[2] + pad))),
            min(size[1], int(math.ceil(box[3] + pad))))  # fmt: skip


def figure_roi(figure: PersonFigure, size: tuple[int, int], hip: float = FIGURE_ROI_HIP, side: float = FIGURE_ROI_SIDE,
               cut_margin: float = FIGURE_CUT_MARGIN) -> Roi:  # fmt: skip
    """The landmark model's ROI for a standing figure read from the person mask: upright, centred on the
    midline at the hip centre of the 3:5 frame ``figure_frame`` fits to the figure (by the width when the mask
    reaches within ``cut_margin`` of the look's bottom), ``side`` x the frame's height. In the look's pixels;
    the ROI may run off the look (the landmark crop fills that with edge pixels)."""
    box = figure.box
    if box[3] >= size[1] * (1 - cut_margin) - 1:
        box = (box[0], box[1], box[2], size[1])
    _, top, _, frame_h = figure_frame(box, size, figure)
    return Roi(float(figure.midline), float(top + hip * frame_h), float(side * frame_h), 0.0)


@lru_cache(maxsize=4)
def load_blazepose(paths: PoseModelPaths, threads: int | None = None, min_detection: float = 0.5) -> BlazePose:
    """One loaded estimator per model files and options in a process (engines share it)."""
    return BlazePose(paths, threads=threads, min_detection=min_detection)


class PoseRegionFinder:
    name = "pose"

    def __init__(
        self,
        encoder: ClipEncoder,
        embed_texts: Callable[[list[str]], np.ndarray] | None = None,
        taxonomy: Taxonomy | None = None,
        estimator: BlazePose | None = None,
        *,
        min_visibility: float = 0.5,
        person_mask: bool = True,
        blank_background: bool = False,
        max_tilt: float = 60.0,
        min_span: float = 0.7,
        refine_reads: int = REFINE_READS,
        refine_tolerance: float = REFINE_TOLERANCE,
        retry: bool = False,
        figure_axis: bool = True,
        retry_margin: float = RETRY_MARGIN,
        pick_side: bool = True,
        pick_length: bool = True,
        figure_roi: bool = True,
    ):
        if estimator is None:
            raise ValueError("PoseRegionFinder needs a BlazePose estimator; use PoseRegionFinder.from_settings")
        self.encoder = encoder
        self.taxonomy = taxonomy or get_taxonomy()
        self.estimator = estimator
        self.min_visibility = min_visibility
        self.person_mask = person_mask
        self.blank_background = blank_background
        self.max_tilt = max_tilt  # degrees from upright beyond which a pose is not used
        self.min_span = min_span  # share of the person mask's height under which a pose is not used
        self.refine_reads, self.refine_tolerance = refine_reads, refine_tolerance  # BlazePose.landmarks
        self.retry = retry  # no usable pose in the whole look: detect again within the person mask's box
        self.retry_margin = retry_margin
        self.figure_axis = figure_axis  # the person-box slots hung from the mask's head top and midline
        self.pick_side = pick_side  # a layer worn on either side keeps the side that shows something (``pick_sides``)
        self.pick_length = pick_length  # extents ``unless_continuous`` left out where the garment runs on (``continuous``)
        self.figure_roi = figure_roi  # no usable pose from the detector: landmarks in the ROI from the person mask
        self.fallback = ClipBoxRegionFinder(encoder, embed_texts)
        unknown = sorted({name for layer in self.taxonomy.layers.values() for extent in layer.pose
                          for name in (*extent.points, *(n for group in (*extent.seen, *extent.framed, *extent.unless_continuous)
                                                         for n in group))
                          if name not in LANDMARK_INDEX})  # fmt: skip
        if unknown:
            raise ValueError(f"taxonomy pose extents name unknown landmarks {unknown}; known: {', '.join(LANDMARK_INDEX)}")

    @classmethod
    def from_settings(
        cls,
        encoder: ClipEncoder,
        embed_texts: Callable[[list[str]], np.ndarray] | None = None,
        settings: Settings | None = None,
        *,
        fetch: bool = True,
    ) -> PoseRegionFinder:
        """From the settings' model files; ``fetch=False``: the pinned wheel's files must already be
        cached (``looksync models fetch``), nothing is downloaded."""
        from looksync.settings import get_settings

        settings = settings or get_settings()
        paths = resolve_pose_models(
            settings.pose_models, settings.pose_models_dir, fetch=fetch,
            s3_endpoint_url=settings.s3_endpoint_url, s3_region=settings.s3_region,
        )  # fmt: skip
        estimator = load_blazepose(paths, settings.pose_threads, settings.pose_min_detection)
        return cls(encoder, embed_texts, estimator=estimator, min_visibility=settings.pose_min_visibility,
                   person_mask=settings.pose_person_mask, blank_background=settings.pose_blank_background,
                   max_tilt=settings.pose_max_tilt, min_span=settings.pose_min_span,
                   refine_reads=settings.pose_refine_reads, refine_tolerance=settings.pose_refine_tolerance,
                   retry=settings.pose_retry, figure_axis=settings.pose_figure_axis,
                   pick_side=settings.pose_pick_side, pick_length=settings.pose_pick_length,
                   figure_roi=settings.pose_figure_roi)  # fmt: skip

    # ---- placement ----------------------------------------------------------------------------

    def place(self, look: Image, layers: list[str]) -> Placement:
        look = look if look.mode == "RGB" else look.convert("RGB")  # an RGB look as it is: convert would copy it
        cache = LookCache(look)  # its reductions and pixels, made once for every model input and colour check
        placement = self._place(look, layers, cache)
        if self.blank_background and placement.boxes:
            start = time.perf_counter()
            placement.image = blank_background(look, self.estimator.person_mask(look, cache=cache))
            placement.timings_ms["region_blank"] = (time.perf_counter() - start) * 1000
        return placement

    def _place(self, look: Image, layers: list[str], cache: LookCache) -> Placement:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        detections = self.estimator.detect(look, cache=cache)
        pose, skipped = self._landmarks(look, detections[0], cache) if detections else (None, None)
        timings["region_pose"] = (time.perf_counter() - start) * 1000
        # the detector boxes the head (face and hair) even where its landmarks are not used
        face = _clip(tuple(detections[0].box), look.size) if detections else None
        box, box_source, figure = None, None, None
        if self.person_mask:
            start = time.perf_counter()
            figure = self.estimator.person_figure(look, cache=cache)
            box, box_source = (figure.box if figure else None), "the person mask"
            timings["region_person_mask"] = (time.perf_counter() - start) * 1000
        why = skipped or self._unusable(pose, look.size, box)
        if why is not None and self.retry and box is not None:
            start = time.perf_counter()
            within = retry_box(box, look.size, self.retry_margin)
            retried = self.estimator.detect(look, within=within)
            second, skipped = self._landmarks(look, retried[0]) if retried else (None, None)
            timings["region_pose_retry"] = (time.perf_counter() - start) * 1000
            if face is None and retried:
                face = _clip(tuple(retried[0].box), look.size)
            again = skipped or self._unusable(second, look.size, box)
            if again is None:
                pose, why = second, None
            else:
                why = f"{why}; read again within the person mask's box {list(within)}: {again}"
        note = None
        if why is not None and self.figure_roi and figure is not None:
            start = time.perf_counter()
            read = self.figure_pose(look, figure, cache)
            timings["region_pose_figure"] = (time.perf_counter() - start) * 1000
            again = self._unusable(read, look.size, box)
            if again is None:
                pose, note = read, f"regions_pose_figure: {why}; landmarks read in the ROI from the person mask's figure"
            else:
                why = f"{why}; read in the ROI from the person mask's figure: {again}"
        if pose is not None and (why is None or note is not None):
            placement = pose_placement(self.taxonomy, pose, look.size, layers, self.min_visibility,
                                       cache.pixels() if self.pick_length else None)  # fmt: skip
            self._pick_sides(placement, cache, figure, timings)
            placement.timings_ms, placement.face = timings, face
            if note is not None:
                placement.degraded.append(note)
            return placement

        if box is None and detections:
            box, box_source = detections[0].person_box(look.size), "the pose detector"
        if box is not None:
            placement = person_box_placement(self.taxonomy, box, look.size, layers, figure if self.figure_axis else None)
            self._pick_sides(placement, cache, figure, timings)
            placement.degraded.append(
                f"regions_person_box: {why}; layers placed at the taxonomy slots within the person's box from {box_source} {list(box)}"
            )
        else:
            placement = layout_placement(self.taxonomy, look.size, layers)
            placement.degraded.append(f"regions_layout: {why} and no person box; layers placed at the taxonomy slots of the whole look")
        placement.timings_ms, placement.face = timings, face
        return placement

    def _pick_sides(self, placement: Placement, cache: LookCache, figure: PersonFigure | None, timings: dict[str, float]) -> None:
        """``pick_sides`` where it is on and the person mask is there (timed as ``region_sides``)."""
        if self.pick_side and figure is not None and figure.mask is not None:
            start = time.perf_counter()
            if pick_sides(self.taxonomy, placement, cache.pixels(), figure.mask):
                timings["region_sides"] = (time.perf_counter() - start) * 1000

    def _landmarks(self, look: Image, detection: Detection, cache: LookCache | None = None) -> tuple[Pose | None, str | None]:
        """The landmarks in the detection's ROI, or why they are not read: the detector's own body axis (hip centre ->
        full-body point) further from upright than ``max_tilt``. The landmark model reads upright in that ROI and its
        further reads follow the body it finds, so such a pose comes out as tilted and is not used either: on 220
        generated training looks, all 41 whose detection was over 60 degrees gave an unusable pose (each costing 1-2
        landmark calls, 10-20 ms, before the figure's read; docs/evaluation.md, "The region step's wasted reads")."""
        tilt = abs(math.degrees(roi_from_detection(detection).rotation))
        if tilt > self.max_tilt:
            return None, f"the detector's pose tilted {tilt:.0f} degrees from upright (over {self.max_tilt:.0f}), landmarks not read"
        return self.estimator.landmarks(look, detection, refine=self.refine_reads, tolerance=self.refine_tolerance, cache=cache), None

    def figure_pose(self, look: Image, figure: PersonFigure, cache: LookCache | None = None) -> Pose:
        """The landmarks read in ``figure_roi`` (its detection: the mask's box, score 0, the ROI's hip centre and
        full-body point as keypoints)."""
        roi = figure_roi(figure, look.size)
        hips, body = (roi.cx, roi.cy), (roi.cx, roi.cy - roi.side / (2 * ROI_SCALE))
        detection = Detection(0.0, np.array(figure.box, dtype=float), np.array([hips, body, hips, hips], dtype=float))
        return self.estimator.landmarks(look, detection, refine=self.refine_reads, tolerance=self.refine_tolerance, roi=roi,
                                        cache=cache)  # fmt: skip

    def _unusable(self, pose: Pose | None, size: tuple[int, int], box: Box | None) -> str | None:
        """Why ``pose`` is not used for regions (None: it is)."""
        if pose is None:
            return "no person detected"
        if pose.score < MIN_POSE_SCORE:
            return f"no pose landmarks (presence {pose.score:.2f})"
        tilt = abs(math.degrees(pose.roi.rotation))
        if tilt > self.max_tilt:
            return f"pose tilted {tilt:.0f} degrees from upright (over {self.max_tilt:.0f})"
        span = pose_span(pose, size, box) if box is not None else None
        if span is not None and span < self.min_span:
            return f"the pose spans {span:.2f} of the person mask's height (under {self.min_span:.2f})"
        return None

    def find(self, look: Image, queries: dict[str, str]) -> dict[str, Region]:
        return find_placed(self, self.encoder, self.fallback, look.convert("RGB"), queries)


def blank_background(look: Image, mask: np.ndarray, fill: tuple[int, int, int] = (255, 255, 255)) -> Image:
    """The look over a plain ``fill`` where the person mask (probabilities on any grid, stretched to the look)
    says background, blended by the mask's probability so edges stay soft."""
    from PIL import Image as PILImage

    alpha = PILImage.fromarray(np.clip(np.asarray(mask, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8), "L")
    alpha = alpha.resize(look.size, PILImage.Resampling.BILINEAR)
    return PILImage.composite(look, PILImage.new("RGB", look.size, fill), alpha)


def _clip(box: tuple[float, float, float, float], size: tuple[int, int]) -> Box | None:
    width, height = size
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
    if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
        return None
    return x0, y0, x1, y1


def _missing(group: tuple[str, ...], pose: Pose, size: tuple[int, int], framed: bool = False) -> str:
    """Why no point of ``group`` counts as seen (``framed``: as in the look): out of frame, or in it but
    not visible enough."""
    width, height = size
    outside = [n for n in group if not (0 <= pose.point(n)[0] < width and 0 <= pose.point(n)[1] < height)]
    hidden = [] if framed else [f"{n} ({pose.visibility[LANDMARK_INDEX[n]]:.2f})" for n in group if n not in outside]
    parts = ([f"out of frame: {', '.join(outside)}"] if outside else []) + ([f"not visible: {', '.join(hidden)}"] if hidden else [])
    return " and ".join(parts)


def extent_box(extent: PoseExtent, pose: Pose, torso: float, midline: float, size: tuple[int, int]) -> Box | None:
    points = np.array([pose.point(name) for name in extent.points])
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    left, top, right, bottom = extent.pad
    if extent.outward and (x0 + x1) / 2 < midline:  # on the image's left of the body: away = leftwards
        left, right = right, left
    return _clip((x0 - left * torso, y0 - top * torso, x1 + right * torso, y1 + bottom * torso), size)


def segment_colour(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The look's colour along the segment a -> b: the median of small patches' mean colours along its middle."""
    height, width = pixels.shape[:2]
    t = np.linspace(0.3, 0.8, SEGMENT_SAMPLES)[:, None]
    points = ((1 - t) * a + t * b).astype(int)  # x, y of each patch's centre (in the look: truncation is int())
    xs, ys = points[:, 0], points[:, 1]
    if xs.min() >= SEGMENT_PATCH and ys.min() >= SEGMENT_PATCH and xs.max() < width - SEGMENT_PATCH and ys.max() < height - SEGMENT_PATCH:
        # every patch whole: one gather (the same means: sums of a few uint8 values are exact in any order)
        offsets = np.arange(-SEGMENT_PATCH, SEGMENT_PATCH + 1)
        patches = pixels[ys[:, None, None] + offsets[None, :, None], xs[:, None, None] + offsets[None, None, :]]
        return np.median(patches.reshape(len(xs), -1, pixels.shape[2]).mean(1), axis=0)
    colours = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        patch = pixels[max(0, y - SEGMENT_PATCH) : min(height, y + SEGMENT_PATCH + 1), max(0, x - SEGMENT_PATCH) : min(width, x + SEGMENT_PATCH + 1)]
        colours.append(patch.reshape(-1, pixels.shape[2]).mean(0))
    return np.median(colours, axis=0)


def continuous(pixels: np.ndarray, pose: Pose, chains: tuple[tuple[str, str, str], ...]) -> bool:
    """Whether along every chain (a, b, c), all three points in the look, the colour from a to b runs on from b to
    c (within ``CONTINUOUS_DISTANCE``): one garment past b."""
    height, width = pixels.shape[:2]
    for chain in chains:
        a, b, c = (pose.point(name) for name in chain)
        if not all(0 <= x < width and 0 <= y < height for x, y in (a, b, c)):
            return False
        if np.abs(segment_colour(pixels, a, b) - segment_colour(pixels, b, c)).sum() > CONTINUOUS_DISTANCE:
            return False
    return bool(chains)


def pose_placement(
    taxonomy: Taxonomy, pose: Pose, size: tuple[int, int], layers: list[str], min_visibility: float = 0.5,
    pixels: np.ndarray | None = None,
) -> Placement:
    """Each layer's extents whose ``seen`` and ``framed`` groups hold (an extent giving the same box as one
    before it is not repeated); a layer with none is absent, with the reasons. Layers without pose extents
    are left out (the CLIP box search takes them). With the look's ``pixels``, an extent ``unless_continuous``
    is left out where an extent before it was placed and the garment runs on along its chains."""
    width, height = size
    inside = (pose.points[:, 0] >= 0) & (pose.points[:, 0] < width) & (pose.points[:, 1] >= 0) & (pose.points[:, 1] < height)
    seen = inside & (pose.visibility >= min_visibility)
    shoulders = (pose.point("left_shoulder") + pose.point("right_shoulder")) / 2
    hips = (pose.point("left_hip") + pose.point("right_hip")) / 2
    torso = float(np.linalg.norm(shoulders - hips)) or pose.roi.side / 4
    midline = float((shoulders[0] + hips[0]) / 2)
    placement = Placement(boxes={}, source="pose")
    for layer in layers:
        extents = taxonomy.layers[layer].pose
        if not extents:
            continue
        boxes, reasons = [], []
        for extent in extents:
            if boxes and pixels is not None and extent.unless_continuous and continuous(pixels, pose, extent.unless_continuous):
                continue
            missing = [g for g in extent.seen if not any(seen[LANDMARK_INDEX[n]] for n in g)]
            unframed = [g for g in extent.framed if not any(inside[LANDMARK_INDEX[n]] for n in g)]
            if missing or unframed:
                reasons.extend(_missing(g, pose, size) for g in missing)
                reasons.extend(_missing(g, pose, size, framed=True) for g in unframed)
                continue
            box = extent_box(extent, pose, torso, midline, size)
            if box is None:
                reasons.append("its box falls outside the look")
                continue
            if box not in boxes:
                boxes.append(box)
        if boxes:
            placement.boxes[layer] = boxes
        else:
            placement.absent[layer] = "; ".join(dict.fromkeys(reasons))
    return placement


def side_evidence(pixels: np.ndarray, mask: np.ndarray | None, box: Box, background: np.ndarray) -> float:
    """The share of ``box``'s pixels outside the person mask (probabilities on any grid, stretched to the look; None:
    every pixel of the box) whose colour is unlike ``background``: something beside the body, such as a bag, where
    the mask holds only the person."""
    x0, y0, x1, y1 = box
    step = max(1, -(-max(x1 - x0, y1 - y0) // SIDE_SAMPLES))  # every step-th pixel: at most SIDE_SAMPLES a side
    ys, xs = np.arange(y0, y1, step), np.arange(x0, x1, step)
    # the grid by slicing (a view; the box lies within the look), not by np.ix_ (a gather of every pixel)
    grid = pixels[y0:y1:step, x0:x1:step]
    if mask is None:
        chosen = grid.reshape(-1, grid.shape[2])
    else:
        rows = np.minimum(ys * mask.shape[0] // pixels.shape[0], mask.shape[0] - 1)
        cols = np.minimum(xs * mask.shape[1] // pixels.shape[1], mask.shape[1] - 1)
        outside = mask[np.ix_(rows, cols)] < 0.5
        if not outside.any():
            return 0.0
        chosen = grid[outside]
    distance = np.abs(chosen.astype(np.int16) - background).sum(-1)
    return float((distance > SIDE_COLOUR_DISTANCE).mean())


def pick_sides(taxonomy: Taxonomy, placement: Placement, pixels: np.ndarray, mask: np.ndarray) -> int:
    """Each placed layer worn on either side (every pose extent ``outward``, more than one box) keeps only the side
    whose box shows clearly more beside the body than the other (``side_evidence``), or else, counting every pixel
    of the boxes (a bag the person mask took in), clearly more unlike the background; otherwise both stay, the box
    more unlike the background first: the main box, the one the detection heads read (where the bag was in one box
    and not the other, that box came first on 44 of 56 held-out-framing looks, against 33 in the taxonomy's order;
    docs/evaluation.md, "the likelier side first"). The
    background colour is the median of the look's (RGB ``pixels``) border pixels. Returns how many layers were
    looked at."""
    sided = [layer for layer, boxes in placement.boxes.items()
             if len(boxes) > 1 and all(extent.outward for extent in taxonomy.layers[layer].pose)]  # fmt: skip
    if not sided:
        return 0
    background = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0).astype(np.int16)
    for layer in sided:
        boxes = placement.boxes[layer]
        side = clear_side([side_evidence(pixels, mask, box, background) for box in boxes], SIDE_MIN_GAP)
        if side is None:
            whole = [side_evidence(pixels, None, box, background) for box in boxes]
            side = clear_side(whole, SIDE_WHOLE_MIN_GAP)
            if side is None:  # no clear side: both stay, the one more unlike the background first (the main box)
                placement.boxes[layer] = [boxes[i] for i in sorted(range(len(boxes)), key=lambda i: -whole[i])]
        if side is not None:
            placement.boxes[layer] = [boxes[side]]
    return len(sided)


def clear_side(evidence: list[float], gap: float, ratio: float = SIDE_MIN_RATIO) -> int | None:
    """The index of the largest share where it is at least ``gap`` more than the next and ``ratio`` times it."""
    order = sorted(range(len(evidence)), key=lambda i: -evidence[i])
    best, second = evidence[order[0]], evidence[order[1]]
    return order[0] if best - second >= gap and best >= ratio * second else None


def pose_span(pose: Pose, size: tuple[int, int], box: Box) -> float:
    """How much of the person box's height the pose's landmarks inside the look span (0 when none is
    inside). A standing figure's landmarks, eyes to heels, span about 0.9 of it; a read whose landmarks
    crowd into part of the body spans much less."""
    width, height = size
    ys = pose.points[(pose.points[:, 0] >= 0) & (pose.points[:, 0] < width) & (pose.points[:, 1] >= 0) & (pose.points[:, 1] < height), 1]
    return float(ys.max() - ys.min()) / max(1, box[3] - box[1]) if len(ys) else 0.0


def figure_frame(box: Box, size: tuple[int, int], figure: PersonFigure | None = None) -> tuple[float, float, float, float]:
    """The 3:5 canvas the taxonomy slots describe, fitted to a person's box: by its height, or, when
    the box runs off the bottom of the look (the figure is cut), by its width."""
    x0, y0, x1, y1 = box
    if figure is not None:
        y0 = figure.head_top
    if y1 >= size[1] - 1:
        frame_w = (x1 - x0) / LAYOUT_FIGURE_WIDTH
        frame_h = frame_w / LAYOUT_ASPECT
    else:
        frame_h = (y1 - y0) / (LAYOUT_FIGURE_BOTTOM - LAYOUT_FIGURE_TOP)
        frame_w = frame_h * LAYOUT_ASPECT
    top = y0 - LAYOUT_FIGURE_TOP * frame_h
    left = (figure.midline if figure is not None else (x0 + x1) / 2) - frame_w / 2
    return left, top, frame_w, frame_h


def person_box_placement(
    taxonomy: Taxonomy, box: Box, size: tuple[int, int], layers: list[str], figure: PersonFigure | None = None
) -> Placement:
    left, top, frame_w, frame_h = figure_frame(box, size, figure)
    placement = Placement(boxes={}, source="person_box")
    for layer in layers:
        boxes = []
        for fx0, fy0, fx1, fy1 in layer_slots(taxonomy, layer):
            raw = (left + fx0 * frame_w, top + fy0 * frame_h, left + fx1 * frame_w, top + fy1 * frame_h)
            clipped = _clip(raw, size)
            area = (raw[2] - raw[0]) * (raw[3] - raw[1])
            if clipped is not None and (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= MIN_SHARE_IN_LOOK * area:
                boxes.append(clipped)
        if boxes:
            placement.boxes[layer] = boxes
        elif layer_slots(taxonomy, layer):
            placement.absent[layer] = "out of frame: its slot in the person's box lies outside the look"
    return placement
