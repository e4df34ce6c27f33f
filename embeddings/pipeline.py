"""The batched image pipeline: inputs -> model-ready pixel batches, prepared in parallel ahead of the model.

Stages, as in clip-retrieval, with bounded buffers between them:

    reader (iterates the (id, input) items, lazily)
      -> preprocess workers (threads: read file, decode, resize, crop, normalise; one item each)
      -> batcher (collects results in input order into batches of ``batch_size`` good images)
      -> queue of at most ``prefetch`` batches
      -> model (the caller's thread: ``ClipEncoder`` runs the forward pass)

so decoding the next batches overlaps with inference on this one. A broken image becomes a failure
(id + reason) in the batch it would have joined; it never stops the run.

Preprocessing reproduces the model's own open_clip transform exactly (same vectors as one-by-one
``preprocess(image)``), but without torch: the PIL steps of the transform (resize, crop, RGB) run as
they are, and ToTensor + Normalize are redone in numpy float32, which gives identical values. That
matters on CPU: a torch op called from a worker thread uses torch's intra-op pool, whose threads the
model needs, and on 2 cores that made one image's ToTensor + Normalize cost ~30 ms instead of 0.4 ms.

Workers are threads, not processes: PIL releases the GIL while decoding and resizing and numpy while
normalising, and threads hand back arrays without pickling them (``bench/bench_embeddings.py``
measures both). ``draft=True`` lets libjpeg decode JPEGs at a reduced scale (1/2, 1/4, 1/8) that is
still at least the model's input size; it is faster but changes pixels slightly, so it is off by default.

No torch at import time: this module imports only numpy and PIL, inside functions.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from embeddings.errors import ImageError

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

log = logging.getLogger(__name__)

ImageInput = Union["Image", bytes, str, Path]  # a decoded image, encoded bytes, or a local file path


def default_workers() -> int:
    """Preprocess threads when none are configured: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def open_image(item: ImageInput, index: int, draft_size: tuple[int, int] | None = None) -> Image:
    """Decode one input to an RGB PIL image as a viewer sees it (``looksync.catalog.pixels.to_rgb``), or
    ImageError naming its index and the cause.

    ``draft_size``: let JPEG decoding scale down by 1/2..1/8 while staying at least this size."""
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
        if draft_size is not None and image is not item:  # never change a caller's image object
            image.draft(None, draft_size)  # a no-op for formats other than JPEG
        image.load()  # decode now: a truncated file fails here, with its index, not inside a batch
        from looksync.catalog.pixels import to_rgb  # 16-bit, alpha on white, CMYK, EXIF, first frame

        return to_rgb(image)
    except ImageError:
        raise
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        raise ImageError(index, f"cannot decode: {type(exc).__name__}: {exc}") from exc


class PixelPlan:
    """How one input becomes the model's float32 C x H x W input: the PIL steps of the model's
    transform, then ToTensor + Normalize in numpy. A transform of another shape is run as it is
    (correct, but it calls torch per image)."""

    def __init__(self, preprocess: Callable[[Image], Any], *, draft: bool = False):
        self.preprocess = preprocess
        self.pil_steps, self.mean, self.std = _split_transform(preprocess)
        size = _input_size(preprocess)
        self.draft_size = (size, size) if draft and size else None

    @property
    def numpy_tail(self) -> bool:
        return self.mean is not None

    def __call__(self, item: ImageInput, index: int) -> np.ndarray:
        image = open_image(item, index, self.draft_size)
        try:
            if not self.numpy_tail:
                return self.preprocess(image).numpy()
            for step in self.pil_steps:
                image = step(image)
            return self._to_normalised_chw(image)
        except Exception as exc:  # transforms on odd sizes/modes
            raise ImageError(index, f"cannot preprocess: {type(exc).__name__}: {exc}") from exc

    def _to_normalised_chw(self, image: Image) -> np.ndarray:
        import numpy as np

        # the float32 operations of torchvision's to_tensor (x / 255) and normalize ((x - mean) / std), in that order
        pixels = np.asarray(image, dtype=np.float32)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image after the transform, got array shape {pixels.shape}")
        pixels /= np.float32(255)
        pixels -= self.mean
        pixels /= self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _split_transform(preprocess: Any) -> tuple[list[Callable[[Any], Any]], Any, Any]:
    """(PIL steps, mean, std) for a Compose ending in ToTensor, Normalize; ([], None, None) otherwise."""
    import numpy as np

    steps = list(getattr(preprocess, "transforms", []) or [])
    if len(steps) < 2:
        return [], None, None
    to_tensor, normalize = steps[-2], steps[-1]
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or type(normalize).__name__ != "Normalize":
        return [], None, None
    mean = np.asarray(normalize.mean, dtype=np.float32).reshape(1, 1, -1)
    std = np.asarray(normalize.std, dtype=np.float32).reshape(1, 1, -1)
    if mean.size != 3 or std.size != 3:
        return [], None, None
    return steps[:-2], mean, std


def _input_size(preprocess: Any) -> int | None:
    """The model's square input side, read from the transform's crop or resize step."""
    for step in getattr(preprocess, "transforms", []) or []:
        size = getattr(step, "size", None)
        if isinstance(size, int):
            return size
        if isinstance(size, (tuple, list)) and size and all(isinstance(s, int) for s in size):
            return max(size)
    return None


@dataclass
class PixelBatch:
    """Up to ``batch_size`` prepared images (in input order) and the failures met since the last batch."""

    ids: list[str]
    indices: list[int]
    pixels: np.ndarray | None  # n x C x H x W float32, None when every item since the last batch failed
    failures: list[tuple[int, str, str]]  # (input index, id, reason)


@dataclass
class PipelineStats:
    """Stage timings of one run, seconds: where a slow run spends its time."""

    images: int = 0
    failed: int = 0
    preprocess_s: float = 0.0  # summed over workers
    model_s: float = 0.0
    model_wait_s: float = 0.0  # the model stage waiting for a batch: preprocessing is the bottleneck
    wall_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def images_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s else 0.0


class _Done:
    pass


class _Crashed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class ImagePipeline:
    """Prepares (id, input) items into pixel batches with ``workers`` threads, ``prefetch`` batches ahead.

    ``workers=0`` prepares inline in the caller's thread (no threads at all)."""

    def __init__(
        self,
        plan: PixelPlan,
        *,
        batch_size: int = 32,
        workers: int | None = None,
        prefetch: int = 2,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.plan = plan
        self.batch_size = batch_size
        self.workers = default_workers() if workers is None else workers
        self.prefetch = prefetch
        self.stats = PipelineStats()

    def batches(self, items: Iterable[tuple[str, ImageInput]]) -> Iterator[PixelBatch]:
        """Pixel batches in input order; the last one may be short or hold only failures."""
        self.stats = PipelineStats()
        if self.workers == 0:
            yield from self._batches_inline(items)
        else:
            yield from self._batches_threaded(items)

    def _prepare(self, item: ImageInput, index: int) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.plan(item, index)
        finally:
            self.stats.preprocess_s += time.perf_counter() - t0  # float += under the GIL: a rare lost update is fine

    def _batches_inline(self, items: Iterable[tuple[str, ImageInput]]) -> Iterator[PixelBatch]:
        batcher = _Batcher(self.batch_size, self.stats)
        for index, (item_id, item) in enumerate(items):
            try:
                batch = batcher.add(index, item_id, self._prepare(item, index))
            except ImageError as exc:
                batch = batcher.fail(index, item_id, exc.reason)
            if batch is not None:
                yield batch
        if (batch := batcher.flush()) is not None:
            yield batch

    def _batches_threaded(self, items: Iterable[tuple[str, ImageInput]]) -> Iterator[PixelBatch]:
        out: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(items, out, stop), name="clip-batcher", daemon=True)
        producer.start()
        try:
            while True:
                t0 = time.perf_counter()
                batch = out.get()
                self.stats.model_wait_s += time.perf_counter() - t0
                if isinstance(batch, _Done):
                    return
                if isinstance(batch, _Crashed):
                    raise batch.exc
                yield batch
        finally:
            stop.set()  # the consumer stopped early (an exception, a break): unblock and end the producer
            while producer.is_alive():
                try:
                    out.get(timeout=0.05)
                except queue.Empty:
                    pass
            producer.join()

    def _produce(self, items: Iterable[tuple[str, ImageInput]], out: queue.Queue[Any], stop: threading.Event) -> None:
        def put(value: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(value, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            window = (self.prefetch + 1) * self.batch_size  # items submitted but not yet batched
            batcher = _Batcher(self.batch_size, self.stats)
            pending: deque[tuple[int, str, Future[Any]]] = deque()
            source = enumerate(items)
            with ThreadPoolExecutor(self.workers, thread_name_prefix="clip-preprocess") as pool:
                try:
                    exhausted = False
                    while True:
                        while not exhausted and len(pending) < window and not stop.is_set():
                            try:
                                index, (item_id, item) = next(source)
                            except StopIteration:
                                exhausted = True
                                break
                            pending.append((index, item_id, pool.submit(self._prepare, item, index)))
                        if not pending or stop.is_set():
                            break
                        index, item_id, future = pending.popleft()
                        try:
                            batch = batcher.add(index, item_id, future.result())
                        except ImageError as exc:
                            batch = batcher.fail(index, item_id, exc.reason)
                        if batch is not None and not put(batch):
                            return
                    if not stop.is_set() and (batch := batcher.flush()) is not None and not put(batch):
                        return
                finally:
                    for _, _, future in pending:
                        future.cancel()
            put(_Done())
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Crashed(exc))


class _Batcher:
    def __init__(self, batch_size: int, stats: PipelineStats):
        self.batch_size = batch_size
        self.stats = stats
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.indices: list[int] = []
        self.arrays: list[np.ndarray] = []
        self.failures: list[tuple[int, str, str]] = []

    def add(self, index: int, item_id: str, pixels: np.ndarray) -> PixelBatch | None:
        self.ids.append(item_id)
        self.indices.append(index)
        self.arrays.append(pixels)
        self.stats.images += 1
        return self.flush() if len(self.arrays) >= self.batch_size else None

    def fail(self, index: int, item_id: str, reason: str) -> PixelBatch | None:
        self.failures.append((index, item_id, reason))
        self.stats.failed += 1
        return None

    def flush(self) -> PixelBatch | None:
        import numpy as np

        if not self.arrays and not self.failures:
            return None
        pixels = np.stack(self.arrays) if self.arrays else None
        batch = PixelBatch(self.ids, self.indices, pixels, self.failures)
        self._reset()
        return batch
