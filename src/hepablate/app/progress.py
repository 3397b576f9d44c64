"""How a job says how far it is: the one protocol the command line and the service implement.

A job runs in steps; each step has a label and, when it knows it, a count of units (patients,
fits) done of a total. A job that learns something worth showing before it ends (the study's
data, the bundle it accepted, one step of the demo) hands it over as a typed part of its
result, so that a terminal prints it at once and a web page can show it. Jobs never print.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["NO_PROGRESS", "NoProgress", "Progress", "Within"]


@runtime_checkable
class Progress(Protocol):
    """What a job reports while it runs; every method returns at once."""

    def step(self, label: str) -> None:
        """A step of the job begins (``"extracting patients"``); it lasts until the next."""

    def update(self, done: int, total: int) -> None:
        """``done`` of the current step's ``total`` units are finished (monotone, ending at
        ``total``); the signature of the lower layers' ``progress(done, total)`` callbacks."""

    def part(self, result: object) -> None:
        """A part of the job's result, known before the job ends (one of the typed results of
        :mod:`hepablate.app`); the whole result is returned at the end too."""


class NoProgress:
    """Progress nobody watches: the default of every job."""

    def step(self, label: str) -> None:
        """Ignore the step."""

    def update(self, done: int, total: int) -> None:
        """Ignore the count."""

    def part(self, result: object) -> None:
        """Ignore the part."""


NO_PROGRESS = NoProgress()


class Within:
    """The progress of a job run as one step of a larger one: its step labels are prefixed by
    the outer step's (``"1/5 simulate 200 patients: simulating patients"``)."""

    def __init__(self, outer: Progress, prefix: str) -> None:
        self.outer = outer
        self.prefix = prefix

    def step(self, label: str) -> None:
        """The inner step, under the outer one's label."""
        self.outer.step(f"{self.prefix}: {label}")

    def update(self, done: int, total: int) -> None:
        """Passed on."""
        self.outer.update(done, total)

    def part(self, result: object) -> None:
        """The inner job's parts stay inside it; the outer job reports its own."""
