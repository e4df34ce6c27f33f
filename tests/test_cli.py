"""The command line as a user starts it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_python_m_looksync_is_the_looksync_command():
    done = subprocess.run(
        [sys.executable, "-m", "looksync", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: looksync [OPTIONS] COMMAND [ARGS]...")
    for command in ("demo", "ingest", "index", "serve", "finetune"):
        assert f"  {command} " in done.stdout


def test_index_rollback_from_the_command_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main
    from looksync.index.embedded import EmbeddedIndex
    from tests.index.conftest import DIM, MODEL_ID, catalog, vectors

    monkeypatch.setenv("LOOKSYNC_DATA_DIR", str(tmp_path))
    index = EmbeddedIndex(tmp_path / "index")
    old = index.create_version(MODEL_ID, DIM)
    index.upsert(old, catalog(2), vectors(2))
    index.set_live(old)
    new = index.create_version(MODEL_ID, DIM)
    index.upsert(new, catalog(3), vectors(3))
    index.set_live(new)
    runner = CliRunner()

    listed = runner.invoke(main, ["index", "versions"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith(f"  {old} ") and lines[0].endswith("previous")
    assert lines[1].startswith(f"* {new} ") and lines[1].endswith("live")

    rolled = runner.invoke(main, ["index", "rollback"])
    assert rolled.exit_code == 0, rolled.output
    assert rolled.output.strip() == f"live version: {old} (was {new})"
    assert EmbeddedIndex(tmp_path / "index").live_version() == old

    again = runner.invoke(main, ["index", "rollback"])
    assert again.exit_code == 1 and "no version older" in again.output


def test_index_versions_shows_the_shadow_and_promote_swaps_it_in(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from looksync.cli import main
    from looksync.index.embedded import EmbeddedIndex
    from tests.index.conftest import DIM, MODEL_ID, catalog, vectors

    monkeypatch.setenv("LOOKSYNC_DATA_DIR", str(tmp_path))
    index = EmbeddedIndex(tmp_path / "index")
    live = index.create_version(MODEL_ID, DIM)
    index.upsert(live, catalog(2), vectors(2))
    index.set_live(live)
    candidate = index.create_version("model-candidate", DIM)
    index.upsert(candidate, catalog(3, model_id="model-candidate"), vectors(3))
    runner = CliRunner()
    assert runner.invoke(main, ["index", "promote"]).exit_code == 1  # no shadow yet
    index.set_shadow(candidate)

    lines = runner.invoke(main, ["index", "versions"]).output.splitlines()
    assert lines[0].startswith(f"* {live} ") and f"model={MODEL_ID}" in lines[0] and lines[0].endswith("live")
    assert lines[1].startswith(f"  {candidate} ") and "model=model-candidate" in lines[1] and lines[1].endswith("shadow")

    promoted = runner.invoke(main, ["index", "promote"])
    assert promoted.exit_code == 0 and promoted.output.strip() == f"live version: {candidate} (was {live})"
    lines = runner.invoke(main, ["index", "versions"]).output.splitlines()
    assert lines[0].endswith("previous") and lines[1].startswith(f"* {candidate} ") and lines[1].endswith("live")
    rolled = runner.invoke(main, ["index", "rollback", "--allow-model-change"])
    assert rolled.exit_code == 0 and EmbeddedIndex(tmp_path / "index").live_version() == live
