"""The ONNX Runtime towers (embeddings.runtime) on the tiny model: vectors agree with torch, the int8 gate
refuses a bad quantisation, exported files are reused, and the settings select the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings import ClipEncoder, EmbeddingsError, load_encoder
from embeddings.runtime import QUANT_MIN_COSINE, apply_runtime, model_dir, quantize_int8

from .factories import noise_images, smooth_image

TINY = "LookSync-Tiny"
TEXTS = ["a red dress", "black leather boots", "women's navy striped t-shirt", "a gold watch"]


def images() -> list:
    return noise_images(5) + [smooth_image(i, (96, 160)) for i in range(3)]


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)  # rows are unit vectors


def load(checkpoint: Path, runtime: str, cache_dir: Path) -> ClipEncoder:
    return load_encoder(TINY, str(checkpoint), device="cpu", runtime=runtime, cache_dir=cache_dir)


def test_onnx_vectors_agree_with_torch(encoder: ClipEncoder, tiny_checkpoint: Path, tmp_path: Path):
    onnx = load(tiny_checkpoint, "onnx", tmp_path)
    assert onnx.runtime == "onnx" and onnx.runtime_notes == []
    assert onnx.model_id == encoder.model_id  # same vectors within the gate: the index stays compatible
    np.testing.assert_allclose(onnx.encode_images(images()), encoder.encode_images(images()), atol=1e-4)
    np.testing.assert_allclose(onnx.encode_texts(TEXTS), encoder.encode_texts(TEXTS), atol=1e-4)
    # batch sizes other than the export's sample batch run too (dynamic batch axis)
    np.testing.assert_allclose(onnx.encode_images(images()[:1]), encoder.encode_images(images()[:1]), atol=1e-4)
    directory = model_dir(tmp_path, encoder.model_id)
    assert (directory / "image.fp32" / "model.onnx").is_file() and (directory / "text.fp32" / "model.onnx").is_file()


def test_int8_keeps_the_gate_cosine_and_says_what_runs(encoder: ClipEncoder, tiny_checkpoint: Path, tmp_path: Path):
    int8 = load(tiny_checkpoint, "onnx-int8", tmp_path)
    for kind, choice in int8.runtime_towers.items():
        if choice.runtime == "onnx-int8":
            assert choice.min_cosine >= QUANT_MIN_COSINE
        else:  # refused: said so, and the tower fell back to fp32 ONNX
            assert choice.runtime == "onnx" and any(f"{kind} tower" in n and "refused" in n for n in int8.runtime_notes)
    assert int8.runtime_towers["image"].runtime == "onnx-int8"  # the tiny model quantises within the gate
    vectors, reference = int8.encode_images(images()), encoder.encode_images(images())
    assert row_cosines(vectors, reference).min() >= QUANT_MIN_COSINE
    assert not np.allclose(vectors, reference, atol=1e-6)  # int8 weights really ran
    assert row_cosines(int8.encode_texts(TEXTS), encoder.encode_texts(TEXTS)).min() >= QUANT_MIN_COSINE


def damaged_quantizer(source: Path, target: Path) -> None:
    """A quantisation gone wrong: int8 weights with every weight matrix scrambled (same shapes, same graph)."""
    import onnx
    from onnx import numpy_helper

    quantize_int8(source, target)
    model = onnx.load(str(target))
    rng = np.random.default_rng(0)
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        if array.ndim == 2 and array.size > 64:
            initializer.CopyFrom(
                numpy_helper.from_array(rng.permutation(array.ravel()).reshape(array.shape), initializer.name)
            )
    onnx.save(model, str(target))


def test_the_gate_refuses_a_bad_quantisation(encoder: ClipEncoder, tiny_checkpoint: Path, tmp_path: Path):
    fp32 = load(tiny_checkpoint, "onnx", tmp_path / "fp32")
    torch_encoder = load(tiny_checkpoint, "torch", tmp_path)
    refused = apply_runtime(torch_encoder, "onnx-int8", tmp_path, quantize=damaged_quantizer)
    assert refused.runtime == "onnx"  # both towers fell back to fp32 ONNX
    assert len(refused.runtime_notes) == 2
    assert all("int8 quantisation" in n and "refused" in n and encoder.model_id in n for n in refused.runtime_notes)
    for choice in refused.runtime_towers.values():
        assert choice.runtime == "onnx" and choice.min_cosine >= 0.999
    np.testing.assert_allclose(refused.encode_images(images()), fp32.encode_images(images()), atol=1e-6)
    np.testing.assert_allclose(refused.encode_images(images()), encoder.encode_images(images()), atol=1e-4)


def test_exported_files_are_reused_and_keyed_by_model_id(
    encoder: ClipEncoder, tiny_checkpoint: Path, other_checkpoint: Path, tmp_path: Path, monkeypatch
):
    import torch

    first = load(tiny_checkpoint, "onnx-int8", tmp_path)
    files = sorted(p for p in model_dir(tmp_path, encoder.model_id).rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = apply_runtime(load(tiny_checkpoint, "torch", tmp_path), "onnx-int8", tmp_path,
                          quantize=lambda source, target: no_export())  # fmt: skip
    assert again.runtime == first.runtime
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten, gate records included
    np.testing.assert_array_equal(again.encode_images(images()), first.encode_images(images()))
    # other weights: another model id, another directory (so an export is needed, and refused here)
    with pytest.raises(AssertionError, match="exported again"):
        load(other_checkpoint, "onnx", tmp_path)


def test_a_stale_export_in_the_cache_is_caught(encoder: ClipEncoder, tiny_checkpoint: Path, other_checkpoint: Path,
                                               tmp_path: Path):  # fmt: skip
    """A file of other weights under this model id (copied by hand, a bug): the gate measures it and
    keeps the torch tower, saying so."""
    import shutil

    other = load(other_checkpoint, "onnx", tmp_path)
    shutil.copytree(model_dir(tmp_path, other.model_id), model_dir(tmp_path, encoder.model_id))
    caught = load(tiny_checkpoint, "onnx", tmp_path)
    assert caught.runtime == "torch"
    assert any("disagrees with torch" in n for n in caught.runtime_notes)
    np.testing.assert_array_equal(caught.encode_images(images()), encoder.encode_images(images()))


def test_settings_select_the_runtime(tiny_checkpoint: Path, tmp_path: Path):
    from embeddings import load_encoder_from_settings
    from looksync.settings import Settings

    settings = Settings(clip_model=TINY, clip_weights=str(tiny_checkpoint), device="cpu", data_dir=tmp_path,
                        clip_runtime="onnx")  # fmt: skip
    encoder = load_encoder_from_settings(settings)
    assert encoder.runtime == "onnx"
    assert (model_dir(tmp_path / "models", encoder.model_id) / "image.fp32" / "model.onnx").is_file()
    with pytest.raises(ValueError, match="clip_runtime"):
        Settings(clip_runtime="tensorrt")
    with pytest.raises(EmbeddingsError, match="expected one of torch, onnx, onnx-int8"):
        apply_runtime(encoder, "openvino", tmp_path)
