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
