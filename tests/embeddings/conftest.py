"""Fixtures that build real things: a tiny CLIP checkpoint saved to disk and loaded the way users load
one (the S3 fixtures live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings import ClipEncoder, load_encoder, save_random_checkpoint

TINY = "LookSync-Tiny"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(TINY, tmp_path_factory.mktemp("ckpt") / "tiny-seed0.pt", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(TINY, tmp_path_factory.mktemp("ckpt") / "tiny-seed1.pt", seed=1)


@pytest.fixture(scope="session")
def encoder(tiny_checkpoint: Path) -> ClipEncoder:
    return load_encoder(TINY, str(tiny_checkpoint), device="cpu")
