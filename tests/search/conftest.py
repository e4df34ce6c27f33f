"""Looks for the pose tests: a generated sample look (the project's own figure) and a real photograph."""

from __future__ import annotations

import json

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def sample_look(tmp_path_factory) -> tuple[Image.Image, dict]:
    """The first look of a small generated sample, with its ground truth."""
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("pose-sample")
    manifest = generate_sample(root, size=30, seed=11, n_looks=1, image_base_url="http://127.0.0.1:1")
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    look_id = sorted(truth)[0]
    with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
        return image.convert("RGB"), truth[look_id]


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    """scikit-image's waist-up photograph of a person (Eileen Collins, NASA; public domain)."""
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def fixed_looks(tmp_path_factory) -> list[Image.Image]:
    """Six fixed-frame looks of a small generated sample (seed 3): women with long hair and men in hats,
    where a person mask cut from the stretched look missed the head or the legs."""
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("pose-fixed-looks")
    manifest = generate_sample(root, size=30, seed=3, n_looks=6, image_base_url="http://127.0.0.1:1")
    looks = []
    for path in sorted(manifest.looks_dir.glob("look-*.png")):
        with Image.open(path) as image:
            looks.append(image.convert("RGB"))
    return looks


@pytest.fixture(scope="session")
def varied_looks(tmp_path_factory) -> dict[str, tuple[Image.Image, dict]]:
    """Six varied looks of a small generated sample (seed 5), by id, with their ground truth: vlook-005 (a
    three-quarter look on which the whole look gives the landmark model nothing, the person's box gives a pose)
    and vlook-006 (a half-body look with both arms raised, no usable pose)."""
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("pose-varied-looks")
    manifest = generate_sample(root, size=30, seed=5, n_looks=1, n_varied_looks=6, image_base_url="http://127.0.0.1:1")
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    looks = {}
    for look_id in sorted(truth):
        if look_id.startswith("vlook-"):
            with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
                looks[look_id] = (image.convert("RGB"), truth[look_id])
    return looks


@pytest.fixture(scope="session")
def bench_looks(tmp_path_factory) -> dict[str, tuple[Image.Image, dict]]:
    """The four fixed-frame looks of seed 5 that bench/bench_service.py's samples start from, by id, with their
    ground truth: look-002 wears long trousers, look-003 carries a bag on one side."""
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("pose-bench-looks")
    manifest = generate_sample(root, size=60, seed=5, n_looks=4, image_base_url="http://127.0.0.1:1")
    truth = json.loads(manifest.ground_truth_path.read_text(encoding="utf-8"))
    looks = {}
    for look_id in sorted(truth):
        with Image.open(manifest.looks_dir / f"{look_id}.png") as image:
            looks[look_id] = (image.convert("RGB"), truth[look_id])
    return looks


@pytest.fixture(scope="session")
def tiny_encoder():
    """LookSync-Tiny with random weights (seed 0) on the CPU: the heads' end-to-end tests embed with it."""
    from embeddings import load_encoder

    return load_encoder("LookSync-Tiny", "random:0", device="cpu")


@pytest.fixture(scope="session")
def layout_place():
    """A ``place(look, layers)`` for ``train_heads`` that puts each layer at the taxonomy's layout slots."""
    from looksync.catalog.taxonomy import get_taxonomy
    from looksync.search.regions import layout_placement

    taxonomy = get_taxonomy()

    def place(look, layers):
        return layout_placement(taxonomy, look.size, layers)

    return place


@pytest.fixture
def train_looks(tmp_path):
    """``looks(seed, n)``: the ``look_examples`` of a small generated sample of ``n`` looks (a third fixed-frame,
    the rest varied, train split)."""
    from looksync.sample import generate_sample
    from looksync.search.detection_training import look_examples

    def looks(seed: int, n: int):
        manifest = generate_sample(tmp_path / f"looks-{seed}", size=60, seed=seed, n_looks=n // 3,
                                   n_varied_looks=n - n // 3, varied_split="train")  # fmt: skip
        return look_examples(json.loads(manifest.ground_truth_path.read_text()), manifest.looks_dir)

    return looks
