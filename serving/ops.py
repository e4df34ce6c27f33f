"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify

from looksync.search import NotReady
from serving.app import engine

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    eng = engine()
    try:
        version = eng.check_ready()
    except NotReady as exc:
        return jsonify({"status": "not_ready", "reason": str(exc)}), 503
    return jsonify({"status": "ready", "index_version": version, "model_id": eng.encoder.model_id, "products": eng.index.count()})
