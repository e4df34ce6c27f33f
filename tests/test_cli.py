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
