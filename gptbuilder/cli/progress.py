"""Progress bars on stderr (rich), so long commands are not silent and stdout (--json) stays clean."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PROGRESS_KEY = "gptbuilder.progress"  # where a command finds its StderrProgress in click's ctx.meta
Update = Callable[[int, int], None]
"""Moves one bar: ``update(done, total)``; the bar goes away once done reaches total."""


class StderrProgress:
    """One rich progress display on stderr shared by every bar of a command (rich allows one live display).

    It shows only on a terminal: in logs, pipes and tests the command prints exactly what it printed before.
    The display runs only while a bar is open, so text a command streams to stdout never mixes with it.
    """

    def __init__(self, console: Any | None = None):
        self._console = console
        self._progress: Any = None  # a rich Progress while a bar is open
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def bar(self, description: str, total: int) -> Update:
        """Open a bar for one job of ``total`` steps."""
        with self._lock:
            if self._progress is None:
                self._progress = self._start()
            progress = self._progress
            task = progress.add_task(description, total=total)
            self._open.add(task)
            progress.refresh()  # updates are rare (a case, a batch of files): draw each at once

        def update(done: int, total: int) -> None:
            with self._lock:
                if task not in self._open or progress is not self._progress:
                    return
                progress.update(task, completed=done, total=total, refresh=True)
                if done >= total:
                    self._close_task(task)

        return update

    def close(self) -> None:
        """Take every bar away (the command ended, or failed half-way)."""
        with self._lock:
            for task in list(self._open):
                self._close_task(task)

    def _close_task(self, task: Any) -> None:
        self._open.discard(task)
        assert self._progress is not None
        self._progress.remove_task(task)
        if not self._open:
            self._progress.stop()
            self._progress = None

    def _start(self) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = self._console or Console(file=sys.stderr)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the bars go when the command prints its result
            redirect_stdout=False,  # rich would buffer a streamed answer line by line
            redirect_stderr=False,
            disable=not console.is_terminal,
        )
        progress.start()
        return progress


@contextmanager
def command_progress(*, index: bool = True, console: Any | None = None) -> Iterator[StderrProgress]:
    """The display for one command; with ``index``, every knowledge index run inside gets a bar too."""
    from ..knowledge.index import reporting_progress

    display = StderrProgress(console)
    try:
        if index:
            with reporting_progress(lambda gpt_id: display.bar(f"indexing {gpt_id} (files)", 0)):
                yield display
        else:
            yield display
    finally:
        display.close()


def progress_of(ctx: Any) -> StderrProgress:
    """The command's progress display (a fresh one when the command runs outside the app, as in some tests)."""
    display = ctx.meta.get(PROGRESS_KEY)
    return display if isinstance(display, StderrProgress) else StderrProgress()
