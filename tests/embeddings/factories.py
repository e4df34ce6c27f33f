"""Test data for the embeddings tests: small images in the forms encoders accept, a filled hub cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def noise_image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def swatch(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_images(n: int, seed: int = 0) -> list[Image.Image]:
    # varied sizes and aspect ratios, so preprocessing (resize + centre crop) is exercised too
    sizes = [(64, 64), (80, 48), (48, 96), (128, 128), (33, 65)]
    return [noise_image(seed + i, sizes[i % len(sizes)]) for i in range(n)]


def smooth_image(seed: int, size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A photo-like image (smooth colour gradients and soft shapes), where downscaling loses little."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]] / max(size)
    channels = [
        np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y) + rng.uniform(0, 6)) for _ in range(3)
    ]
    pixels = (np.stack(channels, axis=-1) * 90 + 128).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def hub_cache_file(cache_dir: Path, repo_id: str, filename: str, data: bytes, commit: str = "0" * 40) -> Path:
    """``filename`` of hub repo ``repo_id`` as huggingface_hub's cache holds a download (``models--org--name/
    refs/main`` naming a snapshot that holds the file), the way an online machine leaves it."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
