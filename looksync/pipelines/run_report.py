"""Run reports: what one ingest run did (per feed and in total), quarantine reasons, coverage, and an
HTML page with the coverage chart (inline SVG, no plotting library needed).

Reports go to the configured object store under ``reports/<run_id>/`` (S3 when a bucket is set, else
``<data_dir>/reports``): ``report.json`` for machines, ``report.html`` for the engineer.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from looksync.catalog.attribute_mirror import MISSING_CHECKS, Coverage
from looksync.catalog.schema import Product
from looksync.catalog.taxonomy import get_taxonomy
from looksync.settings import Settings


def coverage_from_products(products: Sequence[Product], groups: dict[str, str | None]) -> Coverage:
    """The same figures as ``attributes.coverage`` computed from the product store (no Redis)."""
    taxonomy = get_taxonomy()
    by = {m: dict.fromkeys(taxonomy.layers, 0) for m in taxonomy.markets}
    missing = dict.fromkeys(MISSING_CHECKS, 0)
    by_market = {m: dict.fromkeys(MISSING_CHECKS, 0) for m in taxonomy.markets}
    for p in products:
        by[p.market][p.layer] += 1
        values = {"colours": p.colours, "pattern": p.pattern, "material": p.material, "sizes": p.sizes,
                  "group_id": groups.get(p.product_id)}  # fmt: skip
        for attribute, value in values.items():
            if not value:
                missing[attribute] += 1
                by_market[p.market][attribute] += 1
    return Coverage(len(products), by, missing, by_market)


def build_run_report(run_id: str, feeds: Sequence[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Totals over the per-feed ingest reports (``IngestReport`` as dicts) plus anything in ``extra``."""
    outcomes: Counter[str] = Counter()
    quarantine: Counter[str] = Counter()
    thumbnails: Counter[str] = Counter()
    category_sources: Counter[str] = Counter()  # rule / synonym / clip: how the products' categories were found
    for feed in feeds:
        outcomes.update(feed.get("outcomes", {}))
        quarantine.update(feed.get("quarantined", {}))
        thumbnails.update(feed.get("thumbnails", {}))
        category_sources.update(feed.get("category_sources", {}))
    report = {
        "run_id": run_id,
        "written_at": datetime.now(UTC).isoformat(),
        "feeds": list(feeds),
        "outcomes": dict(outcomes),
        "quarantine_reasons": dict(quarantine),
        "embedded": sum(f.get("embedded", 0) for f in feeds),
        "embeddings_reused": sum(f.get("embeddings_reused", 0) for f in feeds),
        "thumbnails": dict(thumbnails),
        "category_sources": dict(category_sources),
        "seconds": dict(sum((Counter(f.get("seconds", {})) for f in feeds), Counter())),
    }
    report.update(extra or {})
    return report


def _cell_colour(value: int, top: int) -> str:
    share = value / top if top else 0
    return f"rgb({int(255 - 180 * share)},{int(255 - 90 * share)},255)"


def coverage_svg(coverage: Coverage) -> str:
    """A market x layer heat map with counts, and a bar per attribute for its missing rate."""
    taxonomy = get_taxonomy()
    markets = list(taxonomy.markets)
    layers = list(taxonomy.layers)
    top = max((v for m in coverage.by_market_layer.values() for v in m.values()), default=0)
    cw, ch, left, head = 80, 24, 150, 30
    parts = []
    for j, m in enumerate(markets):
        parts.append(f'<text x="{left + j * cw + cw / 2}" y="20" text-anchor="middle" font-weight="bold">{m}</text>')
    for i, layer in enumerate(layers):
        y = head + i * ch
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{html.escape(layer)}</text>')
        for j, m in enumerate(markets):
            v = coverage.by_market_layer.get(m, {}).get(layer, 0)
            x = left + j * cw
            parts.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{_cell_colour(v, top)}"/>')
            parts.append(f'<text x="{x + cw / 2}" y="{y + 16}" text-anchor="middle">{v}</text>')
    y0 = head + len(layers) * ch + 30
    parts.append(f'<text x="0" y="{y0}" font-weight="bold">missing attributes (share of {coverage.total} products)</text>')
    for k, attribute in enumerate(coverage.missing):
        y = y0 + 10 + k * ch
        rate = coverage.missing_rate(attribute)
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{attribute}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{max(1, 240 * rate):.1f}" height="{ch - 4}" fill="#e0785a"/>')
        parts.append(f'<text x="{left + 248}" y="{y + 16}">{rate:.1%}</text>')
    height = y0 + 20 + len(coverage.missing) * ch
    width = left + len(markets) * cw + 160
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="13">{"".join(parts)}</svg>')  # fmt: skip


def report_html(report: dict[str, Any], coverage: Coverage | None) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f['vendor'])}</td><td>{f.get('rows_read', 0)}</td>"
        + "".join(f"<td>{f.get('outcomes', {}).get(k, 0)}</td>" for k in
                  ("new", "image_changed", "metadata_only", "unchanged", "vanished", "held", "quarantined"))
        + f"<td>{f.get('embedded', 0)}</td>"
        + f"<td>{f.get('thumbnails', {}).get('written', 0)} ({f.get('thumbnails', {}).get('failed', 0)})</td>"
        + f"<td>{html.escape('; '.join(f.get('notes', [])))}</td></tr>"
        for f in report["feeds"]
    )  # fmt: skip
    reasons = "".join(f"<li>{html.escape(r)}: {n}</li>" for r, n in sorted(report["quarantine_reasons"].items()))
    groups = report.get("groups") or {}
    grouping = "".join(f"<li>{html.escape(k.replace('_', ' '))}: {html.escape(str(v))}</li>" for k, v in groups.items())
    chart = coverage_svg(coverage) if coverage else "<p>no coverage figures</p>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>LookSync run {html.escape(report['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}table{{border-collapse:collapse}}</style>
</head><body><h1>Ingest run {html.escape(report['run_id'])}</h1>
<table><tr><th>vendor</th><th>rows</th><th>new</th><th>image changed</th><th>metadata only</th><th>unchanged</th>
<th>vanished</th><th>deletions held</th><th>quarantined</th><th>embedded</th><th>thumbnails written (failed)</th><th>notes</th></tr>{rows}</table>
<h2>Quarantine reasons</h2><ul>{reasons or "<li>none</li>"}</ul>
<h2>Product groups (one item, many shops)</h2><ul>{grouping or "<li>not grouped in this run</li>"}</ul>
<h2>Coverage (market x layer)</h2>{chart}
<h2>Raw</h2><pre>{html.escape(json.dumps({k: v for k, v in report.items() if k != "feeds"}, indent=1))}</pre>
</body></html>"""


def write_run_report(settings: Settings, report: dict[str, Any], coverage: Coverage | None) -> dict[str, str]:
    """Store ``report.json`` and ``report.html`` for the run; returns their URIs."""
    from looksync.catalog.object_store import default_store

    store = default_store(settings, "reports")
    if coverage is not None:
        report = {**report, "coverage": coverage.to_json()}
    run_id = report["run_id"]
    return {
        "json": store.put_bytes(f"{run_id}/report.json", json.dumps(report, indent=1, default=str).encode()),
        "html": store.put_bytes(f"{run_id}/report.html", report_html(report, coverage).encode()),
    }


def report_stage(settings: Settings, run_id: str, feeds: Sequence[dict[str, Any]], extra: dict[str, Any] | None = None,
                 mirror: Any = None) -> dict[str, Any]:  # fmt: skip
    """Build and store the run report; coverage from the Redis mirror when there is one, else from the
    product store. Returns the report (with ``uris``)."""
    from looksync.catalog.attribute_mirror import coverage as redis_coverage
    from looksync.catalog.stores import ProductStore

    if mirror is not None:
        cov = redis_coverage(mirror)
    else:
        store = ProductStore(settings.data_dir)
        cov = coverage_from_products(store.all(), store.groups())
    report = build_run_report(run_id, feeds, extra)
    report["uris"] = write_run_report(settings, report, cov)
    report["coverage"] = cov.to_json()
    return report
