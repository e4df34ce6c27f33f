"""``looksync eval`` end to end on a tiny generated sample: real ingest, real indexes, real search."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from looksync.cli import main
from looksync.quality.evaluation.scoring import METRICS

TASKS = ("look", "text_caption", "text_title")


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory) -> Path:
    from looksync.demo import free_port
    from looksync.sample import generate_sample

    root = tmp_path_factory.mktemp("eval-sample") / "sample"
    generate_sample(root, size=24, seed=5, n_looks=2, n_varied_looks=2, image_base_url=f"http://127.0.0.1:{free_port()}")
    return root


@pytest.fixture(scope="module")
def eval_run(tiny_sample: Path, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("eval-data")
    result = CliRunner().invoke(
        main,
        ["eval", "--sample", str(tiny_sample), "--run-id", "t1", "--max-text-products", "4", "--resamples", "50",
         "--config", "a=LookSync-Tiny:random:0", "--config", "b=LookSync-Tiny:random:1,rerank=off"],  # fmt: skip
        env={"LOOKSYNC_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 0, result.output
    run_dir = data_dir / "eval" / "t1"
    return run_dir, json.loads((run_dir / "eval.json").read_text()), result.output


def test_json_has_every_task_metric_and_layer(eval_run, tiny_sample):
    run_dir, summary, output = eval_run
    truth = json.loads((tiny_sample / "looks" / "ground_truth.json").read_text())
    in_frame = {look_id: {layer for layer in look["products"] if look["in_frame"][layer]} for look_id, look in truth.items()}
    look_layers = set().union(*in_frame.values())
    assert set(summary["configs"]) == {"a", "b"}
    assert summary["configs"]["a"]["model_id"] != summary["configs"]["b"]["model_id"]
    assert len(summary["indexes"]) == 2  # one index per distinct model, built under the run dir
    assert all((run_dir / "indexes").iterdir())
    for config in summary["configs"].values():
        metrics = config["metrics"]
        assert set(TASKS) <= set(metrics)
        assert set(metrics["look"]) == look_layers | {"all"}
        assert metrics["look"]["all"]["queries"] == sum(len(v) for v in in_frame.values())
        assert metrics["look_nohint"]["all"]["queries"] == metrics["look"]["all"]["queries"]
        assert metrics["text_title"]["all"]["queries"] == 4
        for entry in metrics["look"].values():  # the planted product is always among the candidates
            assert entry["candidates_min"] >= 1 and 0.0 < entry["chance_recall@10"] <= 1.0
        for task in TASKS:
            for layer, entry in metrics[task].items():
                for metric in METRICS:
                    v = entry[metric]
                    assert 0.0 <= v["ci_low"] <= v["mean"] <= v["ci_high"] <= 1.0, (task, layer, metric, v)
                assert entry["violation_rate"]["mean"] == 0.0, (task, layer)
    # look_visible: the same look queries, only those whose planted garment is at least half in view
    visible = {(look_id, layer) for look_id, look in truth.items() for layer, share in look["visible"].items()
               if share >= 0.5 and layer in in_frame[look_id]}  # fmt: skip
    assert summary["tasks"]["look_visible"] == {"queries_per_config": len(visible), "min_visible": 0.5}
    for config in summary["configs"].values():
        if visible:
            assert config["metrics"]["look_visible"]["all"]["queries"] == len(visible)
    # the breakdown by framing: fixed looks and varied looks, each query counted once per framing key
    for config in summary["configs"].values():
        for task in ("look", "look_nohint"):
            by_variant = config["framing"][task]["variant"]
            assert set(by_variant) == {"fixed", "varied"}
            assert sum(v["queries"] for v in by_variant.values()) == config["metrics"][task]["all"]["queries"]
            assert by_variant["fixed"]["looks"] == 2 and by_variant["varied"]["looks"] == 2
            for key, values in config["framing"][task].items():
                assert sum(v["queries"] for v in values.values()) == config["metrics"][task]["all"]["queries"], key
        detection = config["detection"]["all"]
        assert detection["looks"] == len(truth) and 0.0 <= detection["gender_accuracy"] <= 1.0
        p = detection["presence"]
        assert p["tp"] + p["fn"] == sum(len(v) for v in in_frame.values())
    # the paired comparison again within fixed and varied looks: their queries add up to the whole
    by_variant = summary["comparisons_by_variant"]["b-vs-a"]
    assert set(by_variant) == {"fixed", "varied"}
    whole = summary["comparisons"]["b-vs-a"]["look"]["all"]["queries"]
    assert sum(v["look"]["all"]["queries"] for v in by_variant.values()) == whole
    # the sample has no duplicate listings: the similar task says so instead of inventing relevance
    assert "skipped" in summary["tasks"]["similar"] and "similar" not in summary["configs"]["a"]["metrics"]
    comparison = summary["comparisons"]["b-vs-a"]
    assert set(TASKS) <= set(comparison)
    assert " on varied looks: look Recall@10 " in output
    for v in comparison["look"]["all"].values():
        if isinstance(v, dict):
            assert v["ci_low"] <= v["difference"] <= v["ci_high"]


def test_per_query_rows_match_the_summary(eval_run):
    run_dir, summary, _ = eval_run
    rows = [json.loads(line) for line in (run_dir / "queries.jsonl").read_text().splitlines()]
    for name in ("a", "b"):
        look = [r for r in rows if r["config"] == name and r["task"] == "look"]
        mean = sum(r["metrics"]["recall@10"] for r in look) / len(look)
        assert round(mean, 4) == summary["configs"][name]["metrics"]["look"]["all"]["recall@10"]["mean"]
        assert all(len(r["ranked"]) <= 10 for r in look)
        # a look_visible row repeats its look row exactly (same results), under the other task name
        by_id = {r["query_id"]: r for r in look}
        for r in (r for r in rows if r["config"] == name and r["task"] == "look_visible"):
            assert {**r, "task": "look"} == by_id[r["query_id"]]


def test_html_report_has_the_per_layer_chart_and_look_thumbnails(eval_run):
    run_dir, summary, output = eval_run
    html = (run_dir / "report.html").read_text()
    assert str(run_dir / "report.html") in output
    chart = re.search(r'<svg id="chart-look-recall10".*?</svg>', html, re.S)
    assert chart, "per-layer look chart missing"
    bars = re.findall(r'data-layer="([^"]+)" data-config="([^"]+)" data-value="([0-9.]+)"', chart.group(0))
    layers = set(summary["configs"]["a"]["metrics"]["look"])
    assert {(layer, c) for layer, c, _ in bars} == {(layer, c) for layer in layers for c in ("a", "b")}
    for layer, config, value in bars:
        assert float(value) == pytest.approx(summary["configs"][config]["metrics"]["look"][layer]["recall@10"]["mean"], abs=1e-4)
    assert html.count("data:image/png;base64,") >= 3  # look image, planted product, results
    assert "similar" in html and "no near-duplicates" in html
    assert 'class="framing"' in html and "Detection without hints" in html and "gender accuracy" in html


def test_bad_input_fails_with_a_clear_message(tiny_sample, tmp_path):
    runner = CliRunner()
    env = {"LOOKSYNC_DATA_DIR": str(tmp_path)}
    bad = runner.invoke(main, ["eval", "--sample", str(tiny_sample), "--config", "LookSync-Tiny:random:0"], env=env)
    assert bad.exit_code != 0 and "NAME=MODEL:WEIGHTS" in bad.output
    dup = runner.invoke(main, ["eval", "--sample", str(tiny_sample), "--config", "a=LookSync-Tiny:random:0",
                               "--config", "a=LookSync-Tiny:random:1"], env=env)  # fmt: skip
    assert dup.exit_code != 0 and "unique" in dup.output
    not_sample = runner.invoke(main, ["eval", "--sample", str(tmp_path), "--config", "a=LookSync-Tiny:random:0"], env=env)
    assert not_sample.exit_code != 0 and "manifest.json" in not_sample.output
    missing = runner.invoke(main, ["eval", "--sample", str(tiny_sample), "--config",
                                   f"a=LookSync-Tiny:{tmp_path / 'nope.pt'}"], env=env)  # fmt: skip
    assert missing.exit_code != 0 and "config a" in missing.output and "nope.pt" in missing.output
    llm = runner.invoke(main, ["eval", "--sample", str(tiny_sample), "--config",
                               "a=LookSync-Tiny:random:0,generator=llm"], env=env)  # fmt: skip
    assert llm.exit_code != 0 and "LOOKSYNC_LLM_BASE_URL" in llm.output
    assert not (tmp_path / "eval").exists()  # nothing half-written


def test_a_sample_without_cross_listings_skips_grouping_and_says_why(eval_run):
    _, summary, output = eval_run
    assert "cross-listings" in summary["grouping"]["skipped"]
    assert "grouping: skipped" in output


def test_a_runtime_config_queries_the_first_configs_index(tiny_sample, tmp_path):
    """``runtime=onnx`` on the same model: one index (built by the first config), the queries embedded by
    ONNX Runtime, the same rankings as torch's (fp32 ONNX reproduces the torch vectors)."""
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        main,
        ["eval", "--sample", str(tiny_sample), "--run-id", "rt", "--max-text-products", "4", "--resamples", "50",
         "--no-nohint", "--config", "t=LookSync-Tiny:random:0,rerank=off",
         "--config", "o=LookSync-Tiny:random:0,rerank=off,runtime=onnx"],  # fmt: skip
        env={"LOOKSYNC_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 0, result.output
    run_dir = data_dir / "eval" / "rt"
    summary = json.loads((run_dir / "eval.json").read_text())
    assert len(summary["indexes"]) == 1
    assert summary["configs"]["o"]["config"]["runtime"] == "onnx"
    assert summary["configs"]["o"]["model_id"] == summary["configs"]["t"]["model_id"]
    assert (data_dir / "models" / "onnx").is_dir()  # exported under the data dir's models cache
    rows = [json.loads(line) for line in (run_dir / "queries.jsonl").read_text().splitlines()]
    ranked = {(r["config"], r["task"], r["query_id"]): r["ranked"] for r in rows}
    pairs = [(ranked[key], ranked[("o", *key[1:])]) for key in ranked if key[0] == "t"]
    assert pairs and sum(a == b for a, b in pairs) / len(pairs) >= 0.9
