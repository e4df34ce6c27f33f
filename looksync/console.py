"""What a long command shows on the terminal (``looksync demo``): its step lines, a progress bar for each
long step, and, in a log file, the detailed lines and every library's log.

On a TTY a bar is redrawn in place (``click.progressbar``); elsewhere (CI, pipes, tests) a step prints a
line when it has been quiet for ``HEARTBEAT_S`` and one when it ends, so a CI log shows it moving without
a line per item. ``log_to_file`` sends every logger's records to the file instead of the terminal, except
that a warning or an error still shows there as one line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # a CI log sees a long step move about twice a minute
BAR_WIDTH = 24
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (as a user typed it), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Console:
    """Lines for the terminal (``echo``), each also logged; ``bars`` draws progress bars (a TTY only)."""

    def __init__(self, echo: Callable[[str], object] = click.echo, bars: bool = False):
        self.echo = echo
        self.bars = bars
        self._drawing: Progress | None = None

    @classmethod
    def of(cls, echo: Console | Callable[[str], object]) -> Console:
        return echo if isinstance(echo, Console) else cls(echo)

    def __call__(self, text: str) -> None:
        self.say(text)

    def say(self, text: str) -> None:
        """A line on the terminal and in the log."""
        log.info(text)
        self.echo(text)

    def detail(self, text: str) -> None:
        """A line for the log only (paths, ids, full responses)."""
        log.info(text)

    def alert(self, text: str) -> None:
        """A warning line on the terminal (not logged again: it comes from a log record)."""
        if self._drawing is not None and self._drawing.drawn:
            self.echo("")  # below the bar being drawn; the bar carries on under it
        self.echo(text)

    @contextmanager
    def progress(self, label: str) -> Iterator[Progress]:
        """A long step's progress; the caller reports (done, total, item) as it goes."""
        progress = Progress(self, label)
        self._drawing = progress
        try:
            yield progress
        finally:
            self._drawing = None
            progress.close()


class Progress:
    """One long step: ``update(done, total, item)`` redraws the bar (TTY) or prints a heartbeat line;
    ``note(text)`` is a result line, shown under the bar once it is finished."""

    def __init__(self, console: Console, label: str):
        self.console, self.label = console, label
        self.done, self.total, self.item = 0, 0, ""
        self.started = self._last_line = time.monotonic()
        self._notes: list[str] = []
        self._stack = ExitStack()
        self._bar = None

    @property
    def drawn(self) -> bool:
        return self._bar is not None

    def update(self, done: int, total: int, item: str = "") -> None:
        self.done, self.total, self.item = done, total, item
        log.debug("%s %d/%d %s", self.label.strip(), done, total, item)
        if self.console.bars:
            if self._bar is None:  # drawn from the first report, when the total is known
                self._bar = self._stack.enter_context(
                    click.progressbar(
                        length=total, label=self.label, show_pos=True, width=BAR_WIDTH, item_show_func=lambda s: s
                    )
                )
            self._bar.length = total
            self._bar.update(done - self._bar.pos, item)
        elif done < total and time.monotonic() - self._last_line >= HEARTBEAT_S:  # the end has its own line
            self._line(f"{self.label} {done}/{total} {item}".rstrip())

    def note(self, text: str) -> None:
        log.info(text)
        self._notes.append(text)

    def close(self) -> None:
        if self._bar is not None:
            self._stack.close()
        elif self.total:
            seconds = time.monotonic() - self.started
            self._line(
                f"{self.label} {self.done}/{self.total} in {seconds:.1f} s" + (f": {self.item}" if self.item else "")
            )
        for text in self._notes:
            self.console.echo(text)

    def _line(self, text: str) -> None:
        self._last_line = time.monotonic()
        self.console.say(text)


class LineFormatter(logging.Formatter):
    """One line per record: time, level, logger, message, then the record's structured fields (run id,
    vendor, version, ...) as JSON, and a traceback when there is one."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # the fields stay on the message's first line
        return f"{head} {json.dumps(fields, default=str)}{sep}{tail}"


class _TerminalHandler(logging.Handler):
    """Warnings and errors as one line on the console, pointing at the log file."""

    def __init__(self, console: Console, log_path: Path):
        super().__init__(logging.WARNING)
        self.console, self.log_path = console, log_path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            first = (record.getMessage().strip().splitlines() or [""])[0]
            if len(first) > 160:
                first = first[:157] + "..."
            self.console.alert(f"    {record.levelname.lower()}: {record.name}: {first} (see {shown(self.log_path)})")
        except Exception:
            self.handleError(record)


@contextmanager
def log_to_file(
    console: Console,
    path: Path,
    level: int = logging.INFO,
    terminal_filter: Callable[[logging.LogRecord], bool] | None = None,
) -> Iterator[Path]:
    """Every logger's records from ``level`` up (lower if the root logger already is) go to ``path``,
    written afresh, in place of the root logger's handlers until the block ends; warnings and errors also
    reach ``console`` as one line (those ``terminal_filter`` lets through, when given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    # the CLI keeps faiss's import-time CPU-feature probing off the terminal (cli.main); the file is the full log
    faiss_loader = logging.getLogger("faiss.loader")
    handlers, root_level, faiss_level = root.handlers[:], root.level, faiss_loader.level
    to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
    to_file.setFormatter(LineFormatter())
    to_terminal = _TerminalHandler(console, path)
    if terminal_filter is not None:
        to_terminal.addFilter(terminal_filter)
    root.handlers[:] = [to_file, to_terminal]
    root.setLevel(min(root.level, level))
    faiss_loader.setLevel(logging.NOTSET)
    try:
        yield path
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        faiss_loader.setLevel(faiss_level)
        to_file.close()
