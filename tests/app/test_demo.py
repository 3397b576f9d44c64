"""The demo job: its steps staged beside OUT and swapped in whole, each handed over as a part
(the steps themselves are the jobs tested beside this file; `hepablate demo` runs them all)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from hepablate.app import DEMO_OUTPUTS, DemoStarted, DemoStep, demo
from hepablate.outputs import OutputError
from tests.app.conftest import Recorder


def test_the_steps_are_parts_and_the_result_says_where_everything_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    module = importlib.import_module("hepablate.app.demo")  # the attribute is the job
    seen: dict[str, Any] = {}

    def steps(out: Path, *, n: int, seed: int, workers: int, progress: Any) -> list[DemoStep]:
        seen.update(stage=out, n=n, seed=seed, workers=workers)
        (out / "prediction.json").write_text("{}", encoding="utf-8")
        step = DemoStep("simulate", "1/5 simulate", 60.0, result=None)  # type: ignore[arg-type]
        progress.part(step)
        return [step]

    monkeypatch.setattr(module, "_steps", steps)
    out = tmp_path / "demo"
    result = demo(out, n=30, seed=4, workers=1, progress=recorder)

    assert (seen["n"], seen["seed"], seen["workers"]) == (30, 4, 1)
    assert seen["stage"] != out and not seen["stage"].exists()  # swapped in
    assert (out / "prediction.json").is_file()
    started, step = recorder.parts
    assert started == DemoStarted(seen["stage"], out) and step is result.steps[0]
    assert result.seconds == {"simulate": 60.0}
    assert len(result.places) == 10
    assert {where.relative_to(out).parts[0] for _, where in result.places} <= DEMO_OUTPUTS


def test_a_folder_that_is_not_a_demo_is_refused_before_any_step(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("text", encoding="utf-8")
    recorder = Recorder()
    with pytest.raises(OutputError, match="not the output of an earlier `hepablate demo`"):
        demo(out, progress=recorder)
    assert recorder.calls == []
