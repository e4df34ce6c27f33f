"""Weights sources other than S3: checkpoint files, pretrained tags (offline here), random seeds, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings import ClipEncoder, WeightsError, load_encoder, load_encoder_from_settings, save_random_checkpoint
from looksync.settings import load_settings

from .factories import noise_images

TINY = "LookSync-Tiny"


def test_missing_checkpoint_names_the_path(tmp_path: Path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match=f"^{missing}: checkpoint file not found"):
        load_encoder(TINY, str(missing), device="cpu")


def test_corrupt_checkpoint_names_the_path(tmp_path: Path, tiny_checkpoint: Path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[: tiny_checkpoint.stat().st_size // 2])
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    for path in (garbage, truncated, bad_safetensors):
        with pytest.raises(WeightsError, match=f"^{path}: cannot load as {TINY} weights"):
            load_encoder(TINY, str(path), device="cpu")


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path, tiny_checkpoint: Path):
    import torch

    state = torch.load(tiny_checkpoint, weights_only=True)
    state.pop("text_projection")
    incomplete = tmp_path / "incomplete.pt"
    torch.save(state, incomplete)
    with pytest.raises(WeightsError, match="text_projection"):
        load_encoder(TINY, str(incomplete), device="cpu")


def test_open_clip_training_checkpoints_load(tmp_path: Path, tiny_checkpoint: Path, encoder: ClipEncoder):
    # open_clip's training loop saves {"epoch", "state_dict"} with DDP's "module." prefix
    import torch

    state = torch.load(tiny_checkpoint, weights_only=True)
    wrapped = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "name": "tiny", "state_dict": {"module." + k: v for k, v in state.items()}}, wrapped)
    loaded = load_encoder(TINY, str(wrapped), device="cpu")
    images = noise_images(3)
    np.testing.assert_array_equal(loaded.encode_images(images), encoder.encode_images(images))


def test_safetensors_checkpoint_round_trip(tmp_path: Path, encoder: ClipEncoder):
    path = save_random_checkpoint(TINY, tmp_path / "tiny.safetensors", seed=0)
    loaded = load_encoder(TINY, str(path), device="cpu")
    images = noise_images(3)
    np.testing.assert_allclose(loaded.encode_images(images), encoder.encode_images(images), atol=1e-6)


def test_random_weights_only_when_asked_and_reproducible(encoder: ClipEncoder):
    first = load_encoder(TINY, "random:0", device="cpu")
    second = load_encoder(TINY, "random:0", device="cpu")
    assert first.model_id == second.model_id == f"{TINY}@random:0"
    images = noise_images(3)
    np.testing.assert_array_equal(first.encode_images(images), second.encode_images(images))
    # save_random_checkpoint(seed=0) saved exactly these weights
    np.testing.assert_array_equal(first.encode_images(images), encoder.encode_images(images))
    with pytest.raises(WeightsError, match="random:abc: the seed"):
        load_encoder(TINY, "random:abc", device="cpu")


def test_random_init_does_not_disturb_the_callers_rng():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_encoder(TINY, "random:5", device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_unknown_tag_lists_the_models_tags():
    with pytest.raises(WeightsError) as err:
        load_encoder("ViT-B-32", "not_a_tag", device="cpu")
    message = str(err.value)
    assert message.startswith("not_a_tag: not a pretrained tag of ViT-B-32 (known tags: ")
    assert "laion2b_s34b_b79k" in message


def test_pretrained_tag_goes_through_open_clip_and_fails_clearly_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import huggingface_hub.constants

    # no network here; offline mode makes huggingface_hub fail at once instead of retrying DNS
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsError) as err:
        load_encoder("ViT-H-14", "laion2b_s32b_b79k", device="cpu", cache_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("ViT-H-14 pretrained 'laion2b_s32b_b79k': cannot fetch weights")
    assert str(tmp_path) in message and "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in message


def test_settings_choose_model_weights_and_device(tiny_checkpoint: Path, encoder: ClipEncoder, tmp_path: Path):
    settings = load_settings(
        clip_model=TINY,
        clip_weights=str(tiny_checkpoint),
        device="cpu",
        data_dir=tmp_path,
        embed_batch_size=4,
        embed_workers=3,
        embed_draft_decode=True,
    )
    loaded = load_encoder_from_settings(settings)
    assert loaded.model_id == encoder.model_id
    assert (loaded.device, loaded.batch_size) == ("cpu", 4)
    assert (loaded.pipeline().workers, loaded.draft_decode) == (3, True)
    assert (
        load_encoder_from_settings(
            load_settings(clip_model=TINY, clip_weights=str(tiny_checkpoint), device="cpu", data_dir=tmp_path)
        ).draft_decode
        is False
    )


def test_cuda_requested_without_one_is_an_error(tiny_checkpoint: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from embeddings import EmbeddingsError

    with pytest.raises(EmbeddingsError, match="'cuda' requested"):
        load_encoder(TINY, str(tiny_checkpoint), device="cuda")
