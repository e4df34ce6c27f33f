"""Errors of the embeddings package; each message names the value that caused it."""

from __future__ import annotations


class EmbeddingsError(Exception):
    """Base class: anything that goes wrong while building or running a CLIP encoder."""


class UnknownModel(EmbeddingsError, LookupError):
    """An architecture name that neither LookSync's nor open_clip's registry defines."""


class WeightsError(EmbeddingsError):
    """A weights source cannot be resolved, fetched, verified or loaded."""


class ImageError(EmbeddingsError, ValueError):
    """An input image cannot be read or decoded; the message names its position in the batch."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"image {index}: {reason}")
        self.index = index
        self.reason = reason
