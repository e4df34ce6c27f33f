"""ClipEncoder on the tiny model, loaded from a checkpoint file the way users load one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from embeddings import ClipEncoder, ImageError, load_encoder

from .factories import encoded, noise_image, noise_images

TINY = "LookSync-Tiny"


def test_image_vectors_are_unit_float32_rows(encoder: ClipEncoder):
    vectors = encoder.encode_images(noise_images(10))
    assert vectors.shape == (10, encoder.dim) == (10, 128)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.device == "cpu"


def test_distinct_images_get_distinct_vectors(encoder: ClipEncoder):
    vectors = encoder.encode_images(noise_images(4))
    similarity = vectors @ vectors.T
    assert np.all(similarity[~np.eye(4, dtype=bool)] < 1 - 1e-4)


def test_batched_and_single_calls_agree(encoder: ClipEncoder):
    images = noise_images(13)
    batched = encoder.encode_images(images, batch_size=5)
    whole = encoder.encode_images(images, batch_size=64)
    single = np.stack([encoder.encode_images([image])[0] for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(whole, single, atol=1e-5)

    texts = ["a red dress", "black leather boots", "a striped shirt"]
    np.testing.assert_allclose(
        encoder.encode_texts(texts, batch_size=2), np.stack([encoder.encode_texts([t])[0] for t in texts]), atol=1e-5
    )


def test_pil_bytes_and_paths_give_the_same_vector(encoder: ClipEncoder, tmp_path: Path):
    image = noise_image(7, (90, 70))
    path = tmp_path / "look.png"
    path.write_bytes(encoded(image))
    vectors = encoder.encode_images([image, encoded(image), str(path), path, image.convert("RGBA")])
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], 5, axis=0), atol=1e-6)


def test_two_loads_of_one_checkpoint_are_identical(encoder: ClipEncoder, tiny_checkpoint: Path):
    again = load_encoder(TINY, str(tiny_checkpoint), device="cpu")
    images = noise_images(6)
    assert again.model_id == encoder.model_id
    np.testing.assert_array_equal(again.encode_images(images), encoder.encode_images(images))
    np.testing.assert_array_equal(again.encode_texts(["a blue coat"]), encoder.encode_texts(["a blue coat"]))


def test_model_id_names_architecture_and_checkpoint_digest(
    encoder: ClipEncoder, tiny_checkpoint: Path, other_checkpoint: Path
):
    import hashlib

    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert encoder.model_id == f"{TINY}@{digest[:12]}"
    assert re.fullmatch(r"LookSync-Tiny@[0-9a-f]{12}", encoder.model_id)
    other = load_encoder(TINY, str(other_checkpoint), device="cpu")
    assert other.model_id != encoder.model_id
    image = [noise_image(0)]
    assert not np.allclose(other.encode_images(image), encoder.encode_images(image), atol=1e-3)


def test_undecodable_image_is_named_by_index(encoder: ClipEncoder):
    images = [encoded(noise_image(0)), encoded(noise_image(1)), b"<html>not an image</html>"]
    with pytest.raises(ImageError, match=r"^image 2: cannot decode") as err:
        encoder.encode_images(images, batch_size=2)
    assert err.value.index == 2


def test_safe_encoding_reports_broken_images_and_embeds_the_rest(encoder: ClipEncoder, tmp_path: Path):
    good = noise_images(7)
    truncated = encoded(noise_image(99, (128, 128)))[:300]
    items = [(f"img-{i}", encoded(image)) for i, image in enumerate(good)]
    items.insert(2, ("broken-bytes", b"\x00\x01garbage"))
    items.insert(5, ("truncated", truncated))
    items.append(("missing-file", str(tmp_path / "nope.jpg")))
    items.append(("wrong-type", 12345))

    ids, vectors, failures = encoder.encode_images_safe(items, batch_size=3)

    assert ids == [f"img-{i}" for i in range(7)]
    assert vectors.shape == (7, encoder.dim)
    np.testing.assert_allclose(vectors, encoder.encode_images(good), atol=1e-5)
    assert [item_id for item_id, _ in failures] == ["broken-bytes", "truncated", "missing-file", "wrong-type"]
    reasons = dict(failures)
    assert reasons["missing-file"].startswith("cannot decode: FileNotFoundError")
    assert "unsupported input type int" in reasons["wrong-type"]


def test_empty_inputs_give_empty_matrices(encoder: ClipEncoder):
    assert encoder.encode_images([]).shape == (0, encoder.dim)
    assert encoder.encode_texts([]).shape == (0, encoder.dim)
    ids, vectors, failures = encoder.encode_images_safe([])
    assert (ids, vectors.shape, failures) == ([], (0, encoder.dim), [])


def test_text_vectors_are_unit_rows_and_a_bare_string_is_refused(encoder: ClipEncoder):
    vectors = encoder.encode_texts(["a red dress", "a red dress", "navy jeans"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    with pytest.raises(TypeError):
        encoder.encode_texts("a red dress")


def test_threads_setting_is_applied(tiny_checkpoint: Path):
    import torch

    before = torch.get_num_threads()
    try:
        load_encoder(TINY, str(tiny_checkpoint), device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
def test_cuda_autocast_matches_cpu(encoder: ClipEncoder, tiny_checkpoint: Path):
    gpu = load_encoder(TINY, str(tiny_checkpoint), device="auto")
    assert gpu.device == "cuda"
    images = noise_images(8)
    vectors = gpu.encode_images(images)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, encoder.encode_images(images), atol=2e-2)
    np.testing.assert_allclose(gpu.encode_texts(["a red dress"]), encoder.encode_texts(["a red dress"]), atol=2e-2)


def test_cpu_forwards_from_many_threads_run_one_at_a_time(encoder: ClipEncoder):
    """Request threads share one encoder; on a CPU their forwards queue instead of splitting the cores."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    active, peak, guard = 0, 0, threading.Lock()
    real_image, real_text = encoder.model.encode_image, encoder.model.encode_text

    def tracked(real):
        def run(*args, **kwargs):
            nonlocal active, peak
            with guard:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)  # long enough for the other threads to arrive while this forward runs
            try:
                return real(*args, **kwargs)
            finally:
                with guard:
                    active -= 1

        return run

    images = noise_images(3)
    expected_images = encoder.encode_images(images)
    expected_text = encoder.encode_texts(["a red dress"])
    encoder.model.encode_image, encoder.model.encode_text = tracked(real_image), tracked(real_text)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            image_calls = [pool.submit(encoder.encode_images, images) for _ in range(4)]
            text_calls = [pool.submit(encoder.encode_texts, ["a red dress"]) for _ in range(4)]
            for call in image_calls:
                np.testing.assert_allclose(call.result(), expected_images, atol=1e-5)
            for call in text_calls:
                np.testing.assert_allclose(call.result(), expected_text, atol=1e-5)
    finally:
        encoder.model.encode_image, encoder.model.encode_text = real_image, real_text
    assert peak == 1
    assert encoder.forward_wait_s > 0  # some forwards did wait for the lock
