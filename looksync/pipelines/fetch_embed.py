"""Fetch and embed in one overlapped pass, each image decoded once (ingestion in one process).

The ingest stages fetch and embed are two DAG tasks, which may run on two workers and hand the images
over in the run workspace. In one process (``ingest_feed``: the CLI, the demo, the benchmarks)
``fetch_and_embed`` runs both at once:

    feed order -> fetcher threads: guarded fetch + header checks (``looksync.catalog.images``)
                   -> one decode (``decode_visible``: refused when blank) -> thumbnail + the model's input
               -> results in feed order, at most ``window`` ahead -> batches -> the model (caller's thread)

so the fetchers work on the next images while the model embeds this batch, and an image is decoded
once where it was decoded three times (the blank check, the thumbnail, the embedding). An image that
several products name is fetched for each of them but checked, thumbnailed and embedded once. What
is held at a time is bounded: ``window`` prepared model inputs, never the decoded images of a feed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from looksync.catalog.images import FetchError, FetchPolicy, PinnedPools, decode_visible, fetch_image
from looksync.catalog.thumbnails import ThumbnailRun, ThumbnailStore

if TYPE_CHECKING:
    import numpy as np

    from embeddings import ClipEncoder

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class FetchEmbedResult:
    """What one ``fetch_and_embed`` call did, as the fetch and embed stages report it."""

    outcomes: list[str | FetchError]  # per input URL, in order: its image hash, or why it was refused
    thumbnails: ThumbnailRun
    ids: list[str]  # image hashes embedded now, in the order of ``vectors``
    vectors: np.ndarray
    failures: list[tuple[str, str]]  # (image hash, why) that the model could not take
    model_s: float = 0.0  # the caller's thread in forward passes
    wall_s: float = 0.0


@dataclass
class _Item:
    image_hash: str | None = None
    error: FetchError | None = None
    thumbnail: bool | str | None = None  # written / already stored / why not; None: not this input's to make
    pixels: Any = None  # the model's input, when this input is the first with its image and it needs a vector
    failure: str | None = None  # why the model cannot take the image


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results in input order, at most ``window`` submitted
    and not yet taken. A consumer that stops early cancels what has not started."""
    window = max(window, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch-embed")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def fetch_and_embed(
    urls: list[str],
    policy: FetchPolicy,
    encoder: ClipEncoder,
    thumbnails: ThumbnailStore,
    *,
    known: set[str] | None = None,
    keep: Callable[[str, bytes], None] | None = None,
    concurrency: int = 8,
    batch_size: int | None = None,
) -> FetchEmbedResult:
    """Fetch ``urls`` under ``policy`` (the blank check included, whatever ``policy.refuse_blank`` says),
    store each new image's thumbnail, and embed each distinct image whose hash is not in ``known``.

    ``keep(image_hash, data)`` is called once per distinct image (the caller stores the bytes). A refusal
    is an outcome, never raised; a thumbnail that cannot be made or stored is recorded in ``thumbnails``
    (the product goes on without one); an image the model cannot take is a failure. Anything else (the
    workspace cannot be written) raises."""
    from embeddings.errors import ImageError

    known = known or set()
    batch_size = batch_size or encoder.batch_size
    check = replace(policy, refuse_blank=False)  # the blank check is the one decode below
    pools = PinnedPools(maxsize=concurrency)
    claimed: set[str] = set()
    lock = threading.Lock()
    started = time.perf_counter()

    def one(url: str) -> _Item:
        try:
            image = fetch_image(url, check, pools)
            rgb = decode_visible(image.data, image.url)
        except FetchError as err:
            return _Item(error=err)
        image_hash = image.sha256
        with lock:
            first = image_hash not in claimed
            claimed.add(image_hash)
        if not first:  # the same image as another input's: checked, thumbnailed and embedded there
            return _Item(image_hash)
        if keep is not None:
            keep(image_hash, image.data)
        item = _Item(image_hash)
        try:
            item.thumbnail = thumbnails.ensure_decoded(image_hash, rgb)
        except Exception as exc:  # a thumbnail is optional (see ThumbnailStore.ensure_many)
            item.thumbnail = f"{exc.__class__.__name__}: {exc}"
        if image_hash not in known:
            try:  # draft decoding (reduced-scale JPEG) works on the bytes: the encoder decodes those itself
                item.pixels = encoder.prepare_image(image.data if encoder.draft_decode else rgb)
            except ImageError as exc:
                item.failure = exc.reason
        return item

    outcomes: list[str | FetchError] = []
    run = ThumbnailRun()
    ids: list[str] = []
    parts: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    batch: list[tuple[str, Any]] = []
    model_s = 0.0

    def embed() -> None:
        nonlocal model_s
        t0 = time.perf_counter()
        parts.append(encoder.encode_prepared([pixels for _, pixels in batch]))
        model_s += time.perf_counter() - t0
        ids.extend(image_hash for image_hash, _ in batch)
        batch.clear()

    try:
        with closing(ordered_map(one, urls, concurrency, window=concurrency + 2 * batch_size)) as results:
            for item in results:
                outcomes.append(item.error or item.image_hash)
                if item.thumbnail is True:
                    run.written.append(item.image_hash)
                elif item.thumbnail is False:
                    run.existing.append(item.image_hash)
                elif isinstance(item.thumbnail, str):
                    run.failed[item.image_hash] = item.thumbnail
                if item.failure is not None:
                    failures.append((item.image_hash, item.failure))
                elif item.pixels is not None:
                    batch.append((item.image_hash, item.pixels))
                    if len(batch) >= batch_size:
                        embed()
            if batch:
                embed()
    finally:
        pools.close()
    import numpy as np

    vectors = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)
    return FetchEmbedResult(outcomes, run, ids, vectors, failures, model_s, time.perf_counter() - started)
