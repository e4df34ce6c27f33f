"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from looksync.index import IndexBackendError
from looksync.search.engine import NotReady
from serving.context import engine, metrics

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    eng = engine()
    try:
        version = eng.check_ready()
        count = eng.index.count()
    except (NotReady, IndexBackendError) as exc:
        return jsonify({"status": "not_ready", "reason": str(exc)}), 503
    return jsonify(
        {
            "status": "ready",
            "index_version": version,
            "model_id": eng.encoder.model_id,
            "products": count,
            "query_generator": getattr(eng.query_generator, "source", type(eng.query_generator).__name__),
            "cache": eng.cache.name,
            "text_vocabulary": eng.text_vocab_state,  # off | building | ready | failed
            # what runs the CLIP towers (torch | onnx | onnx-int8; "onnx-int8/onnx" when they differ) and why a
            # tower runs on less than LOOKSYNC_CLIP_RUNTIME asked for (an int8 quantisation refused by its gate)
            "clip_runtime": getattr(eng.encoder, "runtime", "torch"),
            "clip_runtime_degraded": list(getattr(eng.encoder, "runtime_notes", [])),
        }
    )


@bp.get("/metrics")
def prometheus_metrics():
    return Response(metrics().exposition(), mimetype=CONTENT_TYPE_LATEST)
