"""GET /demo: upload a look (or pick a sample look) and see what the public API returns for it, per
layer, with timings and degraded notes. The page is a static shell; its script calls only the
public API (/v1/looks/search, /v1/sample-looks) with the visitor's API key."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("demo_page", __name__)


@bp.get("/demo")
def demo_page():
    return render_template("demo.html")
