"""The pose region finder: BlazePose's model files (``models``), its two-stage LiteRT runner
(``blazepose``) and the layer boxes placed from its keypoints (``regions``)."""

from looksync.search.pose.blazepose import LANDMARKS, BlazePose, Detection, Pose
from looksync.search.pose.models import PoseModelError, PoseModelPaths, resolve_pose_models
from looksync.search.pose.regions import PoseRegionFinder, load_blazepose, pose_placement

__all__ = [
    "LANDMARKS", "BlazePose", "Detection", "Pose", "PoseModelError", "PoseModelPaths", "PoseRegionFinder",
    "load_blazepose", "pose_placement", "resolve_pose_models",
]  # fmt: skip
