"""Fine-tuning on a tiny catalog: real training, real numbers, a checkpoint users can load."""

from __future__ import annotations

import json

import pytest

from embeddings import load_encoder
from looksync.finetune import FinetuneConfig, canonical_caption, finetune, random_caption, sample_pairs
from looksync.sample import generate_sample


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    generate_sample(root, size=240, seed=5, n_looks=0)
    return root


def test_captions_use_the_standard_vocabulary(tiny_catalog):
    import random

    pairs = sample_pairs(tiny_catalog)
    assert len(pairs) == 240 and all(p.image_path.is_file() for p in pairs)
    product = pairs[0].product
    caption = canonical_caption(product)
    assert product.colours[0] in caption
    captions = {random_caption(product, random.Random(i)) for i in range(50)}
    assert len(captions) > 4


def test_finetuning_lowers_loss_and_raises_heldout_recall(tiny_catalog, tmp_path):
    pairs = sample_pairs(tiny_catalog)
    config = FinetuneConfig(epochs=8, batch_size=32, lr=2e-3, warmup_steps=5, holdout=0.2, seed=1)
    report = finetune(pairs, config, tmp_path / "tuned.pt")
    assert report.loss_curve[-1] < report.loss_curve[0] * 0.9
    assert report.recall_after["recall@10"] > report.recall_before["recall@10"]
    # the checkpoint loads through the users' checkpoint path, with its own model id
    tuned = load_encoder("LookSync-Tiny", str(tmp_path / "tuned.pt"), device="cpu")
    assert tuned.model_id == report.model_id != "LookSync-Tiny@random:0"
    saved = json.loads((tmp_path / "tuned.report.json").read_text())
    assert saved["recall_after"] == report.recall_after and saved["train_pairs"] == report.train_pairs


def test_too_few_pairs_is_a_clear_error(tiny_catalog, tmp_path):
    with pytest.raises(ValueError, match="at least 10 catalog pairs"):
        finetune(sample_pairs(tiny_catalog)[:3], FinetuneConfig(epochs=1), tmp_path / "x.pt")


def test_pairs_of_a_faulted_sample_skip_undecodable_images(tmp_path):
    """Planted faults include rows whose "image" is an HTML page or a truncated file: they make no pair."""
    from PIL import Image

    root = tmp_path / "faulted"
    generate_sample(root, size=60, seed=3, fault_rate=0.3, n_looks=0)
    faults = [json.loads(line) for line in (root / "faults.jsonl").read_text().splitlines()]
    image_faults = {f["vendor_sku"] for f in faults if f["expected_reason"].startswith("image_")}
    assert image_faults  # the sample plants some
    pairs = sample_pairs(root)
    assert len(pairs) == 60  # every valid product, and none of the faulted rows
    assert not image_faults & {p.product.vendor_sku for p in pairs}
    for pair in pairs:
        with Image.open(pair.image_path) as image:
            image.load()  # every kept pair decodes
