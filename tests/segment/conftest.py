"""A tiny virtual cohort and a plan small enough to train in seconds on one thread."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from hepablate.cohort import Cohort, load_cohort
from hepablate.segment.bundle import save_segmenter
from hepablate.segment.plan import fingerprint, plan
from hepablate.segment.train import train_segmenter
from tests.shared import once_per_run, simulated_once

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
    """Three virtual patients with images, once per run: read-only."""
    return simulated_once(tmp_path_factory, "seg-cohort", {"n": 3, "seed": 5})


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


# The pipeline's tests: TRAINED's masks (good enough livers for the registration that numbers
# each zone after its tumour), without the specks among its lesions (left out, not measured).
PIPELINE: dict[str, Any] = {**TRAINED, "inference": {"min_lesion_volume_ml": 1.0}}


def _train(cohort: Cohort, out: Path) -> None:
    """The ``TRAINED`` segmenter into ``out/seg``, and the same weights with ``PIPELINE``'s
    inference settings into ``out/pipeline`` (inference is not part of training's weights)."""
    torch.set_num_threads(1)  # a session fixture is set up before the autouse one_thread
    found = fingerprint(cohort)
    result = train_segmenter(
        cohort,
        plan(found, TRAINED),
        {task: measured.patients for task, measured in found.tasks.items()},
        checkpoint_dir=out / "checkpoint",
    )
    save_segmenter(result, found, TRAINED, out / "seg")
    inference = result.plan.inference.model_copy(update=PIPELINE["inference"])
    pipeline = dataclasses.replace(
        result, plan=result.plan.model_copy(update={"inference": inference})
    )
    save_segmenter(pipeline, found, PIPELINE, out / "pipeline")


@pytest.fixture(scope="session")
def trained_bundle(tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmenter of both tasks trained on the tiny cohort (about a minute on one thread),
    once per run. Shared: do not modify its files."""
    return once_per_run(tmp_path_factory, "seg-bundles", lambda out: _train(tiny_cohort, out)) / (
        "seg"
    )


@pytest.fixture(scope="session")
def pipeline_segmenter(tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_bundle``'s weights with ``PIPELINE``'s inference settings (trained with it,
    once per run). Shared: do not modify its files."""
    return once_per_run(tmp_path_factory, "seg-bundles", lambda out: _train(tiny_cohort, out)) / (
        "pipeline"
    )
