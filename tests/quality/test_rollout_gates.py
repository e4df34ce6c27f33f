"""The rollout gates over evidence built with the real scoring and comparison functions."""

from __future__ import annotations

import pytest

from looksync.quality.evaluation.scoring import ScoredQuery, compare, score_query
from looksync.quality.rollout.gates import (
    GateParams,
    error_rate_gate,
    evaluate_gates,
    offline_recall_gate,
    shadow_agreement_gate,
    shadow_summary,
)
from looksync.quality.rollout.report import write_rollout_report
from looksync.search.shadow import compare_layer


def _queries(task: str, hits: list[bool]) -> list[ScoredQuery]:
    """One query per flag: its relevant product ranked first (True) or absent from the top 10 (False)."""
    out = []
    for i, hit in enumerate(hits):
        ranked = [f"p{i}"] if hit else [f"x{j}" for j in range(10)]
        out.append(
            ScoredQuery(task, "topwear", f"q{i}", "q", ranked, [f"p{i}"], score_query(ranked, {f"p{i}"}, [], bool))
        )
    return out


def _comparison(live_hits: list[bool], cand_hits: list[bool]) -> dict:
    return compare(_queries("look", live_hits) + _queries("text_caption", live_hits),
                   _queries("look", cand_hits) + _queries("text_caption", cand_hits), n_resamples=500)  # fmt: skip


def test_offline_gate_passes_a_better_or_equal_candidate_and_stops_a_worse_one():
    params = GateParams(recall_margin=0.05)
    live = [i % 2 == 0 for i in range(60)]  # Recall@10 0.5
    assert offline_recall_gate(_comparison(live, [True] * 60), params).passed
    assert offline_recall_gate(_comparison(live, live), params).passed  # identical: CI [0, 0]
    worse = offline_recall_gate(_comparison(live, [i % 4 == 0 for i in range(60)]), params)  # 0.25
    assert not worse.passed and "look: Recall@10 candidate - live = -0.250" in worse.reason
    # a small drop whose interval stays within a wide margin passes; a strict margin stops it
    slight = [i % 2 == 0 and i != 0 for i in range(60)]
    assert offline_recall_gate(_comparison(live, slight), GateParams(recall_margin=0.2)).passed
    assert not offline_recall_gate(_comparison(live, slight), GateParams(recall_margin=0.0)).passed
    missing = offline_recall_gate(_comparison(live, live), GateParams(recall_tasks=("similar",)))
    assert not missing.passed and "similar: no paired queries" in missing.reason


def _record(live: list[str], shadow: list[str], shift: float = 0.0, shadow_error: bool = False) -> dict:
    layer = compare_layer([(p, 0.5) for p in live], [(p, 0.5 + shift) for p in shadow])
    return {"kind": "look", "live_error": False, "shadow_error": shadow_error, "error": None,
            "layers": {"topwear": layer}}  # fmt: skip


def test_shadow_gate_needs_enough_mirrored_queries_and_agreement_in_every_layer():
    same = [f"p{i}" for i in range(10)]
    params = GateParams(min_mirrored=20, min_overlap=0.5, min_layer_overlap=0.5, min_layer_queries=5)
    agreeing = [_record(same, same) for _ in range(20)]
    summary = shadow_summary(agreeing)
    assert summary["mirrored"] == 20 and summary["overlap"] == 1.0 and summary["layers"]["topwear"]["kendall"] == 1.0
    assert shadow_agreement_gate(summary, params).passed

    too_few = shadow_agreement_gate(shadow_summary(agreeing[:19]), params)
    assert not too_few.passed and "only 19 mirrored" in too_few.reason
    disjoint = [_record(same, [f"z{i}" for i in range(10)]) for _ in range(20)]
    low = shadow_agreement_gate(shadow_summary(disjoint), params)
    assert not low.passed and "topwear: overlap@10 0.000 < 0.5" in low.reason
    reversed_ = shadow_agreement_gate(shadow_summary([_record(same, same[::-1]) for _ in range(20)]), params)
    assert not reversed_.passed and "Kendall tau -1.000" in reversed_.reason
    shifted = shadow_agreement_gate(shadow_summary([_record(same, same, shift=0.5) for _ in range(20)]), params)
    assert not shifted.passed and "score shift +0.500" in shifted.reason


def test_error_gate_compares_the_shadow_error_rate_with_live():
    same = ["a", "b"]
    params = GateParams(max_error_increase=0.05)
    records = [_record(same, same) for _ in range(95)] + [_record(same, same, shadow_error=True) for _ in range(5)]
    assert error_rate_gate(shadow_summary(records), params).passed  # 5% <= 0% + 5%
    records.append(_record(same, same, shadow_error=True))
    failed = error_rate_gate(shadow_summary(records), params)
    assert not failed.passed and "5.9%" in failed.reason
    assert not error_rate_gate(shadow_summary([]), params).passed


def test_params_from_a_dag_param_and_the_report(tmp_path):
    assert GateParams.from_mapping({"min_mirrored": 5, "recall_tasks": ["look"]}) == GateParams(
        min_mirrored=5, recall_tasks=("look",)
    )
    with pytest.raises(ValueError, match="unknown gate parameters \\['min_overlpa'\\]"):
        GateParams.from_mapping({"min_overlpa": 0.1})
    live = [i % 2 == 0 for i in range(40)]
    same = [f"p{i}" for i in range(10)]
    decision = evaluate_gates(_comparison(live, [True] * 40), [_record(same, same)] * 10, GateParams(min_mirrored=10))
    assert decision["promote"] and [g["name"] for g in decision["gates"]] == [
        "offline_recall",
        "shadow_agreement",
        "error_rate",
    ]
    offline = {"live": {"version": "v1", "model_id": "m1", "metrics": {}}, "candidate": {"version": "v2", "model_id": "m2", "metrics": {}},
               "comparison": _comparison(live, [True] * 40)}  # fmt: skip
    page = write_rollout_report(tmp_path / "report.html", decision, offline, {"run": "r1"}).read_text()
    assert 'Model rollout: <span class="pass">promote</span>' in page and "+0.500" in page and "shadow-overlap" in page
    assert (tmp_path / "decision.json").is_file()
    metrics = (tmp_path / "rollout.prom").read_text()
    assert 'looksync_rollout_promoted{candidate="v2",live="v1"} 1.0' in metrics
    assert 'looksync_rollout_gate_passed{candidate="v2",gate="offline_recall",live="v1"} 1.0' in metrics
    assert 'looksync_rollout_recall_at_10_difference{candidate="v2",live="v1",task="look",value="difference"} 0.5' in metrics
