"""The Progress protocol: the default reports nowhere, a nested job's labels say where it is,
and the command line's bar is one."""

from __future__ import annotations

import pytest

from hepablate.app import NO_PROGRESS, Progress, Within
from hepablate.cli._progress import BarProgress, progress_bar
from tests.app.conftest import Recorder


def test_the_default_the_recorder_and_the_bar_are_progress() -> None:
    assert isinstance(NO_PROGRESS, Progress)
    assert isinstance(Recorder(), Progress)
    assert isinstance(BarProgress(), Progress)
    assert not isinstance(object(), Progress)


def test_within_prefixes_the_inner_steps_and_keeps_the_inner_parts() -> None:
    outer = Recorder()
    inner = Within(outer, "2/5 extract")
    inner.step("extracting patients")
    inner.update(1, 3)
    inner.part("the inner job's own part")
    assert outer.calls == [("step", "2/5 extract: extracting patients"), ("update", (1, 3))]


def test_the_bar_hands_parts_over_and_is_gone_after_the_block() -> None:
    printed: list[object] = []
    with progress_bar(printed.append) as bar:
        bar.step("a [bold]label[/] with markup")
        bar.update(1, 2)
        bar.part("the plan")
        bar.update(2, 2)  # after a part, before the next step: no bar to move
        bar.step("next")
    assert printed == ["the plan"]


def test_a_ctrl_c_while_a_bar_starts_stays_a_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich marks a bar started before it joins its console: a KeyboardInterrupt between the
    two must reach the CLI as itself (exit 130), not as the IndexError that stopping such a
    bar raises (exit 1, "a bug in hepablate"); seen once in CI's Ctrl-C test under load."""
    from rich.live import Live

    def interrupted_start(self: Live, refresh: bool = False) -> None:
        self._started = True
        raise KeyboardInterrupt

    monkeypatch.setattr(Live, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt), progress_bar() as bar:
        bar.step("extract")
