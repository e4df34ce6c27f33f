"""The soak benchmark's machinery (bench/soak.py) for 15 s: a real gunicorn over the session's
catalog, its own redis-server stopped and restarted, the LLM stub hanging then failing. The figures
come from the full run (docs/service.md, Soak); this checks that every phase is driven and measured
and that no phase gets a 5xx."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.soak import PHASES, SoakConfig, run_soak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH"),
]


def test_soak_machinery_runs_every_phase_without_5xx(built_catalog, tmp_path):
    looks = [p.read_bytes() for p in sorted(Path(built_catalog.manifest.looks_dir).glob("*.png"))]
    # 15 s, each phase 1.5-3 s; no text-vocabulary build to wait for. LLM budgets cut to fit (the full
    # run keeps the defaults): the hung stub answers after 3 s, past the 1 s query-generation and 0.5 s
    # rerank budgets, so a hung look holds a thread ~1.5 s and the next phase still gets requests
    env = {**built_catalog.env, "LOOKSYNC_LLM_TIMEOUT_S": "1", "LOOKSYNC_LLM_MAX_RETRIES": "0",
           "LOOKSYNC_RERANK_LLM_BUDGET_S": "0.5", "LOOKSYNC_TEXT_VOCAB_PRECOMPUTE": "off"}  # fmt: skip
    summary = run_soak(env, looks, tmp_path, SoakConfig(minutes=0.25, concurrency=4, workers=1, llm_hang_s=3.0))

    phases = {r["phase"]: r for r in summary["phases"]}
    assert list(phases) == [name for name, _, _ in PHASES]
    assert all(r["requests"] > 0 for r in phases.values()), {k: r["requests"] for k, r in phases.items()}
    assert summary["targets"]["no_5xx"]["met"], summary["examples_non_200"]
    assert sum(r["non_200"] for r in phases.values()) == 0, summary["examples_non_200"]
    assert phases["redis_down"]["degraded"].get("cache_unavailable"), phases["redis_down"]
    assert phases["llm_hang"]["degraded"].get("llm_unavailable") or phases["llm_500"]["degraded"].get("llm_unavailable")
    assert summary["rss"]["samples"] and all(s["mib"] for s in summary["rss"]["samples"])
