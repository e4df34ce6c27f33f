"""Scoring of the evaluation harness on hand-checked cases (no model, no index)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from looksync.quality.evaluation import EvalConfig, EvalError, compare, score_query, summarise
from looksync.quality.evaluation.harness import look_task, similar_relevance
from looksync.quality.evaluation.scoring import ScoredQuery
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
    scored = look_task(searcher, fake_truth, config, k=10)
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
    scored = look_task(_GroundTruthSearcher(fake_truth.looks, "wrong"), fake_truth, config, k=10)
    assert all(q.metrics["recall@10"] == 0.0 and q.metrics["violation_rate"] == 1.0 for q in scored)
    perfect = look_task(_GroundTruthSearcher(fake_truth.looks, "perfect"), fake_truth, config, k=10)
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
    c = EvalConfig.parse("clip=LookSync-Tiny:random:0,regions=clip_boxes,crop_weight=0.25")
    assert (c.regions, c.crop_weight) == ("clip_boxes", 0.25)


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
    ],
)
def test_bad_config_spec_names_the_problem(spec, message):
    with pytest.raises(EvalError, match=message):
        EvalConfig.parse(spec)
