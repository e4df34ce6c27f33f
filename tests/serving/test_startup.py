"""Service start and exit in real processes: weights that cannot be had offline stop the start at once
with one message; a process that built the app exits cleanly while its text vocabulary is building."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_MODEL, tiny_model_env

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
    # an empty weights cache: refused before open_clip is imported (under a second here, was about a minute)
    message = next(line for line in done.stderr.splitlines() if "ViT-H-14 weights 'laion2b_s32b_b79k'" in line)
    assert "cannot be reached" in message and "LOOKSYNC_CLIP_WEIGHTS" in message, message
    if command[1] == "gunicorn":
        assert "App failed to load" in done.stderr  # the worker's load error stops gunicorn, not a respawn loop


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from embeddings import save_random_checkpoint

    return save_random_checkpoint(TINY_MODEL, tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=1)


@pytest.mark.slow
def test_exit_while_the_text_vocabulary_builds_is_clean(tmp_path: Path, tiny_checkpoint: Path):
    # before SearchEngine.close ran at exit, 5 of 5 such processes aborted (status 134) with
    # "terminate called without an active exception": the daemon build thread was inside a torch call
    script = (
        "from serving import create_app\n"
        "app = create_app()\n"
        "print(app.extensions['looksync.engine'].text_vocab_state, flush=True)\n"
    )
    for attempt in range(3):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LOOKSYNC_")},
            **tiny_model_env(tmp_path / f"data-{attempt}", tiny_checkpoint),
            "LOOKSYNC_TEXT_VOCAB_PRECOMPUTE": "background",
            "PYTHONPATH": str(REPO),
        }
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        assert done.stdout.strip() == "building"  # the process exits while the build runs
        assert done.returncode == 0, done.stderr[-3000:]
        assert "terminate called" not in done.stderr
