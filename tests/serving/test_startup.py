"""Service start in real processes: weights that cannot be had offline stop the start at once with one
message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# the imports (torch, open_clip) take most of it on a busy CI core; the hub's retries took about a minute
START_TIMEOUT_S = 60


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["-m", "looksync.cli", "serve"],
        # gunicorn on its own (a worker loads serving.wsgi), on a free port
        ["-m", "gunicorn", "-c", str(REPO / "infra" / "gunicorn.conf.py"), "--chdir", str(REPO), "-b", "127.0.0.1:0"],
    ],
    ids=["looksync-serve", "gunicorn"],
)
def test_start_without_weights_offline_fails_at_once_with_one_message(
    command: list[str], tmp_path: Path, unreachable_hub_env: dict[str, str]
):
    # no LOOKSYNC_* at all: the ViT-H-14 default, whose tag is in no cache here; HOME for gunicorn's control socket
    env = {**unreachable_hub_env, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    message = next(line for line in done.stderr.splitlines() if "ViT-H-14 pretrained 'laion2b_s32b_b79k'" in line)
    assert "cannot be reached" in message and "LOOKSYNC_CLIP_WEIGHTS" in message, message
    if command[1] == "gunicorn":
        assert "App failed to load" in done.stderr  # the worker's load error stops gunicorn, not a respawn loop
