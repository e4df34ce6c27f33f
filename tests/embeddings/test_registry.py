"""The registry lists LookSync's and open_clip's architectures, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from embeddings import UnknownModel, list_models, load_encoder, model_config
from embeddings.registry import MODEL_CONFIG_DIR, register_with_open_clip

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_registry_lists_ours_and_open_clips():
    names = list_models()
    assert names[0] == "LookSync-Tiny"
    assert {"ViT-B-32", "ViT-H-14"} <= set(names)
    assert list_models(include_open_clip=False) == [p.stem for p in sorted(MODEL_CONFIG_DIR.glob("*.json"))]


def test_tiny_config_is_small_and_uses_the_bundled_tokenizer():
    config = model_config("LookSync-Tiny")
    assert config["embed_dim"] == 128
    assert config["vision_cfg"]["image_size"] == 64
    assert config["text_cfg"]["vocab_size"] == 49408 and config["text_cfg"]["context_length"] == 77
    assert "hf_tokenizer_name" not in config["text_cfg"]
    assert model_config("ViT-H-14")["embed_dim"] == 1024


def test_open_clip_builds_the_tiny_model_after_registration():
    import open_clip
    import torch

    register_with_open_clip()
    assert "LookSync-Tiny" in open_clip.list_models()
    model, _, preprocess = open_clip.create_model_and_transforms("LookSync-Tiny")
    tokenizer = open_clip.get_tokenizer("LookSync-Tiny")
    assert isinstance(tokenizer, open_clip.SimpleTokenizer)
    with torch.inference_mode():
        assert model.encode_image(torch.zeros(2, 3, 64, 64)).shape == (2, 128)
        assert model.encode_text(tokenizer(["a red dress"])).shape == (1, 128)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModel) as err:
        load_encoder("ViT-Q-99", "random:0")
    message = str(err.value)
    assert message.startswith("ViT-Q-99: not in the registry; known: ")
    assert "LookSync-Tiny" in message and "ViT-H-14" in message


def test_schema_names_are_not_architectures():
    # open_clip would fetch 'hf-hub:' configs from the network; the registry refuses them up front
    with pytest.raises(UnknownModel, match="hf-hub:laion/x"):
        model_config("hf-hub:laion/x")


def test_importing_the_package_loads_no_heavy_modules():
    code = (
        "import sys, embeddings, embeddings.registry, embeddings.weights, embeddings.factory, embeddings.encoder\n"
        "import embeddings.pipeline\n"
        "from embeddings import load_encoder, load_encoder_from_settings, ClipEncoder, WeightsError\n"
        "assert 'LookSync-Tiny' in embeddings.list_models(include_open_clip=False)\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'PIL', 'torchvision', 'boto3') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
