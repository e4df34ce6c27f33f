"""ClipEncoder: runs a loaded CLIP model on images and texts, returning L2-normalised float32 rows.

Build one with ``embeddings.load_encoder`` (or ``load_encoder_from_settings``); this module only runs it.
Images go through ``embeddings.pipeline``: decoded and preprocessed by worker threads a few batches
ahead of the model, so memory stays bounded for long inputs and preprocessing overlaps inference.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from embeddings.errors import ImageError
from embeddings.pipeline import ImageInput, ImagePipeline, PipelineStats, PixelPlan, open_image

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL.Image import Image

__all__ = ["ClipEncoder", "ImageInput", "open_image"]

T = TypeVar("T")


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
        workers: int | None = None,
        draft_decode: bool = False,
    ):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.model_id = model_id
        self.device = device
        self.dim = dim
        self.batch_size = batch_size
        self.workers = workers  # preprocess threads; None: one per core (embeddings.pipeline.default_workers)
        self.draft_decode = draft_decode  # JPEGs decoded at reduced scale: faster, pixels differ slightly
        self._plan = PixelPlan(preprocess, draft=draft_decode)
        self.last_stats = PipelineStats()  # stage timings of the latest image call
        # On a CPU one forward already uses every intra-op thread torch has; two at once (gunicorn threads
        # serving two requests) only fight over the cores and both finish later. So a CPU encoder runs one
        # forward at a time and the others queue; a GPU runs them as they come.
        self._forward_lock: Any = nullcontext() if device.startswith("cuda") else threading.Lock()
        self.forward_wait_s = 0.0  # total time forwards spent queued behind the lock (a load signal)
        # what runs the image and text towers (``encode_image``, ``encode_text``): the torch model, or
        # ONNX Runtime sessions set by ``embeddings.runtime.apply_runtime``
        self.towers: Any = model
        self.runtime = "torch"
        self.runtime_towers: dict[str, Any] = {}
        self.runtime_notes: list[str] = []  # why a tower runs on less than the configured runtime

    def __repr__(self) -> str:
        return f"ClipEncoder({self.model_id}, dim={self.dim}, device={self.device}, runtime={self.runtime})"

    def _autocast(self) -> Any:
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def _run(self, encode: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        queued = time.perf_counter()
        with self._forward_lock:
            self.forward_wait_s += time.perf_counter() - queued
            with torch.inference_mode(), self._autocast():
                features = encode(batch.to(self.device))
        # normalise in float32: fp16 rounding under autocast would leave norms off by ~1e-3
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    def _empty(self) -> np.ndarray:
        import numpy as np

        return np.zeros((0, self.dim), dtype=np.float32)

    def _concat(self, parts: list[np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.concatenate(parts).astype(np.float32, copy=False) if parts else self._empty()

    def pipeline(self, batch_size: int | None = None, workers: int | None = None) -> ImagePipeline:
        """The image pipeline this encoder runs (its preprocessing, batch size and worker count)."""
        return ImagePipeline(
            self._plan,
            batch_size=batch_size or self.batch_size,
            workers=self.workers if workers is None else workers,
        )

    def _embed_batches(
        self, items: Sequence[tuple[str, ImageInput]], batch_size: int | None, *, strict: bool
    ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
        import torch

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        # one image (a query, a look) gains nothing from threads; a batch to embed does
        pipeline = self.pipeline(batch_size, workers=0 if len(items) <= 1 else None)
        ids: list[str] = []
        parts: list[np.ndarray] = []
        failures: list[tuple[str, str]] = []
        t_start = time.perf_counter()
        with closing(pipeline.batches(items)) as batches:  # closing: an early raise stops the workers now
            for batch in batches:
                if strict and batch.failures:
                    index, _, reason = batch.failures[0]
                    raise ImageError(index, reason)
                failures.extend((item_id, reason) for _, item_id, reason in batch.failures)
                if batch.pixels is not None:
                    t0 = time.perf_counter()
                    parts.append(self._run(self.towers.encode_image, torch.from_numpy(batch.pixels)))
                    pipeline.stats.model_s += time.perf_counter() - t0
                    ids.extend(batch.ids)
        pipeline.stats.wall_s = time.perf_counter() - t_start
        self.last_stats = pipeline.stats
        return ids, self._concat(parts), failures

    def encode_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        """n x dim float32, unit norm; ImageError naming the index of the first undecodable image."""
        _, vectors, _ = self._embed_batches(list(enumerate(images)), batch_size, strict=True)  # type: ignore[arg-type]
        return vectors

    def encode_images_safe(
        self, items: Sequence[tuple[str, ImageInput]], batch_size: int | None = None
    ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
        """Embed what decodes: (ids embedded, their vectors in that order, failures as (id, reason)).

        Preprocessing runs in worker threads ahead of the model (``embeddings.pipeline``); a broken
        image is reported and the rest of its batch embedded."""
        return self._embed_batches(items, batch_size, strict=False)

    def prepare_image(self, image: ImageInput, index: int = 0) -> np.ndarray:
        """One image as the model takes it (C x H x W float32), prepared exactly as the batched pipeline
        prepares it; ImageError naming ``index`` when it cannot be. With ``encode_prepared`` this lets a
        caller that already holds the decoded image (ingestion's fetch) prepare it in its own threads."""
        return self._plan(image, index)

    def encode_prepared(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """n x dim float32, unit norm, of images from ``prepare_image``: the forward pass alone."""
        import numpy as np
        import torch

        if not len(pixels):
            return self._empty()
        return self._run(self.towers.encode_image, torch.from_numpy(np.stack(pixels)))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """n x dim float32, unit norm."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings; wrap a single text in a list")
        parts = [
            self._run(self.towers.encode_text, self.tokenizer(list(chunk))) for _, chunk in _chunks(texts, batch_size)
        ]
        return self._concat(parts)
