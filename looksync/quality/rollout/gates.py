"""The gates a candidate model must pass before its index version is promoted: plain functions over the
evidence (the offline comparison of ``evidence.offline_comparison`` and the shadow log's records).

1. ``offline_recall``: on each gated task, Recall@10 of candidate minus live has a paired-bootstrap 95%
   interval (``looksync.metrics.paired_difference_ci``, as ``looksync eval`` uses) whose low end is at
   least ``-recall_margin``: the candidate is, with 95% confidence, not worse than live by more than the margin.
2. ``shadow_agreement``: at least ``min_mirrored`` mirrored queries were compared; their mean overlap@10
   is at least ``min_overlap``; every layer with ``min_layer_queries`` comparisons has a mean overlap of
   at least ``min_layer_overlap``, a mean Kendall tau of at least ``min_rank_correlation`` and a mean
   score shift within ``max_score_shift`` either way.
3. ``error_rate``: the share of mirrored queries the shadow failed or answered degraded is at most the
   share live answered degraded plus ``max_error_increase``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class GateParams:
    """Each gate's bound; the defaults are the ``catalog_model_rollout`` DAG's Params' defaults."""

    recall_margin: float = 0.02
    recall_tasks: tuple[str, ...] = ("look", "text_caption")
    min_mirrored: int = 200
    min_overlap: float = 0.3
    min_layer_overlap: float = 0.2
    min_layer_queries: int = 5
    min_rank_correlation: float = 0.0
    max_score_shift: float = 0.3
    max_error_increase: float = 0.01

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> GateParams:
        """From a DAG's ``gates`` Param: known keys only (an unknown one is an error naming the known)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown gate parameters {unknown}; known: {sorted(known)}")
        given = {k: tuple(v) if k == "recall_tasks" else v for k, v in values.items() if v is not None}
        return cls(**given)


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def offline_recall_gate(comparison: dict[str, Any], params: GateParams) -> GateResult:
    """``comparison``: ``looksync.quality.evaluation.compare(live, candidate)`` (task -> layer -> metric)."""
    figures, failing = {}, []
    for task in params.recall_tasks:
        entry = comparison.get(task, {}).get("all")
        if entry is None:
            failing.append(f"{task}: no paired queries")
            continue
        recall = entry["recall@10"]
        figures[task] = {"queries": entry["queries"], **recall}
        if recall["ci_low"] < -params.recall_margin:
            failing.append(
                f"{task}: Recall@10 candidate - live = {recall['difference']:+.3f}, 95% CI "
                f"[{recall['ci_low']:+.3f}, {recall['ci_high']:+.3f}] reaches below -{params.recall_margin}"
            )
    if failing:
        return GateResult("offline_recall", False, "; ".join(failing), figures)
    return GateResult("offline_recall", True, f"Recall@10 not below live by more than {params.recall_margin} "
                      f"at 95% confidence on {', '.join(params.recall_tasks)}", figures)  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def shadow_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per layer and overall: comparisons, mean overlap@10, Spearman, Kendall and score shift; error shares."""
    per_layer: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for layer, figures in record.get("layers", {}).items():
            for key in ("overlap", "spearman", "kendall", "score_shift"):
                if figures.get(key) is not None:
                    per_layer[layer][key].append(float(figures[key]))
    layers = {
        layer: {"queries": len(values["overlap"]), **{k: _mean(values[k]) for k in ("overlap", "spearman", "kendall", "score_shift")}}
        for layer, values in sorted(per_layer.items())
    }  # fmt: skip
    n = len(records)
    return {
        "mirrored": n,
        "overlap": _mean([v for values in per_layer.values() for v in values["overlap"]]),
        "layers": layers,
        "shadow_error_rate": sum(bool(r.get("shadow_error")) for r in records) / n if n else None,
        "live_error_rate": sum(bool(r.get("live_error")) for r in records) / n if n else None,
        "errors": sorted({r["error"] for r in records if r.get("error")})[:10],
    }


def shadow_agreement_gate(summary: dict[str, Any], params: GateParams) -> GateResult:
    """``summary``: ``shadow_summary`` of the shadow log's records."""
    figures = {k: summary[k] for k in ("mirrored", "overlap", "layers")}
    if summary["mirrored"] < params.min_mirrored:
        return GateResult("shadow_agreement", False,
                          f"only {summary['mirrored']} mirrored queries compared; the gate needs {params.min_mirrored}", figures)  # fmt: skip
    failing = []
    if summary["overlap"] is None or summary["overlap"] < params.min_overlap:
        failing.append(f"mean overlap@10 {summary['overlap']} < {params.min_overlap}")
    for layer, f in summary["layers"].items():
        if f["queries"] < params.min_layer_queries:
            continue
        if f["overlap"] < params.min_layer_overlap:
            failing.append(f"{layer}: overlap@10 {f['overlap']:.3f} < {params.min_layer_overlap}")
        if f["kendall"] is not None and f["kendall"] < params.min_rank_correlation:
            failing.append(f"{layer}: Kendall tau {f['kendall']:.3f} < {params.min_rank_correlation}")
        if f["score_shift"] is not None and abs(f["score_shift"]) > params.max_score_shift:
            failing.append(f"{layer}: score shift {f['score_shift']:+.3f} beyond ±{params.max_score_shift}")
    if failing:
        return GateResult("shadow_agreement", False, "; ".join(failing), figures)
    return GateResult("shadow_agreement", True, f"{summary['mirrored']} mirrored queries: mean overlap@10 "
                      f"{summary['overlap']:.3f}, every layer within bounds", figures)  # fmt: skip


def error_rate_gate(summary: dict[str, Any], params: GateParams) -> GateResult:
    shadow, live = summary["shadow_error_rate"], summary["live_error_rate"]
    figures = {"shadow_error_rate": shadow, "live_error_rate": live, "errors": summary["errors"]}
    if shadow is None:
        return GateResult("error_rate", False, "no mirrored queries: no error rate to compare", figures)
    if shadow > live + params.max_error_increase:
        return GateResult("error_rate", False, f"shadow failed or degraded on {shadow:.1%} of mirrored queries, "
                          f"live on {live:.1%} (allowed increase {params.max_error_increase:.1%})", figures)  # fmt: skip
    return GateResult("error_rate", True, f"shadow errors {shadow:.1%} vs live {live:.1%}", figures)


def evaluate_gates(comparison: dict[str, Any], records: list[dict[str, Any]], params: GateParams) -> dict[str, Any]:
    """Every gate over the evidence: {"promote": all passed, "gates": [GateResult as dict], "params", "shadow"}."""
    summary = shadow_summary(records)
    results = [
        offline_recall_gate(comparison, params),
        shadow_agreement_gate(summary, params),
        error_rate_gate(summary, params),
    ]
    return {
        "promote": all(r.passed for r in results),
        "gates": [asdict(r) for r in results],
        "params": asdict(params),
        "shadow": summary,
    }
