"""``regions=truth``: the evaluation's oracle places each look's layers at their ground-truth boxes, and
only the evaluation can select it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from looksync.cli import main
from looksync.quality.evaluation.harness import EvalConfig, EvalError
from looksync.quality.evaluation.truth_regions import TruthRegionFinder
from looksync.search.regions import LayoutRegionFinder
from looksync.settings import SettingsError, load_settings


@pytest.fixture(scope="module")
def varied_sample(tmp_path_factory) -> Path:
    """Fixed-frame looks and varied ones, three of them cropped above the feet (footwear out of frame)."""
    from looksync.demo import free_port
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("truth-sample") / "sample"
    generate_sample(root, size=24, seed=5, n_looks=2, n_varied_looks=8, image_base_url=f"http://127.0.0.1:{free_port()}")
    return root


def _ground_truth(sample: Path) -> dict:
    return json.loads((sample / "looks" / "ground_truth.json").read_text())


def _look(sample: Path, look_id: str) -> Image.Image:
    with Image.open(sample / "looks" / f"{look_id}.png") as image:
        return image.convert("RGB")


def test_truth_places_each_planted_layer_at_its_box_and_out_of_frame_layers_are_absent(varied_sample):
    from looksync.catalog.taxonomy import get_taxonomy

    truth = _ground_truth(varied_sample)
    layout = LayoutRegionFinder(None)  # stands in for pose: the layers the look does not wear
    finder = TruthRegionFinder.from_sample(None, varied_sample / "looks", truth, layout)
    every_layer = list(get_taxonomy().layers)
    out_of_frame = 0
    for look_id, expected in truth.items():
        look = _look(varied_sample, look_id)
        placement = finder.place(look, every_layer)
        assert placement.source == "truth"
        for layer in expected["products"]:
            if expected["in_frame"][layer]:
                assert placement.boxes[layer] == [tuple(expected["boxes"][layer])], (look_id, layer)
            else:
                out_of_frame += 1
                assert layer not in placement.boxes and "out of frame" in placement.absent[layer], (look_id, layer)
        # a layer the look does not wear: where the fallback puts it
        unworn = [layer for layer in every_layer if layer not in expected["products"]]
        assert {layer: placement.boxes[layer] for layer in unworn if layer in placement.boxes} == layout.place(look, unworn).boxes
        assert any("not worn" in note for note in placement.degraded)
    assert out_of_frame >= 3  # the sample does crop footwear out


def test_truth_knows_only_the_samples_looks(varied_sample):
    finder = TruthRegionFinder.from_sample(None, varied_sample / "looks", _ground_truth(varied_sample), LayoutRegionFinder(None))
    stranger = _look(varied_sample, "look-001").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with pytest.raises(ValueError, match="not one of the sample's looks"):
        finder.place(stranger, ["topwear"])


def test_truth_is_an_eval_config_and_no_service_setting():
    from looksync.search.region_finders import REGION_FINDERS

    config = EvalConfig.parse("t=LookSync-Tiny:random:0,regions=truth")
    assert config.regions == "truth"
    with pytest.raises(EvalError, match="heads serve look_nohint"):
        EvalConfig.parse("t=LookSync-Tiny:random:0,regions=truth,heads=pose.npz")
    assert "truth" not in REGION_FINDERS
    with pytest.raises(SettingsError, match="LOOKSYNC_REGION_FINDER='truth'"):
        load_settings(region_finder="truth")
    # the setting accepts exactly the registered finders
    for name in REGION_FINDERS:
        assert load_settings(region_finder=name).region_finder == name


def test_eval_with_truth_regions_runs_the_hinted_look_tasks_only(varied_sample, pose_models_dir, tmp_path):
    """End to end: a truth config beside a layout one; look_nohint is skipped for truth and says why."""
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        main,
        ["eval", "--sample", str(varied_sample), "--run-id", "tr", "--max-text-products", "2", "--resamples", "20",
         "--max-similar", "0", "--config", "layout=LookSync-Tiny:random:0,rerank=off,regions=layout",
         "--config", "truth=LookSync-Tiny:random:0,rerank=off,regions=truth"],  # fmt: skip
        env={"LOOKSYNC_DATA_DIR": str(data_dir), "LOOKSYNC_POSE_MODELS": "pypi",
             "LOOKSYNC_POSE_MODELS_DIR": str(pose_models_dir)},  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((data_dir / "eval" / "tr" / "eval.json").read_text())
    layout, truth = summary["configs"]["layout"], summary["configs"]["truth"]
    assert truth["metrics"]["look"]["all"]["queries"] == layout["metrics"]["look"]["all"]["queries"]
    assert "look_nohint" in layout["metrics"] and "detection" in layout
    assert "look_nohint" not in truth["metrics"] and "detection" not in truth
    assert "regions=truth" in truth["skipped"]["look_nohint"]
    assert set(truth["framing"]["look"]["variant"]) == {"fixed", "varied"}
    assert "truth: look_nohint skipped" in result.output
    assert "<b>look_nohint</b> (truth): regions=truth" in (data_dir / "eval" / "tr" / "report.html").read_text()
    # the truth config's engine reads each planted layer at its ground-truth box
    from embeddings import load_encoder
    from looksync.quality.evaluation.harness import config_settings, load_truth, make_engine
    from looksync.search.engine import LookSearchRequest

    config = EvalConfig.parse("truth=LookSync-Tiny:random:0,rerank=off,regions=truth")
    sample = load_truth(varied_sample)
    encoder = load_encoder(config.model, config.weights, device="cpu", cache_dir=data_dir / "models")
    settings = config_settings(data_dir / "eval" / "tr" / "indexes" / config.index_slug, config).model_copy(
        update={"pose_models_dir": pose_models_dir}
    )
    engine = make_engine(settings, encoder, config, sample)
    expected = sample.looks["vlook-004"]
    planted = sorted(layer for layer, shown in expected["in_frame"].items() if shown)
    request = LookSearchRequest(market=expected["market"], gender=expected["gender"], layers=planted, k=5, rerank="off")
    response = engine.search_look(_look(varied_sample, "vlook-004"), request)
    assert response["region_source"] == "truth"
    assert {layer["layer"]: layer["region"] for layer in response["layers"]} == {
        layer: expected["boxes"][layer] for layer in planted
    }
