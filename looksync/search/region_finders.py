"""The region finders by name: the registry the engine, the evaluation harness and settings use.

Its own module above ``regions`` (layout, CLIP boxes) and ``pose`` (BlazePose), so neither imports the
other: a finder is registered here, once, with a factory ``(encoder, embed_texts, settings) -> finder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from looksync.search.regions import ClipBoxRegionFinder, LayoutRegionFinder, RegionFinder

if TYPE_CHECKING:
    from embeddings import ClipEncoder
    from looksync.settings import Settings


def _pose_finder(encoder: ClipEncoder, embed_texts=None, settings: Settings | None = None) -> RegionFinder:
    from looksync.search.pose import PoseRegionFinder

    return PoseRegionFinder.from_settings(encoder, embed_texts, settings)


# name -> factory(encoder, embed_texts, settings)
REGION_FINDERS: dict[str, Callable[..., RegionFinder]] = {
    "layout": lambda encoder, embed_texts=None, settings=None: LayoutRegionFinder(encoder, embed_texts),
    "clip_boxes": lambda encoder, embed_texts=None, settings=None: ClipBoxRegionFinder(encoder, embed_texts),
    "pose": _pose_finder,
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
