"""Weights sources other than S3: checkpoint files, pretrained tags (cached, or failing at once offline),
random seeds, settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings import ClipEncoder, WeightsError, load_encoder, load_encoder_from_settings, save_random_checkpoint
from embeddings.weights import resolve_weights
from looksync.settings import load_settings

from .factories import hub_cache_file, noise_images

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


def test_unknown_tag_lists_the_models_tags(tmp_path: Path):
    cache = tmp_path / "cache"
    (cache / "models--some--other").mkdir(parents=True)  # a cache with something in it: open_clip's table decides
    with pytest.raises(WeightsError) as err:
        load_encoder("ViT-B-32", "not_a_tag", device="cpu", cache_dir=cache)
    message = str(err.value)
    assert message.startswith("not_a_tag: not a pretrained tag of ViT-B-32 (known tags: ")
    assert "laion2b_s34b_b79k" in message


def test_pretrained_tag_with_hub_offline_fails_at_once_naming_the_local_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    hub_cache_file(tmp_path, "laion/another-model", "open_clip_model.safetensors", b"not this tag")
    with pytest.raises(WeightsError) as err:
        load_encoder("ViT-H-14", "laion2b_s32b_b79k", device="cpu", cache_dir=tmp_path)
    message = str(err.value)
    assert message.startswith(f"ViT-H-14 pretrained 'laion2b_s32b_b79k': not in the weights cache {tmp_path} ")
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in message and "HF_HUB_OFFLINE is set" in message
    for offline_source in ("LOOKSYNC_CLIP_WEIGHTS", "s3://bucket/key.pt#sha256=", "random:<seed>"):
        assert offline_source in message
    assert "LOOKSYNC_CLIP_CACHE_DIR" in message and "make demo" in message


def test_unreachable_hub_fails_at_once(tmp_path: Path, unreachable_hub_env: dict[str, str]):
    # before: about a minute of huggingface_hub retries; the timeout bounds imports plus the check
    script = (
        "import sys; from pathlib import Path; from embeddings.weights import resolve_weights\n"
        "try:\n"
        "    resolve_weights('ViT-B-32', 'laion2b_s34b_b79k', cache_dir=Path(sys.argv[1]))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc, sep=': ')\n"
        "    print('imported:', sorted({'open_clip', 'torch'} & set(sys.modules)))\n"
    )
    hub_cache_file(tmp_path / "cached", "laion/another-model", "open_clip_model.safetensors", b"x")
    lines = {}
    for name, cache in (("empty", tmp_path / "empty"), ("cached", tmp_path / "cached")):
        done = subprocess.run(
            [sys.executable, "-c", script, str(cache)],
            env=unreachable_hub_env, capture_output=True, text=True, timeout=45,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        lines[name] = done.stdout.strip().splitlines()
    hub = unreachable_hub_env["HF_ENDPOINT"]
    # nothing cached at all: refused before open_clip and torch are imported (seconds on a small machine)
    error, imported = lines["empty"]
    assert error.startswith("WeightsError: ViT-B-32 weights 'laion2b_s34b_b79k': no such checkpoint file, and as")
    assert f"model hub {hub} cannot be reached" in error and "Connection refused" in error
    assert "LOOKSYNC_CLIP_WEIGHTS" in error and imported == "imported: []"
    # something cached: open_clip's table and the cache lookup of this tag decide, naming its repo
    error, imported = lines["cached"]
    assert error.startswith("WeightsError: ViT-B-32 pretrained 'laion2b_s34b_b79k': not in the weights cache")
    assert f"{hub}/laion/CLIP-ViT-B-32-laion2B-s34B-b79K cannot be reached" in error and "LOOKSYNC_CLIP_WEIGHTS" in error


def test_cached_pretrained_checkpoint_is_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    # what an online machine's download left in the cache (open_clip prefers the safetensors file)
    cached = hub_cache_file(
        tmp_path, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors", b"weights"
    )
    resolved = resolve_weights("ViT-B-32", "laion2b_s34b_b79k", cache_dir=tmp_path)
    assert (resolved.kind, resolved.checkpoint) == ("pretrained", cached)
    assert resolved.preprocess["interpolation"] == "bicubic"
    # another tag of the same architecture is not in this cache
    with pytest.raises(WeightsError, match="ViT-B-32 pretrained 'laion2b_e16': not in the weights cache"):
        resolve_weights("ViT-B-32", "laion2b_e16", cache_dir=tmp_path)


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
