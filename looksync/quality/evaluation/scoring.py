"""Scoring of evaluation queries: per-query metrics, per-task/per-layer means, paired comparisons.

A query is scored from its ranked result keys and its relevant keys; every number comes from
``looksync.metrics`` (nothing is re-implemented here). Keys are product ids, or equivalence-class keys
where several products are equally right (e.g. every product a caption describes): the ranked list is
then collapsed to the first occurrence of each key, so one class counts once and NDCG stays <= 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from looksync.metrics import (
    bootstrap_ci,
    ndcg_at_k,
    paired_difference_ci,
    recall_at_k,
    reciprocal_rank,
    violation_rate,
)

METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "violation_rate")
# metrics whose config-vs-config differences get a paired bootstrap interval
COMPARED_METRICS = ("recall@1", "recall@10", "mrr", "ndcg@10", "violation_rate")
ALL_LAYERS = "all"


@dataclass
class ScoredQuery:
    task: str
    layer: str
    query_id: str
    query: str
    ranked: list[str]  # result keys, best first
    relevant: list[str]
    metrics: dict[str, float]
    results: list[dict[str, Any]] = field(default_factory=list)  # product summaries, for the report
    candidates: int | None = None  # catalog products passing the query's filters (sets the chance level)


def collapse(keys: Sequence[str]) -> list[str]:
    """First occurrence of each key, order kept."""
    seen: set[str] = set()
    out = []
    for key in keys:
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def score_query(
    ranked_keys: Sequence[str],
    relevant: set[str],
    results: Sequence[Mapping[str, Any]],
    allowed: Any,
) -> dict[str, float]:
    """Recall@1/5/10, MRR, NDCG@10 (binary relevance) and the share of ``results`` failing ``allowed``."""
    if not relevant:
        raise ValueError("a scored query needs at least one relevant key")
    ranked = collapse(ranked_keys)
    return {
        "recall@1": recall_at_k(ranked, relevant, 1),
        "recall@5": recall_at_k(ranked, relevant, 5),
        "recall@10": recall_at_k(ranked, relevant, 10),
        "mrr": reciprocal_rank(ranked, relevant),
        "ndcg@10": ndcg_at_k(ranked, dict.fromkeys(relevant, 1.0), 10),
        "violation_rate": violation_rate(list(results), allowed),
    }


def summarise(queries: Sequence[ScoredQuery], n_resamples: int = 1000) -> dict[str, dict[str, Any]]:
    """task -> layer (and ``all``) -> {queries, metric: {mean, ci_low, ci_high}}."""
    groups: dict[tuple[str, str], list[ScoredQuery]] = defaultdict(list)
    for q in queries:
        groups[(q.task, q.layer)].append(q)
        groups[(q.task, ALL_LAYERS)].append(q)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, layer), members in sorted(groups.items()):
        entry: dict[str, Any] = {"queries": len(members)}
        pools = [q.candidates for q in members if q.candidates]
        if pools:  # Recall@10 a random ranking would get with one relevant item among the candidates
            entry["chance_recall@10"] = round(sum(min(1.0, 10 / c) for c in pools) / len(pools), 4)
            entry["candidates_min"] = min(pools)
        for metric in METRICS:
            values = [q.metrics[metric] for q in members]
            mean, low, high = bootstrap_ci(values, n_resamples=n_resamples)
            entry[metric] = {"mean": round(mean, 4), "ci_low": round(low, 4), "ci_high": round(high, 4)}
        out[task][layer] = entry
    return dict(out)


def compare(
    baseline: Sequence[ScoredQuery], other: Sequence[ScoredQuery], n_resamples: int = 1000
) -> dict[str, dict[str, Any]]:
    """other - baseline on the same queries (matched by task and query id), with a paired bootstrap
    interval, per task and layer. Queries present in only one run are left out and counted."""
    base = {(q.task, q.query_id): q for q in baseline}
    pairs: dict[tuple[str, str], list[tuple[ScoredQuery, ScoredQuery]]] = defaultdict(list)
    unmatched = 0
    for q in other:
        b = base.get((q.task, q.query_id))
        if b is None:
            unmatched += 1
            continue
        pairs[(q.task, q.layer)].append((b, q))
        pairs[(q.task, ALL_LAYERS)].append((b, q))
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, layer), members in sorted(pairs.items()):
        entry: dict[str, Any] = {"queries": len(members)}
        for metric in COMPARED_METRICS:
            a = [b.metrics[metric] for b, _ in members]
            b_values = [o.metrics[metric] for _, o in members]
            diff, low, high = paired_difference_ci(a, b_values, n_resamples=n_resamples)
            entry[metric] = {"difference": round(diff, 4), "ci_low": round(low, 4), "ci_high": round(high, 4)}
        out[task][layer] = entry
    result = dict(out)
    if unmatched:
        result["unmatched_queries"] = unmatched  # type: ignore[assignment]
    return result


# ---- breakdown by framing and no-hint detection -----------------------------------------------------

# framing keys of the sample's varied looks (``looksync.sample.framing``); fixed looks count as "fixed"
FRAMING_KEYS = ("variant", "aspect", "scale", "crop", "mirrored", "pose", "style", "background", "novel")
BREAKDOWN_METRICS = ("recall@1", "recall@10", "mrr")
SCALE_BUCKETS = ((0.6, "<0.6"), (0.8, "0.6-0.8"), (float("inf"), ">=0.8"))


def framing_value(framing: Mapping[str, Any] | None, key: str) -> str:
    """The breakdown value of one framing key: ``fixed`` for a look on the fixed frame (or one whose
    ground truth predates framings), the scale as a bucket, everything else as text."""
    if not framing or framing.get("variant", "fixed") == "fixed":
        return "fixed"
    value = framing.get(key)
    if key == "scale" and value is not None:
        return next(label for bound, label in SCALE_BUCKETS if float(value) < bound)
    return str(value).lower() if isinstance(value, bool) else str(value)


def look_of(query_id: str) -> str:
    """The look id of a look query id (``<look_id>:<layer>``)."""
    return query_id.rsplit(":", 1)[0]


def framing_breakdown(
    queries: Sequence[ScoredQuery], framings: Mapping[str, Mapping[str, Any] | None], tasks: Sequence[str]
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """task -> framing key -> value -> {queries, looks, recall@1, recall@10, mrr (means)} over the look
    queries of ``tasks``; ``framings`` maps look id -> its ground-truth framing."""
    groups: dict[tuple[str, str, str], list[ScoredQuery]] = defaultdict(list)
    for q in queries:
        if q.task not in tasks:
            continue
        framing = framings.get(look_of(q.query_id))
        for key in FRAMING_KEYS:
            groups[(q.task, key, framing_value(framing, key))].append(q)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for (task, key, value), members in sorted(groups.items()):
        entry: dict[str, Any] = {"queries": len(members), "looks": len({look_of(q.query_id) for q in members})}
        for metric in BREAKDOWN_METRICS:
            entry[metric] = round(sum(q.metrics[metric] for q in members) / len(members), 4)
        out.setdefault(task, {}).setdefault(key, {})[value] = entry
    return out


@dataclass
class Detection:
    """What a no-hint look search found against what the look holds."""

    look_id: str
    expected: set[str]  # planted layers in frame
    found: set[str]  # layers the response searched
    gender: str
    found_gender: str | None  # the gender the search read from the look (used or not)
    ignored: set[str] = field(default_factory=set)  # planted but mostly out of frame: finding them is no error
    framing: dict[str, Any] | None = None
    gender_used: bool = True  # the read gender filtered the search (confident enough)
    hidden: set[str] = field(default_factory=set)  # planted in frame but under half in view (``visible`` < 0.5)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def presence_scores(detections: Sequence[Detection]) -> dict[str, Any]:
    """Per-layer and pooled (micro) presence precision/recall, and gender accuracy, of no-hint looks.
    A layer found but not planted is a false positive; planted in frame but not found, a false negative;
    ``ignored`` layers count neither way. Precision or recall with nothing to divide by is ``None``.
    ``presence_visible``: the same over garments at least half in view (``hidden`` ones count neither way),
    the set the look Recall@10 target is stated over."""

    def count(visible_only: bool) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
        for d in detections:
            skip = d.ignored | d.hidden if visible_only else d.ignored
            for layer in d.found - skip:
                counts[layer]["tp" if layer in d.expected else "fp"] += 1
            for layer in d.expected - d.found - skip:
                counts[layer]["fn"] += 1
        tp, fp, fn = (sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn"))
        return counts, {"tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)}

    counts, pooled = count(visible_only=False)
    layers = {}
    for layer, c in sorted(counts.items()):
        layers[layer] = {**c, "precision": _ratio(c["tp"], c["tp"] + c["fp"]), "recall": _ratio(c["tp"], c["tp"] + c["fn"])}
    right = sum(d.found_gender == d.gender for d in detections)
    used = [d for d in detections if d.gender_used]
    return {
        "looks": len(detections),
        "gender_accuracy": _ratio(right, len(detections)),
        # the share of looks whose read gender filtered the search, and how often that filter was right
        "gender_used_share": _ratio(len(used), len(detections)),
        "gender_used_accuracy": _ratio(sum(d.found_gender == d.gender for d in used), len(used)),
        "presence": pooled,
        "presence_visible": count(visible_only=True)[1],
        "layers": layers,
    }


def detection_breakdown(detections: Sequence[Detection], keys: Sequence[str] = ("variant", "novel")) -> dict[str, Any]:
    """``presence_scores`` overall (``all``) and per value of each framing key in ``keys``."""
    out: dict[str, Any] = {"all": presence_scores(detections)}
    for key in keys:
        groups: dict[str, list[Detection]] = defaultdict(list)
        for d in detections:
            groups[framing_value(d.framing, key)].append(d)
        out[key] = {value: presence_scores(members) for value, members in sorted(groups.items())}
    return out
