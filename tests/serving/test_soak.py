"""The soak benchmark's machinery (bench/soak.py) for a few seconds: a real gunicorn over the session's
catalog, its own redis-server stopped and restarted, the LLM stub hanging then failing. The figures
come from the full run (docs/service.md, Soak); this checks that every phase is driven and measured
and that no phase gets a 5xx."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.soak import PHASES, SoakConfig, run_soak

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")


def test_soak_machinery_runs_every_phase_without_5xx(built_catalog, tmp_path):
    looks = [p.read_bytes() for p in sorted(Path(built_catalog.manifest.looks_dir).glob("*.png"))]
    # 12 s: each phase is 1-3 s; the hung LLM answers after 5 s, past the 4 s query budget and 3 s rerank budget
    config = SoakConfig(minutes=0.2, concurrency=4, workers=1, llm_hang_s=5.0)
    summary = run_soak(built_catalog.env, looks, tmp_path, config)

    assert [r["phase"] for r in summary["phases"]] == [name for name, _, _ in PHASES]
    assert all(r["requests"] > 0 for r in summary["phases"]), summary["phases"]
    assert summary["targets"]["no_5xx"]["met"], summary["examples_non_200"]
    assert sum(r["non_200"] for r in summary["phases"]) == 0, summary["examples_non_200"]
    by_phase = {r["phase"]: r for r in summary["phases"]}
    assert by_phase["redis_down"]["degraded"].get("cache_unavailable"), by_phase["redis_down"]
    assert summary["rss"]["samples"] and all(s["mib"] for s in summary["rss"]["samples"])
