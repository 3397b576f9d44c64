"""The simulate job: a cohort with its truth, rates measured on what was written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hepablate.app import PREVIEWS, simulate
from hepablate.simulate.generate import SimulationConfig
from tests.app.conftest import Recorder, assert_counted


def test_a_tabular_cohort_its_rates_and_simulation_json(tmp_path: Path, recorder: Recorder) -> None:
    config = SimulationConfig(n=12, seed=3, images=False)
    out = tmp_path / "cohort"
    result = simulate(config, out, preview=True, workers=1, progress=recorder)

    assert result.out == out and result.config == config
    assert result.previews == []  # no images, no previews
    patients = pd.read_csv(out / "patients.csv")
    assert result.rates["patients"] == len(patients) == 12
    assert result.rates["tumours"] == len(pd.read_csv(result.truth))
    written = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    assert written["rates"] == json.loads(json.dumps(result.rates))
    # The plain appearance (the default) is left out: the file is what it was before it existed.
    assert written["config"] == config.model_dump(exclude={"appearance"})
    assert written["seconds"] == round(result.seconds, 1)
    assert recorder.steps == ["simulating patients"]
    assert_counted(recorder.counts("simulating patients"), 12)


def test_the_command_line_help_names_the_jobs_number_of_previews() -> None:
    import importlib

    assert importlib.import_module("hepablate.cli.simulate").PREVIEWS == PREVIEWS
