"""The batched image pipeline: exact preprocessing, order, per-item failures, bounded read-ahead that
overlaps the model, clean shutdown, and opt-in draft decoding."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embeddings import ClipEncoder, load_encoder
from embeddings.pipeline import ImagePipeline, PixelPlan, open_image

from .factories import encoded, noise_image, noise_images, smooth_image

TINY = "LookSync-Tiny"


def _reference_vectors(encoder: ClipEncoder, images: list[Image.Image]) -> np.ndarray:
    """One image at a time through open_clip's own transform and torch: what the pipeline must reproduce."""
    return np.concatenate([encoder._run(encoder.model.encode_image, encoder.preprocess(im)[None]) for im in images])


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("clip-batcher", "clip-preprocess"))]


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_pixels_are_bit_identical_to_open_clips_transform(resize_mode: str):
    from open_clip import image_transform

    transform = image_transform(64, is_train=False, resize_mode=resize_mode)
    plan = PixelPlan(transform)
    assert plan.numpy_tail  # ToTensor + Normalize redone in numpy, not per-image torch
    images = noise_images(5) + [
        Image.new("L", (90, 30), 77),
        noise_image(3).convert("RGBA"),
        noise_image(4).convert("P"),
    ]
    for index, image in enumerate(images):
        np.testing.assert_array_equal(plan(image, index), transform(image).numpy())


def test_a_transform_of_another_shape_runs_as_it_is():
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()])
    plan = PixelPlan(transform)
    assert not plan.numpy_tail
    image = noise_image(1, (50, 40))
    np.testing.assert_array_equal(plan(image, 0), transform(image).numpy())


def test_threaded_pipeline_gives_the_one_by_one_vectors_in_input_order(encoder: ClipEncoder, tmp_path: Path):
    images = noise_images(23, seed=10)
    items: list[tuple[str, object]] = []
    for i, image in enumerate(images):  # bytes, files and PIL images mixed
        if i % 3 == 0:
            path = tmp_path / f"{i}.png"
            path.write_bytes(encoded(image))
            items.append((f"p{i}", path))
        else:
            items.append((f"p{i}", encoded(image) if i % 3 == 1 else image))

    threaded = ClipEncoder(encoder.model, encoder.preprocess, encoder.tokenizer, name=TINY,
                           model_id=encoder.model_id, device="cpu", dim=encoder.dim, workers=3)  # fmt: skip
    inline = ClipEncoder(encoder.model, encoder.preprocess, encoder.tokenizer, name=TINY,
                         model_id=encoder.model_id, device="cpu", dim=encoder.dim, workers=0)  # fmt: skip
    ids, vectors, failures = threaded.encode_images_safe(items, batch_size=4)
    inline_ids, inline_vectors, _ = inline.encode_images_safe(items, batch_size=4)

    assert failures == [] and ids == inline_ids == [item_id for item_id, _ in items]
    np.testing.assert_array_equal(vectors, inline_vectors)  # threads change nothing, bit for bit
    np.testing.assert_allclose(vectors, _reference_vectors(encoder, images), atol=1e-5)
    np.testing.assert_allclose(vectors, encoder.encode_images(images, batch_size=7), atol=1e-5)
    stats = threaded.last_stats
    assert (stats.images, stats.failed) == (23, 0) and stats.model_s > 0 and stats.preprocess_s > 0


def test_broken_images_anywhere_are_reported_and_the_rest_embedded(encoder: ClipEncoder):
    jpegs = [encoded(image, "JPEG") for image in noise_images(12, seed=30)]
    items: list[tuple[str, object]] = [(f"g{i}", data) for i, data in enumerate(jpegs)]
    broken = {0: b"", 5: b"GIF89a-not-really", 6: encoded(noise_image(1), "JPEG")[:200]}
    for position, data in sorted(broken.items()):
        items.insert(position, (f"bad{position}", data))
    items += [("bad-tail-1", b"\xff\xd8\xff"), ("bad-tail-2", None)]  # failures after the last good image

    ids, vectors, failures = encoder.encode_images_safe(items, batch_size=4)
    stats = encoder.last_stats

    assert ids == [f"g{i}" for i in range(12)]
    np.testing.assert_allclose(vectors, encoder.encode_images([Image.open(io.BytesIO(d)) for d in jpegs]), atol=1e-5)
    assert [item_id for item_id, _ in failures] == ["bad0", "bad5", "bad6", "bad-tail-1", "bad-tail-2"]
    assert all(reason.startswith("cannot decode") for item_id, reason in failures if item_id != "bad-tail-2")
    assert dict(failures)["bad-tail-2"] == "unsupported input type NoneType"
    assert (stats.images, stats.failed) == (12, 5)


def test_strict_encoding_names_the_first_broken_index_across_batches(encoder: ClipEncoder):
    from embeddings import ImageError

    images = [encoded(image) for image in noise_images(9)]
    images[7] = b"nope"
    images[8] = b"nope either"
    with pytest.raises(ImageError, match=r"^image 7: cannot decode") as err:
        encoder.encode_images(images, batch_size=3)
    assert err.value.index == 7
    assert _wait_for(lambda: not _pipeline_threads())


def test_preparation_runs_ahead_of_the_model_but_only_so_far(encoder: ClipEncoder):
    prepared: list[int] = []
    plan = PixelPlan(encoder.preprocess)

    def counting_plan(item: object, index: int) -> np.ndarray:
        prepared.append(index)
        return plan(item, index)

    batch_size, prefetch = 2, 1
    pipeline = ImagePipeline(counting_plan, batch_size=batch_size, workers=2, prefetch=prefetch)  # type: ignore[arg-type]
    image = encoded(noise_image(5))
    batches = pipeline.batches((f"i{i}", image) for i in range(200))
    first = next(batches)  # the "model" now holds batch 1 and does not ask for more
    assert first.ids == ["i0", "i1"]
    # overlap: items beyond the first batch get prepared while the consumer is busy with it
    assert _wait_for(lambda: len(prepared) >= 3 * batch_size)
    time.sleep(0.3)  # give the producer every chance to run further ahead than it should
    # bounded: queued batches + one waiting to be queued + the submitted-but-unbatched window + the one held
    assert len(prepared) <= (prefetch + 1 + (prefetch + 1) + 1) * batch_size
    rest = [batch.ids for batch in batches]
    assert [i for ids in [first.ids, *rest] for i in ids] == [f"i{i}" for i in range(200)]
    assert _wait_for(lambda: not _pipeline_threads())


def test_stopping_early_ends_the_worker_threads(encoder: ClipEncoder):
    pipeline = ImagePipeline(PixelPlan(encoder.preprocess), batch_size=2, workers=2)
    image = encoded(noise_image(5))
    batches = pipeline.batches((f"i{i}", image) for i in range(10_000))
    next(batches)
    assert _pipeline_threads()
    batches.close()
    assert _wait_for(lambda: not _pipeline_threads())


def test_an_error_in_the_reader_reaches_the_caller(encoder: ClipEncoder):
    image = encoded(noise_image(5))

    def feed() -> Iterator[tuple[str, bytes]]:
        for i in range(7):
            yield f"i{i}", image
        raise RuntimeError("feed broke after 7 items")

    with pytest.raises(RuntimeError, match="feed broke after 7 items"):
        list(ImagePipeline(PixelPlan(encoder.preprocess), batch_size=3, workers=2).batches(feed()))
    assert _wait_for(lambda: not _pipeline_threads())


def test_bad_pipeline_arguments_are_refused(encoder: ClipEncoder):
    plan = PixelPlan(encoder.preprocess)
    for kwargs in ({"batch_size": 0}, {"workers": -1}, {"prefetch": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            ImagePipeline(plan, **kwargs)
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode_images_safe([("a", noise_image(0))], batch_size=0)


def test_draft_decoding_is_opt_in_close_and_only_for_jpeg_files(encoder: ClipEncoder, tiny_checkpoint: Path):
    drafted = load_encoder(TINY, str(tiny_checkpoint), device="cpu", draft_decode=True)
    photo = smooth_image(3, (512, 384))
    jpeg, png = encoded(photo, "JPEG"), encoded(photo, "PNG")

    assert open_image(jpeg, 0).size == (512, 384)
    assert open_image(jpeg, 0, draft_size=(64, 64)).size == (128, 96)  # libjpeg's 1/4 scale, still >= 64
    assert encoder._plan.draft_size is None and drafted._plan.draft_size == (64, 64)

    full, draft = encoder.encode_images([jpeg, png, photo]), drafted.encode_images([jpeg, png, photo])
    assert not np.array_equal(full[0], draft[0])  # pixels changed...
    assert float(full[0] @ draft[0]) > 0.99  # ...but only slightly
    np.testing.assert_array_equal(full[1:], draft[1:])  # PNG and decoded images are untouched
    assert photo.size == (512, 384)


@pytest.mark.parametrize("workers", [0, 2])
def test_empty_and_single_inputs(encoder: ClipEncoder, workers: int):
    pipeline = ImagePipeline(PixelPlan(encoder.preprocess), batch_size=4, workers=workers)
    assert list(pipeline.batches([])) == []
    (batch,) = list(pipeline.batches([("only", b"broken")]))
    assert batch.pixels is None and batch.failures[0][:2] == (0, "only")
