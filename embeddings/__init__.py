"""CLIP model code for LookSync: model specs (architecture + weights source), encoders, zero-shot prompts.

Importing this package is cheap: torch, open_clip and PIL are imported only when a model is loaded,
so Airflow DAG files can import it at parse time. Names below resolve lazily on first use.

    from embeddings import load_encoder
    encoder = load_encoder("LookSync-Tiny", "checkpoints/tiny.pt")   # or a pretrained tag, s3://..., random:<seed>
    vectors = encoder.encode_images([image_bytes, "look.jpg"])       # n x dim float32, unit norm
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from embeddings.errors import EmbeddingsError, ImageError, UnknownModel, WeightsError
from embeddings.registry import list_models, model_config

_LAZY = {
    "ClipEncoder": "embeddings.encoder",
    "load_encoder": "embeddings.factory",
    "load_encoder_from_settings": "embeddings.factory",
    "resolve_weights_from_settings": "embeddings.factory",
    "save_random_checkpoint": "embeddings.factory",
    "ZeroShot": "embeddings.zeroshot",
}

__all__ = [
    "EmbeddingsError",
    "ImageError",
    "UnknownModel",
    "WeightsError",
    "list_models",
    "model_config",
    "ClipEncoder",
    "load_encoder",
    "load_encoder_from_settings",
    "resolve_weights_from_settings",
    "save_random_checkpoint",
    "ZeroShot",
]

if TYPE_CHECKING:
    from embeddings.encoder import ClipEncoder
    from embeddings.factory import (
        load_encoder,
        load_encoder_from_settings,
        resolve_weights_from_settings,
        save_random_checkpoint,
    )
    from embeddings.zeroshot import ZeroShot


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embeddings' has no attribute {name!r}")
