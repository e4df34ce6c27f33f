"""The judging report: mean opinion score (MOS) per criterion, per model and per layer, with 95 %
confidence intervals, and inter-judge agreement, laid out like the LookSync paper's Table 1
(rows: models; columns: the criteria as "mean ± CI").

Counting rules, stated once here and in docs/judging.md:
- A judge who rated the same item twice (same model, look, layer, product) counts once, with the
  latest rating; every rating stays in the table.
- The interval is Student's t on the item ratings: mean ± t(0.975, n-1) · s / sqrt(n).
- Agreement is Krippendorff's alpha (interval metric, ordinal beside it) per criterion, over the
  items that at least two judges rated.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from looksync.quality.judging.ratings import CRITERIA, Rating
from looksync.quality.judging.stats import krippendorff_alpha, mean_ci

AGREEMENT_MEASURE = "Krippendorff's alpha"
AGREEMENT_METRICS = ("interval", "ordinal")


def latest_per_judge(ratings: Iterable[Rating]) -> list[Rating]:
    """One rating per (judge, item): the latest (by created_at, then id)."""
    latest: dict[tuple, Rating] = {}
    for rating in ratings:
        key = (rating.judge_id, *rating.item_key)
        held = latest.get(key)
        if held is None or _order(rating) >= _order(held):
            latest[key] = rating
    return sorted(latest.values(), key=_order)


def _order(rating: Rating) -> tuple:
    return (rating.created_at or datetime.min.replace(tzinfo=UTC), rating.id or 0)


def _criteria_stats(ratings: list[Rating], confidence: float) -> dict[str, dict]:
    return {
        c: mean_ci([r.scores[c] for r in ratings if r.scores.get(c) is not None], confidence).to_json()
        for c in CRITERIA
    }


def agreement(ratings: Iterable[Rating]) -> dict[str, Any]:
    """Krippendorff's alpha per criterion over items rated by two or more judges."""
    per_item: dict[tuple, dict[str, Rating]] = defaultdict(dict)
    for r in ratings:
        per_item[r.item_key][r.judge_id] = r
    shared = {item: judges for item, judges in per_item.items() if len(judges) >= 2}
    result: dict[str, Any] = {
        "measure": AGREEMENT_MEASURE,
        "metrics": list(AGREEMENT_METRICS),
        "items": len(shared),
        "judges": len({j for judges in shared.values() for j in judges}),
        "criteria": {},
    }
    for c in CRITERIA:
        units = {
            item: {j: r.scores[c] for j, r in judges.items() if r.scores.get(c) is not None}
            for item, judges in shared.items()
        }
        pairable = sum(1 for values in units.values() if len(values) >= 2)
        result["criteria"][c] = {
            "items": pairable,
            **{metric: krippendorff_alpha(units, metric) for metric in AGREEMENT_METRICS},
        }
    return result


def build_report(ratings: Iterable[Rating], confidence: float = 0.95) -> dict[str, Any]:
    """The report as JSON-ready data (see the module docstring for the counting rules)."""
    stored = list(ratings)
    used = latest_per_judge(stored)
    by_model: dict[str, list[Rating]] = defaultdict(list)
    by_layer: dict[tuple[str, str], list[Rating]] = defaultdict(list)
    for r in used:
        by_model[r.model_id].append(r)
        by_layer[(r.model_id, r.layer)].append(r)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "criteria": list(CRITERIA),
        "confidence": confidence,
        "interval": "student-t",
        "n_ratings_stored": len(stored),
        "n_ratings": len(used),
        "n_judges": len({r.judge_id for r in used}),
        "models": [
            {
                "model_id": model_id,
                "n": len(rs),
                "n_judges": len({r.judge_id for r in rs}),
                "n_looks": len({r.look_key for r in rs}),
                "index_versions": sorted({r.index_version for r in rs if r.index_version}),
                "criteria": _criteria_stats(rs, confidence),
            }
            for model_id, rs in sorted(by_model.items())
        ],
        "layers": [
            {"model_id": model_id, "layer": layer, "n": len(rs), "criteria": _criteria_stats(rs, confidence)}
            for (model_id, layer), rs in sorted(by_layer.items())
        ],
        "agreement": agreement(used),
    }


def format_cell(stats: dict) -> str:
    """'4.20 ± 0.31' (or '4.00' with one rating, '-' with none)."""
    if not stats or stats.get("mean") is None:
        return "-"
    if stats.get("ci95") is None:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} ± {stats['ci95']:.2f}"


def _alpha(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rows(report: dict) -> tuple[list[str], list[list[str]], list[list[str]]]:
    header = ["model", "n", *CRITERIA]
    models = [[m["model_id"], str(m["n"]), *(format_cell(m["criteria"][c]) for c in CRITERIA)] for m in report["models"]]
    layers = [
        [f"{row['model_id']} / {row['layer']}", str(row["n"]), *(format_cell(row["criteria"][c]) for c in CRITERIA)]
        for row in report["layers"]
    ]
    return header, models, layers


def format_table(report: dict) -> str:
    """The report as plain text: the MOS table, the per-layer table, then agreement."""
    header, models, layers = _rows(report)
    widths = [max(len(row[i]) for row in [header, *models, *layers]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))

    pct = round(report["confidence"] * 100)
    out = [f"Mean opinion score (1-5), mean ± {pct}% CI; {report['n_ratings']} ratings by {report['n_judges']} judge(s)",
           line(header), line(["-" * w for w in widths]), *map(line, models)]  # fmt: skip
    if layers:
        out += ["", "Per layer", *map(line, layers)]
    ag = report["agreement"]
    out += ["", f"Agreement ({ag['measure']}, interval / ordinal) over {ag['items']} item(s) rated by >= 2 judges"]
    out += [
        f"  {c}: {_alpha(v['interval'])} / {_alpha(v['ordinal'])} ({v['items']} items)" for c, v in ag["criteria"].items()
    ]
    return "\n".join(out)


def render_html(report: dict) -> str:
    """A standalone HTML page of the report (every value escaped)."""
    header, models, layers = _rows(report)
    e = html.escape

    def table(rows: list[list[str]], first: str) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in [first, *header[1:]])
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    ag = report["agreement"]
    agreement_rows = "".join(
        f"<tr><td>{e(c)}</td><td>{_alpha(v['interval'])}</td><td>{_alpha(v['ordinal'])}</td><td>{v['items']}</td></tr>"
        for c, v in ag["criteria"].items()
    )
    pct = round(report["confidence"] * 100)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>LookSync judging report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child{text-align:left}</style>"
        f"</head><body><h1>Mean opinion score</h1><p>1-5, mean ± {pct}% confidence interval (Student t); "
        f"{report['n_ratings']} ratings by {report['n_judges']} judge(s).</p>"
        + table(models, "model")
        + "<h2>Per layer</h2>" + table(layers, "model / layer")
        + f"<h2>Agreement</h2><p>{e(ag['measure'])} over {ag['items']} item(s) rated by at least two judges.</p>"
        "<table><thead><tr><th>criterion</th><th>interval</th><th>ordinal</th><th>items</th></tr></thead>"
        f"<tbody>{agreement_rows}</tbody></table></body></html>"
    )
