"""The README's main job (`make demo` -> `looksync demo`) on a small sample: every step runs for real,
the service answers with the fine-tuned checkpoint, and a second run reuses that checkpoint. The terminal
gets a short view; the full log goes to a file the demo names."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from looksync.console import Console
from looksync.demo import planted_in_top, run_demo, tuned_checkpoint
from looksync.search.heads_recipe import RECIPE_LOOKS, RECIPE_NET_LOOKS, RECIPE_NET_SEED_OFFSET
from tests.conftest import REPO

LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR) ")


@pytest.mark.slow
def test_demo_fine_tunes_then_serves_the_tuned_model(tmp_path):
    lines: list[str] = []
    response = run_demo(tmp_path / "demo", size=60, seed=3, fault_rate=0.05, epochs=2, echo=lines.append, looks=4,
                        heads_looks=30)  # fmt: skip
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
    # the look went as the app sends it: only the market; the service read the layers and gender with the
    # detection heads the demo trained for this checkpoint on looks generated for them
    assert "with market " in text and "only (no gender, no layers)" in text
    assert response["gender_detected"] is not None and "detection" in response["timings_ms"]
    from looksync.sample import SampleManifest
    from looksync.search.detection import HEADS_FORMAT, DetectionHeads

    heads_files = sorted((tmp_path / "demo" / "models").glob(f"{checkpoints[0].stem}-heads{HEADS_FORMAT}-layout-*.npz"))
    assert len(heads_files) == 1
    heads = DetectionHeads.load(heads_files[0])
    assert heads.model_id == report["model_id"] and heads.region_finder == "layout"
    manifest = SampleManifest.load(tmp_path / "demo" / "sample")
    searched = sorted(json.loads(manifest.ground_truth_path.read_text()))[0]
    assert f"6/6 search look {searched}.png" in text
    # the heads' own looks (as `looksync heads train` makes them, 1 in 6 fixed-frame, generated with a catalog of
    # their own under heads-train): fitted on, calibrated on, or measured on; the searched look is not among them
    assert heads.meta["looks"] + heads.meta["calibration_looks"] + heads.meta["validation"]["looks"] == 30
    sample = dict(heads.meta["sample"])
    net = sample.pop("net_sample")  # and the presence CNN's own looks, of a third sample (net_looks in the recipe)
    assert sample == {"size": 60, "seed": 101, "fixed_looks": 5, "varied_looks": 25}
    assert net["seed"] == 101 + RECIPE_NET_SEED_OFFSET and net["fixed_looks"] + net["varied_looks"] == 30 * RECIPE_NET_LOOKS // RECIPE_LOOKS
    assert heads.presence_nets and heads.presence_blend  # the demo's heads carry the CNN
    heads_truth = json.loads((tmp_path / "demo" / "heads-train" / "looks" / "ground_truth.json").read_text())
    assert len(heads_truth) == 30 and sum(t.get("framing", {}).get("variant") == "varied" for t in heads_truth.values()) == 25
    assert re.search(r"read from the look: layers \w+.*; gender (women|men) \(confidence", text)
    assert re.search(r"planted products within the top 3: \d+ of \d+", text)
    # the cards' pictures outlive the sample's image server (stopped once ingested): each product's thumbnail
    from looksync.catalog.thumbnails import ThumbnailStore
    from looksync.settings import load_settings

    store = ThumbnailStore.from_settings(load_settings(data_dir=tmp_path / "demo" / "data"))
    products = [p for layer in response["layers"] for p in layer["products"]]
    assert all(p["thumbnail_url"] == f"/v1/thumbnails/{p['image_hash']}" and store.exists(p["image_hash"]) for p in products)
    assert re.search(r"\d+ embedded, \d+ thumbnails, (\d+|none) quarantined", text)
    assert re.search(r"product groups: \d+ items sold at several shops \(\d+ listings", text)  # one card per item
    assert "held-out text->image Recall@10" in text and "on-figure crop->packshot Recall@10" in text
    # the details are in the log the demo names, not on the terminal
    log_path = tmp_path / "demo" / "demo.log"
    assert str(log_path) in lines[0] and str(log_path) in lines[-1]
    log = log_path.read_text()
    assert f"checkpoint {checkpoints[0]}" in log and f"checkpoint {checkpoints[0]}" not in text
    assert "quarantined rows: " in log and "readyz: {" in log and "planted: {" in log

    # the same sample and settings: the checkpoint is reused, not trained again
    again: list[str] = []
    assert tuned_checkpoint(tmp_path / "demo" / "sample", tmp_path / "demo" / "models", 3, 2, again.append) == checkpoints[0]
    assert "reusing" in again[0]
    # and so are the heads
    from embeddings import load_encoder
    from looksync.demo import demo_heads

    settings = load_settings(data_dir=tmp_path / "demo" / "data", clip_model="LookSync-Tiny", clip_weights=str(checkpoints[0]))
    encoder = load_encoder("LookSync-Tiny", str(checkpoints[0]), device="cpu")
    again.clear()
    train_root = tmp_path / "demo" / "heads-train"
    assert demo_heads(settings, encoder, checkpoints[0], train_root, 30, Console(again.append)) == heads_files[0]
    assert f"    reusing detection heads {heads_files[0].name}" in again
    # but not when what places the regions changes (here a pose setting): they are trained again
    again.clear()
    other = demo_heads(settings.model_copy(update={"pose_max_tilt": 45.0}), encoder, checkpoints[0], train_root, 30,
                       Console(again.append))  # fmt: skip
    assert other != heads_files[0] and other.is_file() and not any("reusing detection heads" in line for line in again)


def test_planted_in_top_counts_a_planted_product_only_within_the_top_of_its_own_layer():
    response = {"layers": [
        {"layer": "topwear", "products": [{"product_id": p} for p in ("a", "b", "top")]},
        {"layer": "bottomwear", "products": [{"product_id": p} for p in ("a", "b", "c", "trousers")]},
        {"layer": "bag", "products": [{"product_id": "shoe"}]},
    ]}  # fmt: skip
    planted = {"topwear": "top", "bottomwear": "trousers", "footwear": "shoe", "bag": "bag"}
    assert planted_in_top(planted, response) == ["topwear"]
    assert planted_in_top(planted, response, top=4) == ["bottomwear", "topwear"]


@pytest.mark.slow
def test_the_terminal_gets_a_short_view_and_the_log_file_the_rest(tmp_path):
    """``python -m looksync demo`` with its output piped (as in CI): a line per step, no log records, and the
    file it names holds every library's log."""
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "looksync", "demo", "--workdir", str(workdir), "--size", "60", "--seed", "3",
         "--epochs", "0", "--looks", "12", "--heads-looks", "12"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    terminal = (done.stdout + done.stderr).splitlines()
    assert len(terminal) < 60, "\n".join(terminal)
    assert not [line for line in terminal if LOG_RECORD.match(line)]
    assert not [line for line in terminal if "swigfaiss" in line or "search view loaded" in line]
    log_path = workdir / "demo.log"
    assert str(log_path) in terminal[0] and str(log_path) in terminal[-1]
    for step in range(1, 7):
        assert sum(line.startswith(f"{step}/6 ") for line in terminal) == 1
    assert "planted products vs results:" in terminal
    # without a TTY each progress step ends with one line, not a redrawn bar
    for label in ("feeds 18/18", r"index (\d+)/\1"):
        assert [line for line in terminal if re.fullmatch(rf"    {label} in [\d.]+ s: \w.*", line)], label

    log = log_path.read_text()
    assert "INFO root: Parsing model identifier" in log  # open_clip logs on the root logger
    assert re.search(r'INFO looksync\.pipelines\.ingest: ingest start \{"run_id": "ingest-', log)  # with its ids
    assert "INFO faiss.loader: " in log  # quiet on the terminal, kept in the file
    assert "INFO looksync.console: 3/6 ingest" in log  # the terminal's lines too
    assert "WARNING root: No pretrained weights loaded" in log  # the random start, expected: file only


def test_negative_epochs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        run_demo(tmp_path, epochs=-1, echo=lambda _: None)


def test_a_demo_without_a_look_or_looks_to_train_the_heads_on_is_refused(tmp_path):
    with pytest.raises(ValueError, match="looks must be >= 1"):
        run_demo(tmp_path, looks=0, echo=lambda _: None)
    with pytest.raises(ValueError, match="heads_looks must be >= 10"):
        run_demo(tmp_path, heads_looks=9, echo=lambda _: None)
