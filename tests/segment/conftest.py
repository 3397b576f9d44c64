"""A tiny virtual cohort and a plan small enough to train in seconds on one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hepablate.cohort import Cohort, load_cohort
from hepablate.segment.bundle import save_segmenter
from hepablate.segment.plan import fingerprint, plan
from hepablate.segment.train import train_segmenter
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

# A coarse grid (6 mm: 37 x 29 x 26 voxels), 16-voxel patches and a network of 8-16 filters.
TINY: dict[str, Any] = {
    "budget": {"max_patch_voxels": 16 * 16 * 16, "base_filters": 8, "max_filters": 16},
    "tasks": {
        "pre": {"target_spacing_mm": [6.0, 6.0, 6.0]},
        "post": {"target_spacing_mm": [6.0, 6.0, 6.0]},
    },
    "training": {"max_epochs": 2, "iterations_per_epoch": 2, "samples_per_image": 1},
}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """Two cores are shared by the test workers: one thread each."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg-cohort") / "cohort"
    simulate_cohort(SimulationConfig(n=3, seed=5), out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_cohort(tiny_cohort_dir: Path) -> Cohort:
    return load_cohort(tiny_cohort_dir)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of both tasks trained on the tiny cohort with the ``TINY`` plan (2 epochs of 2
    iterations: it runs, it does not segment well). Shared: do not modify its files."""
    torch.set_num_threads(1)  # a session fixture is set up before the autouse one_thread
    folder = tmp_path_factory.mktemp("seg-bundle")
    found = fingerprint(tiny_cohort)
    result = train_segmenter(
        tiny_cohort,
        plan(found, TINY),
        {task: measured.patients for task, measured in found.tasks.items()},
        checkpoint_dir=folder / "checkpoint",
    )
    return save_segmenter(result, found, TINY, folder / "seg")
