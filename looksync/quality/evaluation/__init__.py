"""Offline evaluation of match quality (``looksync eval``): tasks, scoring, the HTML report."""

from looksync.quality.evaluation.harness import EvalConfig, EvalError, EvalOptions, EvalRun, run_eval
from looksync.quality.evaluation.scoring import METRICS, ScoredQuery, compare, score_query, summarise

__all__ = [
    "METRICS",
    "EvalConfig",
    "EvalError",
    "EvalOptions",
    "EvalRun",
    "ScoredQuery",
    "compare",
    "run_eval",
    "score_query",
    "summarise",
]
