"""Prometheus metrics of one app: requests and latency per endpoint, stage latency (from the
pipeline's ``timings_ms``), cache hits and misses (and their ratio), degraded answers by reason.

Each app gets its own registry, so tests can build many apps in one process. Run one gunicorn worker
per container (threads inside it) so that a scrape sees the whole process; see docs/service.md.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from looksync.search.engine import SearchEvents
from looksync.search.shadow import ShadowEvents

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SHARE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_SIGNED_BUCKETS = (-1.0, -0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServiceMetrics(SearchEvents, ShadowEvents):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "looksync_http_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "looksync_http_request_seconds", "HTTP request latency", ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.stage = Histogram(
            "looksync_stage_seconds", "pipeline stage latency", ["endpoint", "stage"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.cache_requests = Counter("looksync_cache_requests", "cache lookups", ["cache", "result"], registry=r)
        self.cache_hit_ratio = Gauge("looksync_cache_hit_ratio", "hits / (hits + misses) since start", ["cache"], registry=r)
        self.degraded = Counter("looksync_degraded", "degraded answers by reason", ["endpoint", "reason"], registry=r)
        # shadow mirroring (issue 19): what was mirrored or dropped, and how the shadow agreed, per layer
        self.shadow_queries = Counter("looksync_shadow_queries", "queries offered to the shadow mirror",
                                      ["kind", "outcome"], registry=r)  # outcome: queued | dropped (queue full)
        self.shadow_active = Gauge("looksync_shadow_active", "1 while this worker mirrors queries to a shadow version "
                                   "(0: none configured, or it could not start: see the log)", registry=r)  # fmt: skip
        self.shadow_errors = Counter("looksync_shadow_errors", "mirrored queries the shadow failed or degraded",
                                     ["kind"], registry=r)  # fmt: skip
        self.shadow_overlap = Histogram("looksync_shadow_overlap_at_10", "overlap@10 of shadow with live", ["layer"],
                                        buckets=_SHARE_BUCKETS, registry=r)  # fmt: skip
        self.shadow_rank = Histogram("looksync_shadow_rank_correlation", "rank correlation over common products",
                                     ["layer", "method"], buckets=_SIGNED_BUCKETS, registry=r)  # fmt: skip
        self.shadow_shift = Histogram("looksync_shadow_score_shift", "mean top-10 score, shadow minus live", ["layer"],
                                      buckets=_SIGNED_BUCKETS, registry=r)  # fmt: skip
        self._lock = threading.Lock()
        self._cache_counts: dict[str, list[int]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the per-request metrics ask for the same few children on every
        request, and ``labels()`` (a lock and the label checks) cost several times the increment itself."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)  # labels() returns the same child for the same values
        return child

    # SearchEvents
    def cache(self, cache: str, result: str) -> None:
        self._child(self.cache_requests, cache, result).inc()
        if result not in ("hit", "miss"):
            return
        with self._lock:
            counts = self._cache_counts.setdefault(cache, [0, 0])
            counts[0 if result == "hit" else 1] += 1
            self._child(self.cache_hit_ratio, cache).set(counts[0] / (counts[0] + counts[1]))

    # ShadowEvents
    def shadow_offered(self, kind: str, accepted: bool) -> None:
        self.shadow_queries.labels(kind, "queued" if accepted else "dropped").inc()

    def shadow_compared(self, record: dict) -> None:
        if record["shadow_error"]:
            self.shadow_errors.labels(record["kind"]).inc()
        for layer, figures in record["layers"].items():
            if figures["overlap"] is not None:
                self.shadow_overlap.labels(layer).observe(figures["overlap"])
            for method in ("spearman", "kendall"):
                if figures[method] is not None:
                    self.shadow_rank.labels(layer, method).observe(figures[method])
            if figures["score_shift"] is not None:
                self.shadow_shift.labels(layer).observe(figures["score_shift"])

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, endpoint, method, str(status)).inc()
        self._child(self.latency, endpoint).observe(seconds)

    def observe_response(self, endpoint: str, body: object) -> None:
        if not isinstance(body, dict):
            return
        for stage, ms in (body.get("timings_ms") or {}).items():
            self._child(self.stage, endpoint, stage).observe(float(ms) / 1000.0)
        for note in body.get("degraded") or []:
            self.degraded.labels(endpoint, str(note).split(":", 1)[0]).inc()

    def watch_encoder(self, encoder: object) -> None:
        """Export how long model forwards queued behind each other (a CPU encoder runs one at a time):
        when this grows as fast as wall time, the process is saturated and needs another replica."""
        wait = Gauge(
            "looksync_encoder_forward_wait_seconds_total",
            "seconds model forwards spent queued behind the per-process forward lock",
            registry=self.registry,
        )
        wait.set_function(lambda: float(getattr(encoder, "forward_wait_s", 0.0)))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
