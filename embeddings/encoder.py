"""ClipEncoder: runs a loaded CLIP model on images and texts, returning L2-normalised float32 rows.

Build one with ``embeddings.load_encoder`` (or ``load_encoder_from_settings``); this module only runs it.
Images are decoded and preprocessed one batch at a time, so memory stays bounded for long inputs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

from embeddings.errors import ImageError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL.Image import Image

ImageInput = Union["Image", bytes, str, Path]  # a decoded image, encoded bytes, or a local file path
T = TypeVar("T")


def open_image(item: ImageInput, index: int) -> Image:
    """Decode one input to an RGB PIL image, or ImageError naming its index and the cause."""
    from PIL import Image

    try:
        if isinstance(item, Image.Image):
            image = item
        elif isinstance(item, (bytes, bytearray, memoryview)):
            image = Image.open(io.BytesIO(bytes(item)))
        elif isinstance(item, (str, Path)):
            image = Image.open(item)
        else:
            raise ImageError(index, f"unsupported input type {type(item).__name__}")
        image.load()  # decode now: a truncated file fails here, with its index, not inside a batch
        return image if image.mode == "RGB" else image.convert("RGB")
    except ImageError:
        raise
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        raise ImageError(index, f"cannot decode: {type(exc).__name__}: {exc}") from exc


def _chunks(items: Sequence[T], size: int) -> Iterator[tuple[int, Sequence[T]]]:
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


class ClipEncoder:
    """A CLIP model ready for inference; ``model_id`` names architecture and weights (``LookSync-Tiny@3fa2c1d9e0b1``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable[[Image], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        *,
        name: str,
        model_id: str,
        device: str,
        dim: int,
        batch_size: int = 32,
    ):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.model_id = model_id
        self.device = device
        self.dim = dim
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"ClipEncoder({self.model_id}, dim={self.dim}, device={self.device})"

    def _autocast(self) -> Any:
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def _run(self, encode: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode(), self._autocast():
            features = encode(batch.to(self.device))
        # normalise in float32: fp16 rounding under autocast would leave norms off by ~1e-3
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    def _embed_pixels(self, pixels: list[torch.Tensor]) -> np.ndarray:
        import torch

        return self._run(self.model.encode_image, torch.stack(pixels))

    def _empty(self) -> np.ndarray:
        import numpy as np

        return np.zeros((0, self.dim), dtype=np.float32)

    def _concat(self, parts: list[np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.concatenate(parts).astype(np.float32, copy=False) if parts else self._empty()

    def _pixels(self, item: ImageInput, index: int) -> torch.Tensor:
        image = open_image(item, index)
        try:
            return self.preprocess(image)
        except Exception as exc:  # torchvision transforms on odd sizes/modes
            raise ImageError(index, f"cannot preprocess: {type(exc).__name__}: {exc}") from exc

    def encode_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        """n x dim float32, unit norm; ImageError naming the index of the first undecodable image."""
        parts = []
        for start, chunk in _chunks(images, batch_size or self.batch_size):
            parts.append(self._embed_pixels([self._pixels(item, start + i) for i, item in enumerate(chunk)]))
        return self._concat(parts)

    def encode_images_safe(
        self, items: Sequence[tuple[str, ImageInput]], batch_size: int | None = None
    ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
        """Embed what decodes: (ids embedded, their vectors in that order, failures as (id, reason))."""
        ids: list[str] = []
        parts: list[np.ndarray] = []
        failures: list[tuple[str, str]] = []
        for start, chunk in _chunks(items, batch_size or self.batch_size):
            pixels = []
            for i, (item_id, item) in enumerate(chunk):
                try:
                    pixels.append(self._pixels(item, start + i))
                except ImageError as exc:
                    failures.append((item_id, exc.reason))
                    continue
                ids.append(item_id)
            if pixels:
                parts.append(self._embed_pixels(pixels))
        return ids, self._concat(parts), failures

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """n x dim float32, unit norm."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings; wrap a single text in a list")
        parts = [
            self._run(self.model.encode_text, self.tokenizer(list(chunk))) for _, chunk in _chunks(texts, batch_size)
        ]
        return self._concat(parts)
