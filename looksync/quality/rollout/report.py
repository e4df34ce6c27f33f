"""The rollout's evidence as one standalone HTML page: the decision, each gate with its reason, the offline
comparison (Recall@10 of live and candidate with the paired interval of the difference) and the shadow
comparisons per layer (overlap@10 as bars, rank correlations, score shift); and the same figures as
Prometheus metrics in a text file (``rollout.prom``, for node-exporter's textfile collector)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from looksync.quality.evaluation.report import bars_svg

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.pass{color:#1a7f37;font-weight:bold}
.fail{color:#c62828;font-weight:bold}code{background:#f4f4f4;padding:1px 4px}"""


def _num(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _gates_table(decision: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{escape(g["name"])}</td><td class="{"pass" if g["passed"] else "fail"}">'
        f"{'pass' if g['passed'] else 'FAIL'}</td><td>{escape(g['reason'])}</td></tr>"
        for g in decision["gates"]
    )
    params = ", ".join(f"<code>{escape(k)}={escape(str(v))}</code>" for k, v in decision["params"].items())
    return (
        f"<h2>Gates</h2><table><tr><th>gate</th><th>result</th><th>why</th></tr>{rows}</table><p>Bounds: {params}</p>"
    )


def _offline_table(offline: dict[str, Any]) -> str:
    rows = []
    for task, layers in sorted(offline["comparison"].items()):
        if not isinstance(layers, dict) or "all" not in layers:
            continue
        diff = layers["all"]["recall@10"]
        live = offline["live"]["metrics"].get(task, {}).get("all", {}).get("recall@10", {}).get("mean")
        cand = offline["candidate"]["metrics"].get(task, {}).get("all", {}).get("recall@10", {}).get("mean")
        rows.append(f"<tr><td>{escape(task)}</td><td>{layers['all']['queries']}</td><td>{_num(live)}</td>"
                    f"<td>{_num(cand)}</td><td>{_num(diff['difference'], True)} [{_num(diff['ci_low'], True)}, "
                    f"{_num(diff['ci_high'], True)}]</td></tr>")  # fmt: skip
    return (
        "<h2>Offline evaluation</h2>"
        f"<p>live <code>{escape(offline['live']['version'])}</code> ({escape(offline['live']['model_id'])}) vs candidate "
        f"<code>{escape(offline['candidate']['version'])}</code> ({escape(offline['candidate']['model_id'])})</p>"
        "<table><tr><th>task</th><th>queries</th><th>live Recall@10</th><th>candidate Recall@10</th>"
        f"<th>difference [95% CI]</th></tr>{''.join(rows)}</table>"
    )


def _shadow_section(shadow: dict[str, Any]) -> str:
    layers = shadow["layers"]
    rows = "".join(
        f"<tr><td>{escape(layer)}</td><td>{f['queries']}</td><td>{_num(f['overlap'])}</td><td>{_num(f['spearman'], True)}</td>"
        f"<td>{_num(f['kendall'], True)}</td><td>{_num(f['score_shift'], True)}</td></tr>"
        for layer, f in layers.items()
    )
    chart = bars_svg("overlap@10 of shadow with live", list(layers), {"overlap": [f["overlap"] or 0.0 for f in layers.values()]},
                     "shadow-overlap") if layers else ""  # fmt: skip
    return (
        f"<h2>Shadow comparisons</h2><p>{shadow['mirrored']} mirrored queries; mean overlap@10 {_num(shadow['overlap'])}; "
        f"errors: shadow {_num(shadow['shadow_error_rate'])}, live {_num(shadow['live_error_rate'])}</p>{chart}"
        "<table><tr><th>layer</th><th>queries</th><th>overlap@10</th><th>Spearman</th><th>Kendall</th>"
        f"<th>score shift</th></tr>{rows}</table>"
    )


def write_rollout_report(
    path: Path, decision: dict[str, Any], offline: dict[str, Any], context: dict[str, Any]
) -> Path:
    """Write the page (and ``decision.json`` beside it); returns the page's path."""
    verdict = "promote" if decision["promote"] else "stop: live left as it was"
    head = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in context.items())
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Model rollout: {escape(verdict)}</title>"
        f'<style>{_STYLE}</style></head><body><h1>Model rollout: <span class="{"pass" if decision["promote"] else "fail"}">'
        f"{escape(verdict)}</span></h1><table>{head}</table>{_gates_table(decision)}{_offline_table(offline)}"
        f"{_shadow_section(decision['shadow'])}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    (path.parent / "decision.json").write_text(
        json.dumps({**decision, "context": context}, indent=2, default=str), encoding="utf-8"
    )
    write_rollout_metrics(path.parent / "rollout.prom", decision, offline)
    return path


def write_rollout_metrics(path: Path, decision: dict[str, Any], offline: dict[str, Any]) -> Path:
    """The decision, each gate, the Recall@10 differences and the shadow figures as gauges."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    r = CollectorRegistry()
    labels = {"candidate": offline["candidate"]["version"], "live": offline["live"]["version"]}
    names = list(labels)
    promoted = Gauge("looksync_rollout_promoted", "1: every gate passed", names, registry=r)
    promoted.labels(**labels).set(int(decision["promote"]))
    gate = Gauge("looksync_rollout_gate_passed", "1: the gate passed", [*names, "gate"], registry=r)
    for g in decision["gates"]:
        gate.labels(**labels, gate=g["name"]).set(int(g["passed"]))
    recall = Gauge("looksync_rollout_recall_at_10_difference", "candidate - live, with the 95% interval",
                   [*names, "task", "value"], registry=r)  # fmt: skip
    for task, layers in offline["comparison"].items():
        if isinstance(layers, dict) and "all" in layers:
            for value in ("difference", "ci_low", "ci_high"):
                recall.labels(**labels, task=task, value=value).set(layers["all"]["recall@10"][value])
    shadow = decision["shadow"]
    mirrored = Gauge("looksync_rollout_shadow_mirrored", "mirrored queries compared", names, registry=r)
    mirrored.labels(**labels).set(shadow["mirrored"])
    overlap = Gauge("looksync_rollout_shadow_overlap_at_10", "mean overlap@10 per layer", [*names, "layer"], registry=r)
    for layer, figures in shadow["layers"].items():
        if figures["overlap"] is not None:
            overlap.labels(**labels, layer=layer).set(figures["overlap"])
    write_to_textfile(str(path), r)
    return path
