"""The progress of the command line: a rich bar per step on stderr, gone when the step is done,
and the parts of a job's result printed as they come (:class:`hepablate.app.Progress`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["BarProgress", "progress_bar"]


class BarProgress:
    """A :class:`hepablate.app.Progress` for the terminal: each step gets a fresh transient bar
    on stderr; a part of the result stops the bar and goes to ``on_part``, which prints it on
    stdout (never under a live bar, so that a redirected stdout gets it whole)."""

    def __init__(self, on_part: Callable[[object], None] | None = None) -> None:
        self._on_part = on_part
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def step(self, label: str) -> None:
        """A new bar titled ``label``, in place of the previous step's."""
        self.close()
        bar = Progress(
            TextColumn(escape(label)),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        # Kept only once started: a Ctrl-C inside rich's start() leaves a bar that calls
        # itself started but is not on its console, and stopping it then raises IndexError,
        # which would hide the KeyboardInterrupt (exit 1 instead of 130).
        bar.start()
        self._bar = bar
        self._task = bar.add_task(label, total=None)

    def update(self, done: int, total: int) -> None:
        """Move the current step's bar."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def part(self, result: object) -> None:
        """Stop the bar and print the part."""
        self.close()
        if self._on_part is not None:
            self._on_part(result)

    def close(self) -> None:
        """Remove the bar of the current step, if any."""
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task = None, None


@contextmanager
def progress_bar(on_part: Callable[[object], None] | None = None) -> Iterator[BarProgress]:
    """A :class:`BarProgress` whose bar is removed when the block ends, however it ends."""
    progress = BarProgress(on_part)
    try:
        yield progress
    finally:
        progress.close()
