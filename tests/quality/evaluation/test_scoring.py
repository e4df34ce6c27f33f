"""Scoring of the evaluation harness on hand-checked cases (no model, no index)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from looksync.quality.evaluation import EvalConfig, EvalError, compare, score_query, summarise
from looksync.quality.evaluation.harness import look_task, similar_relevance, with_config_options
from looksync.quality.evaluation.scoring import (
    Detection,
    ScoredQuery,
    detection_breakdown,
    framing_breakdown,
    framing_value,
    presence_scores,
)
from looksync.settings import Settings
from tests.factories import make_product


def _summary(pid: str, market: str = "US", layer: str = "topwear", gender: str = "women") -> dict:
    return {"product_id": pid, "market": market, "layer": layer, "gender": gender}


def _all_ok(_r) -> bool:
    return True


def test_score_query_hand_checked():
    m = score_query(["x", "rel", "y"], {"rel"}, [_summary("x"), _summary("rel")], _all_ok)
    assert m["recall@1"] == 0.0 and m["recall@5"] == 1.0 and m["recall@10"] == 1.0
    assert m["mrr"] == 0.5
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert m["violation_rate"] == 0.0


def test_equivalence_keys_are_collapsed_so_one_class_counts_once():
    # caption queries: several results share a key; the repeated wrong key must not push the right one down
    m = score_query(["k1", "k1", "k1", "k2", "k2"], {"k2"}, [], _all_ok)
    assert m["mrr"] == 0.5
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(3))  # <= 1 despite two k2 hits


def test_violations_are_counted():
    results = [_summary("a", market="US"), _summary("b", market="JP")]
    m = score_query(["a", "b"], {"a"}, results, lambda r: r["market"] == "US")
    assert m["violation_rate"] == 0.5


def test_no_relevant_items_is_an_error_not_a_score():
    with pytest.raises(ValueError, match="relevant"):
        score_query(["a"], set(), [], _all_ok)


class _GroundTruthSearcher:
    """FAKE searcher, for testing the scoring code only: answers each requested layer with the planted
    product first (``perfect``) or with a wrong product from another market (``wrong``)."""

    def __init__(self, looks: dict, mode: str):
        self.looks, self.mode, self.calls = looks, mode, []

    def search_look(self, image, request):
        self.calls.append(request)
        look = next(v for v in self.looks.values() if v["market"] == request.market)
        layers = []
        for layer in request.layers:
            planted = look["products"][layer]
            if self.mode == "perfect":
                products = [_summary(planted, request.market, layer, request.gender), _summary("other", request.market, layer, "unisex")]
            else:
                products = [_summary("other", "JP", layer, request.gender)]
            layers.append({"layer": layer, "query": f"q {layer}", "products": products})
        return {"layers": layers}


@pytest.fixture
def fake_truth(tmp_path: Path):
    from PIL import Image

    looks = {
        "look-001": {"market": "US", "gender": "women", "products": {"topwear": "p1", "bottomwear": "p2"}},
        "look-002": {"market": "IN", "gender": "men", "products": {"topwear": "p3", "footwear": "p4"}},
    }
    for look_id in looks:
        Image.new("RGB", (8, 8)).save(tmp_path / f"{look_id}.png")
    return SimpleNamespace(looks=looks, manifest=SimpleNamespace(looks_dir=tmp_path), products={}, images={})


def test_perfect_fake_searcher_scores_recall_one(fake_truth):
    config = EvalConfig.parse("perfect=LookSync-Tiny:random:0")
    searcher = _GroundTruthSearcher(fake_truth.looks, "perfect")
    scored, detections = look_task(searcher, fake_truth, config, k=10)
    assert detections == []  # hints given: nothing detected
    assert {q.query_id for q in scored} == {"look-001:topwear", "look-001:bottomwear", "look-002:topwear", "look-002:footwear"}
    assert all(q.metrics["recall@1"] == 1.0 and q.metrics["mrr"] == 1.0 for q in scored)
    assert all(q.metrics["violation_rate"] == 0.0 for q in scored)  # a unisex result is allowed for a gender filter
    assert searcher.calls[0].market == "US" and searcher.calls[0].gender == "women"
    assert searcher.calls[0].layers == ["bottomwear", "topwear"]
    summary = summarise(scored, n_resamples=50)
    assert set(summary["look"]) == {"all", "topwear", "bottomwear", "footwear"}
    assert summary["look"]["all"]["recall@10"]["mean"] == 1.0


def test_wrong_market_results_score_zero_and_count_as_violations(fake_truth):
    config = EvalConfig.parse("wrong=LookSync-Tiny:random:0")
    scored, _ = look_task(_GroundTruthSearcher(fake_truth.looks, "wrong"), fake_truth, config, k=10)
    assert all(q.metrics["recall@10"] == 0.0 and q.metrics["violation_rate"] == 1.0 for q in scored)
    perfect, _ = look_task(_GroundTruthSearcher(fake_truth.looks, "perfect"), fake_truth, config, k=10)
    diff = compare(scored, perfect, n_resamples=50)["look"]["all"]["recall@10"]
    assert diff["difference"] == 1.0 and diff["ci_low"] == 1.0  # every query pair differs by exactly 1


def test_compare_counts_unmatched_queries():
    a = [ScoredQuery("text_title", "topwear", "p1:title", "t", [], ["p1"], {m: 0.0 for m in
         ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "violation_rate")})]  # fmt: skip
    b = [*a, ScoredQuery("text_title", "topwear", "p2:title", "t", [], ["p2"], dict(a[0].metrics))]
    out = compare(a, b, n_resamples=20)
    assert out["unmatched_queries"] == 1 and out["text_title"]["all"]["queries"] == 1


def test_similar_relevance_from_shared_images_and_groups():
    p1 = make_product(vendor_sku="A", image_hash="h1")
    p2 = make_product(vendor_sku="B", market="JP", currency="JPY", image_hash="h1")  # same picture, another market
    p3 = make_product(vendor_sku="C", image_hash="h3")
    p4 = make_product(vendor_sku="D", image_hash="h4")
    p5 = make_product(vendor_sku="E", image_hash="h5")
    relevance = similar_relevance([p1, p2, p3, p4, p5], {p3.product_id: "grp-1", p4.product_id: "grp-1"})
    assert relevance == {
        p1.product_id: {p2.product_id},
        p2.product_id: {p1.product_id},
        p3.product_id: {p4.product_id},
        p4.product_id: {p3.product_id},
    }
    assert similar_relevance([p3, p4, p5], {}) == {}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a=LookSync-Tiny:random:0", ("a", "LookSync-Tiny", "random:0", "auto", "local")),
        ("tuned=LookSync-Tiny:/x/tuned.pt,rerank=off", ("tuned", "LookSync-Tiny", "/x/tuned.pt", "off", "local")),
        ("l=ViT-B-32:openai,generator=llm,rerank=llm", ("l", "ViT-B-32", "openai", "llm", "llm")),
    ],
)
def test_config_spec_parses(spec, expected):
    c = EvalConfig.parse(spec)
    assert (c.name, c.model, c.weights, c.rerank, c.generator) == expected
    assert (c.regions, c.crop_weight) == (None, None)  # the settings' values


def test_config_spec_overrides_regions_and_crop_weight():
    c = EvalConfig.parse("clip=LookSync-Tiny:random:0,regions=clip_boxes,crop_weight=0.25,gender_conf=0.9")
    assert (c.regions, c.crop_weight, c.gender_conf) == ("clip_boxes", 0.25, 0.9)


def test_config_spec_switches_background_blanking():
    assert EvalConfig.parse("t=LookSync-Tiny:random:0").blank is None  # the settings' value
    assert EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,blank=1").blank is True
    assert EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,blank=0").blank is False


def test_config_spec_sets_the_pose_tilt_limit():
    assert EvalConfig.parse("t=LookSync-Tiny:random:0").max_tilt is None  # the settings' value
    assert EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,max_tilt=180").max_tilt == 180.0
    with pytest.raises(EvalError, match="max_tilt must be a number in"):
        EvalConfig.parse("t=LookSync-Tiny:random:0,max_tilt=270")


def test_config_spec_sets_the_pose_span_limit():
    assert EvalConfig.parse("t=LookSync-Tiny:random:0").min_span is None  # the settings' value
    assert EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,min_span=0").min_span == 0.0
    with pytest.raises(EvalError, match="min_span must be a number in"):
        EvalConfig.parse("t=LookSync-Tiny:random:0,min_span=1.5")


def test_config_spec_switches_the_pose_retry_the_figure_axis_and_the_bag_side():
    c = EvalConfig.parse("t=LookSync-Tiny:random:0")
    assert (c.retry, c.figure, c.side) == (None, None, None)  # the settings' values
    c = EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,retry=0,figure=1,side=0")
    assert (c.retry, c.figure, c.side) == (False, True, False)
    tuned = with_config_options(Settings(pose_retry=True, pose_figure_axis=True, pose_pick_side=True), c)
    assert (tuned.pose_retry, tuned.pose_figure_axis, tuned.pose_pick_side) == (False, True, False)
    for key in ("retry", "figure", "side", "figroi"):
        with pytest.raises(EvalError, match=f"{key} must be 0 or 1"):
            EvalConfig.parse(f"t=LookSync-Tiny:random:0,{key}=yes")


def test_config_spec_switches_the_figures_roi():
    assert EvalConfig.parse("t=LookSync-Tiny:random:0").figroi is None  # the setting's value
    c = EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,figroi=0")
    assert c.figroi is False
    assert with_config_options(Settings(pose_figure_roi=True), c).pose_figure_roi is False
    assert with_config_options(Settings(pose_figure_roi=False), EvalConfig.parse("t=LookSync-Tiny:random:0,figroi=1")).pose_figure_roi is True
    assert with_config_options(Settings(pose_figure_roi=False), EvalConfig.parse("t=LookSync-Tiny:random:0")).pose_figure_roi is False


def test_config_spec_sets_the_landmark_reads_tolerance():
    base = Settings(pose_refine_tolerance=0.0, pose_min_span=0.7)
    config = EvalConfig.parse("t=LookSync-Tiny:random:0,regions=pose,refine_tol=0.1")
    assert config.refine_tol == 0.1
    tuned = with_config_options(base, config)
    assert (tuned.pose_refine_tolerance, tuned.pose_min_span, tuned.region_finder) == (0.1, 0.7, "pose")
    assert with_config_options(base, EvalConfig.parse("t=LookSync-Tiny:random:0")).pose_refine_tolerance == 0.0  # the setting
    with pytest.raises(EvalError, match="refine_tol must be a number in"):
        EvalConfig.parse("t=LookSync-Tiny:random:0,refine_tol=-1")


def test_config_spec_names_the_clip_runtime():
    assert EvalConfig.parse("t=LookSync-Tiny:random:0").runtime == "torch"
    c = EvalConfig.parse("q=LookSync-Tiny:random:0,runtime=onnx-int8")
    assert c.runtime == "onnx-int8" and c.index_slug == EvalConfig.parse("t=LookSync-Tiny:random:0").index_slug


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("LookSync-Tiny:random:0", "NAME=MODEL:WEIGHTS"),
        ("a=LookSync-Tiny", "MODEL:WEIGHTS"),
        ("a=LookSync-Tiny:random:0,rerank=sometimes", "rerank 'sometimes'"),
        ("a=LookSync-Tiny:random:0,speed=fast", "unknown option 'speed=fast'"),
        ("a=LookSync-Tiny:random:0,generator=gpt", "generator 'gpt'"),
        ("a=LookSync-Tiny:random:0,regions=sam", "regions 'sam' is not one of layout, clip_boxes, pose"),
        ("a=LookSync-Tiny:random:0,crop_weight=1.5", "crop_weight must be a number in"),
        ("a=LookSync-Tiny:random:0,crop_weight=half", "crop_weight must be a number in"),
        ("a=LookSync-Tiny:random:0,gender_conf=0.3", r"gender_conf must be a number in \[0.5, 1\]"),
        ("a=LookSync-Tiny:random:0,blank=yes", "blank must be 0 or 1"),
        ("a=LookSync-Tiny:random:0,runtime=tensorrt", "runtime 'tensorrt' is not one of torch, onnx, onnx-int8"),
    ],
)
def test_bad_config_spec_names_the_problem(spec, message):
    with pytest.raises(EvalError, match=message):
        EvalConfig.parse(spec)


class _DetectingSearcher:
    """FAKE searcher, for testing the no-hint scoring only: with no layers asked it answers the layers
    and gender it was told to "detect", each with the planted product first where there is one."""

    def __init__(self, looks: dict, found: dict[str, tuple[list[str], str]]):
        self.looks, self.found, self.calls = looks, found, []

    def search_look(self, image, request):
        self.calls.append(request)
        look_id, look = next((k, v) for k, v in self.looks.items() if v["market"] == request.market)
        layers, gender = self.found[look_id]
        return {
            "gender": gender,
            "layers": [{"layer": layer, "query": layer,
                        "products": [_summary(look["products"].get(layer, "other"), request.market, layer, gender)]}
                       for layer in layers],  # fmt: skip
        }


def test_nohint_looks_give_only_the_market_and_score_what_was_detected(fake_truth):
    fake_truth.looks["look-002"]["products"]["bag"] = "p5"  # planted, but out of frame: never asked, never wrong
    fake_truth.looks["look-002"]["in_frame"] = {"topwear": True, "footwear": True, "bag": False}
    searcher = _DetectingSearcher(
        fake_truth.looks,
        {"look-001": (["topwear", "headwear"], "women"), "look-002": (["topwear", "bag"], "women")},
    )
    config = EvalConfig.parse("nohint=LookSync-Tiny:random:0")
    scored, detections = look_task(searcher, fake_truth, config, k=10, hints=False)
    assert all(c.gender is None and c.layers is None and c.market for c in searcher.calls)
    recall = {q.query_id: q.metrics["recall@10"] for q in scored if q.task == "look_nohint"}
    # the bag is out of frame: not scored; footwear was not detected: scores zero
    assert recall == {"look-001:topwear": 1.0, "look-001:bottomwear": 0.0, "look-002:topwear": 1.0,
                      "look-002:footwear": 0.0}  # fmt: skip
    scores = presence_scores(detections)
    # found: topwear x2 (TP), headwear (FP), bag (ignored); missed: bottomwear, footwear
    assert scores["presence"] == {"tp": 2, "fp": 1, "fn": 2, "precision": round(2 / 3, 4), "recall": 0.5}
    assert scores["layers"]["headwear"] == {"tp": 0, "fp": 1, "fn": 0, "precision": 0.0, "recall": None}
    assert scores["layers"]["topwear"]["precision"] == scores["layers"]["topwear"]["recall"] == 1.0
    assert "bag" not in scores["layers"]
    assert scores["gender_accuracy"] == 0.5 and scores["looks"] == 2


def test_framing_breakdown_means_per_value():
    def q(look_id: str, layer: str, recall: float, task: str = "look") -> ScoredQuery:
        metrics = {"recall@1": recall, "recall@10": recall, "mrr": recall / 2}
        return ScoredQuery(task, layer, f"{look_id}:{layer}", "", [], ["x"], metrics)

    framings = {
        "look-001": {"variant": "fixed"},
        "vlook-001": {"variant": "varied", "aspect": "16:9", "scale": 0.45, "mirrored": True, "pose": "raised"},
        "vlook-002": {"variant": "varied", "aspect": "16:9", "scale": 0.95, "mirrored": False, "pose": "walking"},
        "vlook-003": {"variant": "varied", "aspect": "9:16", "scale": 0.7, "mirrored": False, "pose": "raised"},
    }
    queries = [q("look-001", "topwear", 1.0), q("look-001", "footwear", 1.0), q("vlook-001", "topwear", 1.0),
               q("vlook-001", "bag", 0.0), q("vlook-002", "topwear", 0.0), q("vlook-003", "topwear", 1.0),
               q("vlook-003", "topwear", 0.0, task="text_title")]  # fmt: skip
    out = framing_breakdown(queries, framings, ("look",))
    assert set(out) == {"look"}
    assert out["look"]["variant"] == {
        "fixed": {"queries": 2, "looks": 1, "recall@1": 1.0, "recall@10": 1.0, "mrr": 0.5},
        "varied": {"queries": 4, "looks": 3, "recall@1": 0.5, "recall@10": 0.5, "mrr": 0.25},
    }
    assert {v: e["recall@10"] for v, e in out["look"]["aspect"].items()} == {"fixed": 1.0, "16:9": round(1 / 3, 4), "9:16": 1.0}
    assert {v: e["queries"] for v, e in out["look"]["scale"].items()} == {"fixed": 2, "<0.6": 2, ">=0.8": 1, "0.6-0.8": 1}
    assert {v: e["recall@10"] for v, e in out["look"]["mirrored"].items()} == {"fixed": 1.0, "true": 0.5, "false": 0.5}
    assert out["look"]["pose"]["raised"]["looks"] == 2
    assert framing_value(None, "pose") == "fixed"  # ground truth from before framings


def test_detection_breakdown_splits_fixed_from_varied():
    fixed = Detection("look-001", {"topwear"}, {"topwear"}, "men", "men", framing={"variant": "fixed"})
    varied = Detection("vlook-001", {"topwear", "bag"}, {"topwear"}, "men", "women",
                       framing={"variant": "varied", "novel": True})  # fmt: skip
    out = detection_breakdown([fixed, varied])
    assert out["all"]["gender_accuracy"] == 0.5 and out["all"]["presence"]["recall"] == round(2 / 3, 4)
    assert out["variant"]["fixed"]["gender_accuracy"] == 1.0 and out["variant"]["fixed"]["presence"]["recall"] == 1.0
    assert out["variant"]["varied"]["presence"] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5}
    assert set(out["novel"]) == {"fixed", "true"}
    assert presence_scores([])["gender_accuracy"] is None


def test_presence_over_visible_garments_and_the_gender_filter_share():
    # topwear planted under a jacket (hidden): missing it counts against `presence`, not `presence_visible`
    a = Detection("look-001", {"topwear", "outer_topwear"}, {"outer_topwear"}, "men", "men", hidden={"topwear"})
    # found but hidden: neither a hit nor a false alarm once hidden layers are set aside
    b = Detection("look-002", {"topwear", "bag"}, {"topwear", "bag", "eyewear"}, "women", "men", gender_used=False,
                  hidden={"bag"})  # fmt: skip
    c = Detection("look-003", {"topwear"}, {"topwear"}, "women", "men", gender_used=True)
    out = presence_scores([a, b, c])
    assert out["presence"] == {"tp": 4, "fp": 1, "fn": 1, "precision": 0.8, "recall": 0.8}
    assert out["presence_visible"] == {"tp": 3, "fp": 1, "fn": 0, "precision": 0.75, "recall": 1.0}
    assert out["gender_accuracy"] == round(1 / 3, 4)
    assert out["gender_used_share"] == round(2 / 3, 4) and out["gender_used_accuracy"] == 0.5


def test_every_config_option_that_sets_a_setting_names_one_and_sets_it():
    from looksync.quality.evaluation.harness import SETTING_NUMBERS, SETTING_SWITCHES

    for option, setting in SETTING_SWITCHES.items():
        assert setting in Settings.model_fields, option
        default = getattr(Settings(), setting)
        config = EvalConfig.parse(f"t=LookSync-Tiny:random:0,{option}={int(not default)}")
        assert getattr(with_config_options(Settings(), config), setting) is (not default)
    for option, (setting, _, high) in SETTING_NUMBERS.items():
        assert setting in Settings.model_fields, option
        config = EvalConfig.parse(f"t=LookSync-Tiny:random:0,{option}={high:g}")
        assert getattr(with_config_options(Settings(), config), setting) == high
