"""A tiny virtual cohort and a plan small enough to train in seconds on one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hepablate.cohort import Cohort, load_cohort
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


# Enough training for the tiny cohort's own ablation zones and livers (measured on 2026-12-01,
# one thread: every patient's zone found over its tumour, liver Dice of the pre and post
# livers after registration 0.93-0.96), for tests of what prediction does with its masks.
TRAINED: dict[str, Any] = {
    **TINY,
    "training": {
        **TINY["training"],
        "max_epochs": 12,
        "iterations_per_epoch": 8,
        "patience": 12,
        "learning_rate": 0.01,
    },
}


@pytest.fixture(scope="session")
def trained_bundle(
    tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Path:
    """A segmenter trained on the tiny cohort (about a minute on one thread), once per run:
    pytest-xdist's workers share the run's temporary folder, and the first to get there
    trains while the others wait."""
    from filelock import FileLock

    from hepablate.segment import fingerprint, plan, save_segmenter, train_segmenter

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the run's folder, above each worker's own
    root = shared / "trained-seg"
    with FileLock(f"{root}.lock"):
        if (root / "seg" / "manifest.json").is_file():
            return root / "seg"
        torch.set_num_threads(1)
        found = fingerprint(tiny_cohort)
        planned = plan(found, TRAINED)
        result = train_segmenter(
            tiny_cohort,
            planned,
            {task: f.patients for task, f in found.tasks.items()},
            checkpoint_dir=root / "checkpoint",
        )
        return save_segmenter(result, found, TRAINED, root / "seg")
