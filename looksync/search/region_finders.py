"""The region finders by name: the registry the engine, the evaluation harness and settings use.

Its own module above ``regions`` (layout, CLIP boxes) and ``pose`` (BlazePose), so neither imports the
other: a finder is registered here, once, with a factory ``(encoder, embed_texts, settings) -> finder``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from looksync.search.regions import ClipBoxRegionFinder, LayoutRegionFinder, Placement, RegionFinder

if TYPE_CHECKING:
    from embeddings import ClipEncoder
    from looksync.settings import Settings


def _pose_finder(encoder: ClipEncoder, embed_texts=None, settings: Settings | None = None) -> RegionFinder:
    from looksync.search.pose import PoseRegionFinder

    return PoseRegionFinder.from_settings(encoder, embed_texts, settings)


log = logging.getLogger(__name__)


class LayoutFallbackFinder(LayoutRegionFinder):
    """``layout`` standing in for ``pose`` (``auto``) when the pose model files are not at hand: the
    same slots, with the reason recorded in every placement's ``degraded`` notes."""

    def __init__(self, encoder: ClipEncoder, embed_texts: Callable[[list[str]], np.ndarray] | None = None,
                 reason: str = ""):  # fmt: skip
        super().__init__(encoder, embed_texts)
        self.reason = reason

    def place(self, look, layers: list[str]) -> Placement:
        placement = super().place(look, layers)
        placement.degraded.append(f"regions_layout: pose model files not available ({self.reason[:200]}); "
                                  "layers placed at the taxonomy slots; run `looksync models fetch`")  # fmt: skip
        return placement


def _auto_finder(encoder: ClipEncoder, embed_texts=None, settings: Settings | None = None) -> RegionFinder:
    """``pose`` when its model files are already at hand (checked, never downloaded here), else
    ``layout`` with the reason recorded in each response's ``degraded`` notes."""
    from looksync.search.pose.models import PoseModelError

    try:
        from looksync.search.pose import PoseRegionFinder

        return PoseRegionFinder.from_settings(encoder, embed_texts, settings, fetch=False)
    except (PoseModelError, ImportError) as exc:
        log.warning("region finder auto: pose unavailable, using layout: %s", exc)
        return LayoutFallbackFinder(encoder, embed_texts, reason=str(exc))


# name -> factory(encoder, embed_texts, settings)
REGION_FINDERS: dict[str, Callable[..., RegionFinder]] = {
    "layout": lambda encoder, embed_texts=None, settings=None: LayoutRegionFinder(encoder, embed_texts),
    "clip_boxes": lambda encoder, embed_texts=None, settings=None: ClipBoxRegionFinder(encoder, embed_texts),
    "pose": _pose_finder,
    "auto": _auto_finder,  # pose when its model files are cached, else layout (recorded)
}


def make_region_finder(
    name: str,
    encoder: ClipEncoder,
    embed_texts: Callable[[list[str]], np.ndarray] | None = None,
    settings: Settings | None = None,
) -> RegionFinder:
    try:
        factory = REGION_FINDERS[name]
    except KeyError:
        raise ValueError(f"region finder {name!r} is not registered; known: {', '.join(sorted(REGION_FINDERS))}") from None
    return factory(encoder, embed_texts, settings=settings)
