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


@pytest.fixture(scope="session")
def pipeline_segmenter(tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation bundle trained on the tiny cohort (4 epochs of 4 iterations, about 20 s
    on one thread): masks good enough to be measured, not to be accurate (its liver Dice is
    about 0.78, its tumours mostly wrong), for the tests of the pipeline's plumbing."""
    import copy

    from hepablate.segment import fingerprint, plan, save_segmenter, train_segmenter

    config = copy.deepcopy(TINY)
    config["training"].update(max_epochs=4, iterations_per_epoch=4)
    # Most of its false lesions are specks: left out, they are not measured either.
    config["inference"] = {"min_lesion_volume_ml": 1.0}
    found = fingerprint(tiny_cohort)
    trained = train_segmenter(
        tiny_cohort, plan(found, config), {t: f.patients for t, f in found.tasks.items()}
    )
    return save_segmenter(trained, found, config, tmp_path_factory.mktemp("pipeline") / "seg")
