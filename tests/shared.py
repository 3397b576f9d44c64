"""Made once per test run, whichever pytest-xdist worker asks first (the others wait for it):
the virtual cohorts and trained models that several test modules read."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """The folder ``name`` in the run's temporary folder, made by ``make(folder)`` if no worker
    has made it yet. Shared: a test must not change it (copy it first)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    target, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.is_file():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            done.touch()
    return target


def simulated_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, config: dict[str, object]
) -> Path:
    """A virtual cohort simulated once per run (simulating is most of the cost of the modules
    that train on one)."""
    from hepablate.simulate.generate import SimulationConfig, simulate_cohort

    return once_per_run(
        tmp_path_factory,
        name,
        lambda out: simulate_cohort(SimulationConfig.model_validate(config), out, workers=2),
    )
