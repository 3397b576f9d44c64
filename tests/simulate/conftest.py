"""The plain virtual cohort that the simulator's tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepablate.simulate.generate import SimulationConfig, simulate_cohort


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 patients, seed 7, small images, the default (plain) appearance."""
    out = tmp_path_factory.mktemp("sim") / "cohort"
    simulate_cohort(SimulationConfig(n=8, seed=7), out, workers=2)
    return out
