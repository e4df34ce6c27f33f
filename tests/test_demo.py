"""The README's main job (`make demo` -> `looksync demo`) on a small sample: every step runs for real,
the service answers with the fine-tuned checkpoint, and a second run reuses that checkpoint."""

from __future__ import annotations

import json

import pytest

from looksync.demo import run_demo, tuned_checkpoint


@pytest.mark.slow
def test_demo_fine_tunes_then_serves_the_tuned_model(tmp_path):
    lines: list[str] = []
    response = run_demo(tmp_path / "demo", size=60, seed=3, fault_rate=0.05, epochs=2, echo=lines.append)
    text = "\n".join(lines)
    for step in range(1, 7):
        assert f"{step}/6 " in text
    checkpoints = sorted((tmp_path / "demo" / "models").glob("LookSync-Tiny-tuned-*-e2-s3-r*.pt"))
    assert len(checkpoints) == 1
    report = json.loads(checkpoints[0].with_suffix(".report.json").read_text())
    # the service answered with the tuned weights, not the random ones it started from
    assert response["model_id"] == report["model_id"] != "LookSync-Tiny@random:3"
    assert response["layers"] and all(layer["products"] for layer in response["layers"])
    assert "planted products vs results:" in text
    # the cards' pictures outlive the sample's image server (stopped once ingested): each product's thumbnail
    from looksync.catalog.thumbnails import ThumbnailStore
    from looksync.settings import load_settings

    store = ThumbnailStore.from_settings(load_settings(data_dir=tmp_path / "demo" / "data"))
    products = [p for layer in response["layers"] for p in layer["products"]]
    assert all(p["thumbnail_url"] == f"/v1/thumbnails/{p['image_hash']}" and store.exists(p["image_hash"]) for p in products)
    assert " thumbnails, quarantined" in text
    assert "held-out text->image Recall@10" in text and "on-figure crop->packshot Recall@10" in text

    # the same sample and settings: the checkpoint is reused, not trained again
    again: list[str] = []
    assert tuned_checkpoint(tmp_path / "demo" / "sample", tmp_path / "demo" / "models", 3, 2, again.append) == checkpoints[0]
    assert "reusing" in again[0]


def test_negative_epochs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        run_demo(tmp_path, epochs=-1, echo=lambda _: None)
