"""The preference replay: planted tastes, learned from earlier sessions, move later purchases up; with
no boost nothing moves."""

from __future__ import annotations

from looksync.index.embedded import EmbeddedIndex
from looksync.quality.evaluation.replay import ReplayOptions, run_replay
from tests.index.conftest import DIM, MODEL_ID, catalog, vectors


def _index(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    version = index.create_version(MODEL_ID, DIM)
    index.upsert(version, catalog(600, market="US", currency="USD"), vectors(600))
    index.set_live(version)
    return index


def test_learned_preferences_raise_held_out_purchases(tmp_path):
    index = _index(tmp_path)
    lines = []
    summary = run_replay(index, ["US"], ReplayOptions(shoppers=30, resamples=300, max_boost=0.1), echo=lines.append)

    assert summary["held_out_purchases"] == 120 and summary["markets"] == ["US"]
    assert summary["rank_gain"]["ci_low"] > 0  # purchases moved up, and not by chance
    assert summary["reciprocal_rank_gain"]["mean"] > 0
    assert lines and lines[0].startswith("preference replay: 120 held-out purchases")


def test_no_boost_moves_nothing(tmp_path):
    summary = run_replay(_index(tmp_path), ["US"], ReplayOptions(shoppers=10, resamples=100, max_boost=0.0))
    assert summary["rank_gain"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
