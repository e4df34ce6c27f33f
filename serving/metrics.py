"""Prometheus metrics of one app: requests and latency per endpoint, stage latency (from the
pipeline's ``timings_ms``), cache hits and misses (and their ratio), degraded answers by reason.

Each app gets its own registry, so tests can build many apps in one process. Run one gunicorn worker
per container (threads inside it) so that a scrape sees the whole process; see docs/service.md.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from looksync.search.engine import SearchEvents

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics(SearchEvents):
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
        self._lock = threading.Lock()
        self._cache_counts: dict[str, list[int]] = {}

    # SearchEvents
    def cache(self, cache: str, result: str) -> None:
        self.cache_requests.labels(cache, result).inc()
        if result not in ("hit", "miss"):
            return
        with self._lock:
            counts = self._cache_counts.setdefault(cache, [0, 0])
            counts[0 if result == "hit" else 1] += 1
            self.cache_hit_ratio.labels(cache).set(counts[0] / (counts[0] + counts[1]))

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_response(self, endpoint: str, body: object) -> None:
        if not isinstance(body, dict):
            return
        for stage, ms in (body.get("timings_ms") or {}).items():
            self.stage.labels(endpoint, stage).observe(float(ms) / 1000.0)
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
