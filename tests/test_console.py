"""The demo's terminal view: step lines, progress without a TTY, every log record in the log file."""

from __future__ import annotations

import logging

from looksync import console as console_module
from looksync.console import Console, log_to_file


def test_log_records_go_to_the_file_and_warnings_reach_the_terminal_as_one_line(tmp_path):
    lines: list[str] = []
    console = Console(lines.append)
    root = logging.getLogger()
    handlers_before, level_before = root.handlers[:], root.level
    faiss_level_before = logging.getLogger("faiss.loader").level
    with log_to_file(console, tmp_path / "run.log", terminal_filter=lambda r: "expected" not in r.getMessage()):
        logging.getLogger("some.library").info("loaded %d things", 3, extra={"run_id": "r-1"})
        logging.getLogger("faiss.loader").info("Could not load library with AVX2 support")
        logging.getLogger().warning("disk almost full\nsecond line of details")
        logging.getLogger().warning("expected warning")
        console.say("1/2 a step")
        console.detail("a path for the log only")
    assert root.handlers == handlers_before and root.level == level_before
    assert logging.getLogger("faiss.loader").level == faiss_level_before
    log = (tmp_path / "run.log").read_text()
    assert 'INFO some.library: loaded 3 things {"run_id": "r-1"}' in log
    assert "INFO faiss.loader: Could not load library with AVX2 support" in log
    assert "WARNING root: disk almost full\nsecond line of details" in log and "expected warning" in log
    assert "1/2 a step" in log and "a path for the log only" in log
    assert lines == [f"    warning: root: disk almost full (see {tmp_path / 'run.log'})", "1/2 a step"]


def test_without_a_tty_a_step_prints_its_end_then_its_results(monkeypatch):
    lines: list[str] = []
    console = Console(lines.append)
    now = [0.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: now[0])
    with console.progress("    epochs") as bar:
        now[0] = 1.0
        bar.update(1, 3, "loss 3.9")  # quiet
        now[0] = console_module.HEARTBEAT_S + 1
        bar.update(2, 3, "loss 3.5")  # quiet for HEARTBEAT_S: a line
        bar.note("    recall 0.9")
        now[0] += 1
        bar.update(3, 3, "loss 3.1")  # the end has its own line
        now[0] = 62.5
    assert lines == ["    epochs 2/3 loss 3.5", "    epochs 3/3 in 62.5 s: loss 3.1", "    recall 0.9"]
