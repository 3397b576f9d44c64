"""What every job test needs: a Progress that records what it was told."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class Recorder:
    """A :class:`hepablate.app.Progress` that keeps every call, in order."""

    calls: list[tuple[str, object]] = field(default_factory=list)

    def step(self, label: str) -> None:
        self.calls.append(("step", label))

    def update(self, done: int, total: int) -> None:
        self.calls.append(("update", (done, total)))

    def part(self, result: object) -> None:
        self.calls.append(("part", result))

    @property
    def steps(self) -> list[str]:
        return [str(value) for kind, value in self.calls if kind == "step"]

    @property
    def parts(self) -> list[object]:
        return [value for kind, value in self.calls if kind == "part"]

    def counts(self, step: str) -> list[tuple[int, int]]:
        """The (done, total) updates of ``step``'s first run, in order."""
        found: list[tuple[int, int]] = []
        inside = False
        for kind, value in self.calls:
            if kind == "step":
                if inside:
                    break
                inside = value == step
            elif kind == "update" and inside:
                assert isinstance(value, tuple)
                found.append(value)
        return found


def assert_counted(counts: list[tuple[int, int]], total: int) -> None:
    """Counts that only grow, of one total, ending at it."""
    assert counts, "no progress was reported"
    assert {t for _, t in counts} == {total}, counts
    done = [d for d, _ in counts]
    assert done == sorted(done) and done[-1] == total, counts


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
