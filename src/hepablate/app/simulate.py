"""The job ``simulate``: a virtual ablation cohort with its ground truth."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.simulate.generate import TRUTH_FILE, SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import cohort_rates, read_truth
from hepablate.simulate.preview import write_preview
from hepablate.simulate.shapes import RigidTransform

__all__ = ["PREVIEWS", "SimulateResult", "simulate"]

PREVIEWS = 6  # patients with PNG slices, when previews are asked for


@dataclass(frozen=True)
class SimulateResult:
    """A written virtual cohort: where, how long it took and its rates, measured on what was
    written (``hepablate.simulate.oracle.cohort_rates``; also in ``simulation.json``)."""

    out: Path
    config: SimulationConfig
    seconds: float
    rates: dict[str, Any]
    previews: list[Path] = field(default_factory=list)

    @property
    def truth(self) -> Path:
        """The ground truth, never read by training or prediction."""
        return self.out / TRUTH_FILE


def simulate(
    config: SimulationConfig,
    out: Path,
    *,
    preview: bool = False,
    workers: int = 0,
    progress: Progress = NO_PROGRESS,
) -> SimulateResult:
    """Write the cohort of ``config`` (tables, CT images, masks, outcomes, ``truth.csv``) to
    ``out``, PNG slices of its first :data:`PREVIEWS` patients under ``out/preview`` when
    ``preview`` (and the cohort has images), and ``simulation.json`` (the config, the seconds
    and the rates); ``workers`` processes (0: the CPU count)."""
    progress.step("simulating patients")
    started = time.perf_counter()
    simulate_cohort(config, out, workers=workers or os.cpu_count() or 1, progress=progress.update)
    seconds = time.perf_counter() - started

    previews: list[Path] = []
    if preview and config.images:
        truth = read_truth(out)
        for patient_id in sorted({p for p, _ in truth.index})[:PREVIEWS]:
            row = truth.loc[patient_id].iloc[0]
            motion = RigidTransform(
                np.array([float(v) for v in row["motion_matrix"].split()]).reshape(3, 3),
                np.array([float(v) for v in row["motion_translation_mm"].split()]),
            )
            previews.append(
                write_preview(
                    out / "images" / patient_id, out / "preview" / f"{patient_id}.png", 1, motion
                )
            )

    rates = cohort_rates(out)
    # The plain appearance is left out, so that simulation.json of a plain cohort stays what it
    # was before there was a choice (absent means plain).
    recorded = config.model_dump(exclude={"appearance"} if config.appearance == "plain" else None)
    (out / "simulation.json").write_text(
        json.dumps({"config": recorded, "seconds": round(seconds, 1), "rates": rates}, indent=2),
        encoding="utf-8",
    )
    return SimulateResult(out, config, seconds, rates, previews)
