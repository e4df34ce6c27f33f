"""Fine-tuning on a tiny catalog: real training, real numbers, a checkpoint users can load."""

from __future__ import annotations

import json

import pytest

from embeddings import load_encoder
from looksync.quality.finetune import (
    FinetuneConfig,
    OnFigure,
    canonical_caption,
    finetune,
    random_caption,
    sample_pairs,
)
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
    epochs: list[tuple[int, int, float]] = []
    report = finetune(pairs, config, tmp_path / "tuned.pt", progress=lambda *e: epochs.append(e))
    assert report.loss_curve[-1] < report.loss_curve[0] * 0.9
    assert [(done, total, round(loss, 4)) for done, total, loss in epochs] == [
        (i, 8, loss) for i, loss in enumerate(report.loss_curve, 1)
    ]  # one call per epoch with its mean loss
    assert report.recall_after["recall@10"] > report.recall_before["recall@10"]
    # on-figure crops (on by default): street-to-shop recall on held-out products rises too
    assert set(report.crop_recall_after) == {"recall@1", "recall@5", "recall@10"}
    assert report.crop_recall_after["recall@10"] > report.crop_recall_before["recall@10"]
    # the checkpoint loads through the users' checkpoint path, with its own model id
    tuned = load_encoder("LookSync-Tiny", str(tmp_path / "tuned.pt"), device="cpu")
    assert tuned.model_id == report.model_id != "LookSync-Tiny@random:0"
    saved = json.loads((tmp_path / "tuned.report.json").read_text())
    assert saved["recall_after"] == report.recall_after and saved["train_pairs"] == report.train_pairs


def test_on_figure_looks_wear_the_garment_at_its_layer_slot(tiny_catalog):
    import random

    import numpy as np
    from PIL import Image

    from looksync.catalog.taxonomy import get_taxonomy

    pairs = sample_pairs(tiny_catalog)
    images = {id(p): Image.open(p.image_path).convert("RGB") for p in pairs}
    figure = OnFigure(pairs, images, canvas=(150, 250))
    assert all(figure.covers(p) for p in pairs)  # every packaged layer has a slot
    slots = {layer: spec.slot for layer, spec in get_taxonomy().layers.items()}
    for i, pair in enumerate(pairs[:40]):
        rng = random.Random(i)
        look, box = figure.look(pair, rng)
        assert look.size == (150, 250)
        x0, y0, x1, y1 = slots[pair.product.layer]
        centre = ((box[0] + box[2]) / 2 / 150, (box[1] + box[3]) / 2 / 250)
        assert x0 - 0.05 <= centre[0] <= x1 + 0.05 and y0 - 0.05 <= centre[1] <= y1 + 0.05, pair.product.layer
        # the garment's own pixels are in its box (garments pasted later may cover some of it)
        pasted = np.asarray(figure.cutouts[id(pair)].resize((box[2] - box[0], box[3] - box[1])))
        opaque = pasted[..., 3] == 255
        shown = np.abs(np.asarray(look.crop(box)).astype(int) - pasted[..., :3]).sum(axis=2) <= 3
        if pair.product.layer in ("outer_topwear", "bag", "headwear", "footwear"):  # mostly on top, not thin lines
            assert shown[opaque].mean() > 0.5, pair.product.layer
        crop = figure.crop(pair, rng, 64)
        assert crop.size == (64, 64)
    # companions: never a one-piece with a top or a bottom
    one_piece = next(p for p in pairs if p.product.layer == "one_piece")
    for i in range(30):
        worn = figure._companions(one_piece, random.Random(i))
        assert not {"topwear", "bottomwear"} & set(worn)


def test_figure_variety_frames_the_look_and_its_box_follows_the_garment(tiny_catalog):
    """``figure_variety``: mirrored, turned, small figures on other backgrounds; the garment's box moves
    with it, so the crop still shows the garment."""
    import random

    import numpy as np
    from PIL import Image

    pairs = [p for p in sample_pairs(tiny_catalog) if p.product.layer in ("outer_topwear", "bag", "headwear")][:12]
    images = {id(p): Image.open(p.image_path).convert("RGB") for p in pairs}
    varied = OnFigure(pairs, images, canvas=(150, 250), variety=True)
    mirrored = 0
    for i, pair in enumerate(pairs):
        look, box = varied.look(pair, random.Random(i))
        framed, moved = varied._vary(look, box, random.Random(100 + i))
        assert framed.size == look.size and 0 <= moved[0] < moved[2] <= 150 and 0 <= moved[1] < moved[3] <= 250
        cutout = np.asarray(varied.cutouts[id(pair)])
        palette = {tuple(c) for c in cutout[..., :3][cutout[..., 3] == 255] // 32}  # the garment's colours, coarsely
        hits = np.array([[tuple(c) in palette for c in row] for row in np.asarray(framed) // 32])
        inside = np.zeros_like(hits)
        inside[moved[1] : moved[3], moved[0] : moved[2]] = True
        # the garment's colours crowd its box far more than the rest of the look
        assert hits[inside].mean() > 2 * hits[~inside].mean(), (i, pair.product.layer)
        centre_before, centre_after = (box[0] + box[2]) / 2, (moved[0] + moved[2]) / 2
        mirrored += abs((150 - centre_before) - centre_after) < abs(centre_before - centre_after)
        crop = varied.crop(pair, random.Random(i), 64)
        assert crop.size == (64, 64) and crop.tobytes() == varied.crop(pair, random.Random(i), 64).tobytes()
    assert 0 < mirrored < len(pairs)  # some mirrored, some not


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
