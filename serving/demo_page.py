"""GET /demo: upload a look (or pick a sample look) and see what the public API returns for it, per
layer, with timings and degraded notes. The page is a static shell; its script calls only the
public API (/v1/looks/search, /v1/sample-looks) with the visitor's API key."""

from __future__ import annotations

from flask import Blueprint, render_template

from looksync.catalog.taxonomy import get_taxonomy

bp = Blueprint("demo_page", __name__)


@bp.get("/demo")
def demo_page():
    markets = [(market.id, market.currency) for market in get_taxonomy().markets.values()]
    return render_template("demo.html", markets=markets)
