"""The HTML report of an evaluation run: per-layer bar charts (inline SVG), the comparison table,
and a few looks with each config's top results as thumbnails (data URIs, so the file stands alone)."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Any

from looksync.quality.evaluation.scoring import ALL_LAYERS, COMPARED_METRICS, METRICS

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def bars_svg(title: str, groups: list[str], series: dict[str, list[float]], chart_id: str) -> str:
    """Grouped vertical bars on a 0..1 axis: one group per layer, one bar per config."""
    width_per_group, bar_gap, height, top, left = 24 * max(1, len(series)) + 28, 4, 220, 30, 40
    width = left + width_per_group * len(groups) + 20
    plot_h = height - top - 50
    parts = [f'<svg id="{escape(chart_id)}" class="layer-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']  # fmt: skip
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{tick:.2f}</text>')  # fmt: skip
    bar_w = (width_per_group - 28) / max(1, len(series))
    for g, group in enumerate(groups):
        x0 = left + g * width_per_group + 14
        for s, (name, values) in enumerate(series.items()):
            value = values[g]
            h = plot_h * max(0.0, min(1.0, value))
            x = x0 + s * bar_w
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - bar_gap:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}" data-layer="{escape(group)}" data-config="{escape(name)}" '
                f'data-value="{value:.4f}"><title>{escape(name)} {escape(group)}: {value:.3f}</title></rect>'
            )
        parts.append(f'<text x="{x0 + (width_per_group - 28) / 2:.1f}" y="{top + plot_h + 16}" font-size="11" '
                     f'text-anchor="middle">{escape(group)}</text>')  # fmt: skip
    for s, name in enumerate(series):
        x = left + s * 120
        parts.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="{height - 9}" font-size="11">{escape(name)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def thumbnail_uri(path: Path, size: int = 72) -> str:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _metrics_table(summary: dict[str, Any], task: str) -> str:
    configs = summary["configs"]
    layers = sorted({layer for c in configs.values() for layer in c["metrics"].get(task, {})},
                    key=lambda x: (x == ALL_LAYERS, x))  # fmt: skip
    head = "".join(f"<th>{escape(m)}</th>" for m in METRICS)
    rows = []
    for name, c in configs.items():
        for layer in layers:
            entry = c["metrics"].get(task, {}).get(layer)
            if entry is None:
                continue
            cells = "".join(
                f'<td title="95% CI {v["ci_low"]:.3f}-{v["ci_high"]:.3f}">{v["mean"]:.3f}</td>'
                for v in (entry[m] for m in METRICS)
            )
            chance = entry.get("chance_recall@10")
            chance_cell = f"<td>{chance:.3f} ({entry['candidates_min']}+)</td>" if chance is not None else "<td></td>"
            rows.append(f"<tr><td>{escape(name)}</td><td>{escape(layer)}</td><td>{entry['queries']}</td>{chance_cell}{cells}</tr>")
    return (f"<table><tr><th>config</th><th>layer</th><th>queries</th><th>chance Recall@10 (min candidates)</th>{head}</tr>"
            f"{''.join(rows)}</table>")  # fmt: skip


def _comparison_table(summary: dict[str, Any]) -> str:
    rows = []
    for label, tasks in summary["comparisons"].items():
        for task, layers in tasks.items():
            if not isinstance(layers, dict):
                continue
            for layer, entry in layers.items():
                cells = "".join(
                    f"<td>{v['difference']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]</td>"
                    for v in (entry[m] for m in COMPARED_METRICS)
                )
                rows.append(f"<tr><td>{escape(label)}</td><td>{escape(task)}</td><td>{escape(layer)}</td>"
                            f"<td>{entry['queries']}</td>{cells}</tr>")  # fmt: skip
    if not rows:
        return "<p>One configuration only: nothing to compare.</p>"
    head = "".join(f"<th>&Delta; {escape(m)} [95% CI]</th>" for m in COMPARED_METRICS)
    return f"<table><tr><th>comparison</th><th>task</th><th>layer</th><th>queries</th>{head}</tr>{''.join(rows)}</table>"


def _framing_table(summary: dict[str, Any]) -> str:
    """Recall@10 (and queries) per framing value, a column per config and look task."""
    from looksync.quality.evaluation.scoring import FRAMING_KEYS

    columns = [(name, task) for name, c in summary["configs"].items() for task in c.get("framing", {})]
    if not columns:
        return "<p>No look queries.</p>"
    rows = []
    for key in FRAMING_KEYS:
        values = sorted({v for name, task in columns for v in summary["configs"][name]["framing"][task].get(key, {})})
        for value in values:
            cells = []
            for name, task in columns:
                entry = summary["configs"][name]["framing"][task].get(key, {}).get(value)
                cells.append(f"<td>{entry['recall@10']:.3f} <small>({entry['queries']})</small></td>" if entry else "<td></td>")
            rows.append(f"<tr><td>{escape(key)}</td><td>{escape(value)}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(name)}<br>{escape(task)}</th>" for name, task in columns)
    return (f'<table class="framing"><tr><th>framing</th><th>value</th>{head}</tr>{"".join(rows)}</table>'
            "<p>Recall@10 (queries) per value of each framing key; <code>fixed</code>: looks on the fixed frame.</p>")  # fmt: skip


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _detection_table(summary: dict[str, Any]) -> str:
    """No-hint detection: gender accuracy and presence precision/recall, pooled and per layer."""
    blocks = []
    for name, c in summary["configs"].items():
        detection = c.get("detection")
        if not detection:
            continue
        rows = []
        groups = [("all", "", detection["all"])]
        groups += [(key, value, scores) for key in detection if key != "all" for value, scores in detection[key].items()]
        for key, value, scores in groups:
            p = scores["presence"]
            rows.append(f"<tr><td>{escape(key)}</td><td>{escape(value)}</td><td>{scores['looks']}</td>"
                        f"<td>{_fmt(scores['gender_accuracy'])}</td><td>{_fmt(scores.get('gender_used_share'))}</td>"
                        f"<td>{_fmt(scores.get('gender_used_accuracy'))}</td><td>{_fmt(p['precision'])}</td><td>{_fmt(p['recall'])}</td>"
                        f"<td>{p['tp']}/{p['fp']}/{p['fn']}</td></tr>")  # fmt: skip
        layer_rows = "".join(
            f"<tr><td>{escape(layer)}</td><td>{_fmt(e['precision'])}</td><td>{_fmt(e['recall'])}</td>"
            f"<td>{e['tp']}/{e['fp']}/{e['fn']}</td></tr>"
            for layer, e in detection["all"]["layers"].items()
        )
        blocks.append(
            f"<h3>{escape(name)}</h3><table><tr><th>framing</th><th>value</th><th>looks</th><th>gender accuracy</th>"
            f"<th>gender filtered (share)</th><th>right when filtered</th><th>presence precision</th><th>presence recall</th><th>TP/FP/FN</th></tr>{''.join(rows)}</table>"
            f"<table><tr><th>layer</th><th>precision</th><th>recall</th><th>TP/FP/FN</th></tr>{layer_rows}</table>"
        )
    return "".join(blocks) or "<p>No no-hint looks in this run.</p>"


def _looks_section(run: Any, truth: Any) -> str:
    look_ids = sorted(truth.looks)[: run.summary["options"]["report_looks"]]
    blocks = []
    for look_id in look_ids:
        expected = truth.looks[look_id]
        look_img = thumbnail_uri(Path(truth.manifest.looks_dir) / f"{look_id}.png", size=200)
        rows = []
        for layer, planted in sorted(expected["products"].items()):
            cells = []
            if planted in truth.images:
                cells.append(f'<td class="planted"><img src="{thumbnail_uri(truth.images[planted])}" alt="{escape(planted)}">'
                             f"<br>planted</td>")  # fmt: skip
            for name, scored in run.queries.items():
                q = next((q for q in scored if q.task == "look" and q.query_id == f"{look_id}:{layer}"), None)
                if q is None:
                    continue
                thumbs = []
                for rank, r in enumerate(q.results[:5], 1):
                    pid = r["product_id"]
                    img = f'<img src="{thumbnail_uri(truth.images[pid])}" alt="{escape(pid)}">' if pid in truth.images else escape(pid)
                    mark = ' class="hit"' if pid == planted else ""
                    thumbs.append(f"<span{mark} title=\"{escape(r.get('title') or pid)}\">{img}<br>#{rank}</span>")
                cells.append(f"<td><b>{escape(name)}</b> <small>{escape(q.query)}</small><br>{''.join(thumbs)}</td>")
            rows.append(f"<tr><th>{escape(layer)}</th>{''.join(cells)}</tr>")
        blocks.append(
            f'<div class="look"><h3>{escape(look_id)} ({escape(expected["market"])}, {escape(expected["gender"])})</h3>'
            f'<img class="look-image" src="{look_img}" alt="{escape(look_id)}"><table>{"".join(rows)}</table></div>'
        )
    return "".join(blocks)


def _grouping_section(summary: dict[str, Any]) -> str:
    grouping = summary.get("grouping") or {}
    if "skipped" in grouping or not grouping:
        return f"<p>{escape(grouping.get('skipped', 'not measured'))}</p>"
    rows = "".join(
        f"<tr><td>{escape(slug)}</td><td>{g['precision']:.4f}</td><td>{g['recall']:.4f}</td><td>{g['grouped_pairs']}</td>"
        f"<td>{g['true_pairs']}</td><td>{g['items_listed_twice_or_more']}</td><td>{g['products']}</td></tr>"
        for slug, g in grouping.items()
    )
    return ("<table><tr><th>index</th><th>precision</th><th>recall</th><th>grouped pairs</th><th>true pairs</th>"
            f"<th>items at several shops</th><th>products</th></tr>{rows}</table>")  # fmt: skip


def write_report(run: Any, truth: Any) -> Path:
    summary = run.summary
    names = list(summary["configs"])
    charts = []
    for task in ("look", "look_visible", "look_nohint", "look_nohint_visible", "text_caption", "text_title", "similar"):
        layers = sorted({layer for c in summary["configs"].values() for layer in c["metrics"].get(task, {})} - {ALL_LAYERS})
        if not layers:
            continue
        groups = [*layers, ALL_LAYERS]
        # the configs that ran the task (regions=truth skips look_nohint)
        series = {n: [summary["configs"][n]["metrics"][task].get(g, {}).get("recall@10", {}).get("mean", 0.0)
                      for g in groups] for n in names if task in summary["configs"][n]["metrics"]}  # fmt: skip
        charts.append(bars_svg(f"{task}: Recall@10 per layer", groups, series, f"chart-{task}-recall10"))
    notes = "".join(
        f"<li><b>{escape(task)}</b>: {escape(info['skipped'])}</li>"
        for task, info in summary["tasks"].items() if "skipped" in info
    ) + "".join(
        f"<li><b>{escape(task)}</b> ({escape(name)}): {escape(why)}</li>"
        for name, c in summary["configs"].items() for task, why in c.get("skipped", {}).items()
    )  # fmt: skip
    tables = "".join(
        f"<h3>{escape(task)}</h3>{_metrics_table(summary, task)}"
        for task in ("look", "look_visible", "look_nohint", "look_nohint_visible", "text_caption", "text_title", "similar")
        if any(task in c["metrics"] for c in summary["configs"].values())
    )
    config_rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{escape(c['model_id'])}</td><td>{escape(c['config']['rerank'])}</td>"
        f"<td>{escape(c['config']['generator'])}</td><td>{escape(c['index'])}</td><td>{c['seconds']}</td></tr>"
        for n, c in summary["configs"].items()
    )
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>LookSync eval {escape(run.run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}} img{{border:1px solid #eee}}
.hit img{{outline:3px solid #59a14f}} .look-image{{float:left;margin-right:1em}} .look{{clear:both;padding-top:1em}}
span{{display:inline-block;text-align:center;margin:2px;font-size:10px}}</style></head>
<body><h1>LookSync offline evaluation</h1>
<p>run <code>{escape(run.run_id)}</code>, sample {escape(summary["sample"]["root"])} ({summary["sample"]["products"]}
products, {summary["sample"]["looks"]} looks), baseline <b>{escape(summary["baseline"])}</b>, {summary["seconds"]} s.
Machine-readable figures: <a href="eval.json">eval.json</a>, per query: <a href="queries.jsonl">queries.jsonl</a>.</p>
<table><tr><th>config</th><th>model id</th><th>rerank</th><th>generator</th><th>index</th><th>seconds</th></tr>{config_rows}</table>
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Recall@10 per layer</h2>{"".join(charts)}
<h2>Product groups: one item at several shops (pairwise, against the sample's groups.json)</h2>{_grouping_section(summary)}
<h2>Looks by framing</h2>{_framing_table(summary)}
<h2>Detection without hints (look_nohint: only the market given)</h2>{_detection_table(summary)}
<h2>Differences against {escape(summary["baseline"])} (paired bootstrap)</h2>{_comparison_table(summary)}
<h2>All metrics (hover a cell for its 95% CI)</h2>{tables}
<h2>Looks and their top results</h2>{_looks_section(run, truth)}
</body></html>
"""
    run.html_path.write_text(html, encoding="utf-8")
    return run.html_path
