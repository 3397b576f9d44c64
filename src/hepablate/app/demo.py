"""The job ``demo``: the whole pipeline on a virtual cohort, through the same jobs a user runs:
simulate, extract, train (baselines and the multimodal network on the same folds, the report
and the bundle), then predict for a new virtual patient."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from hepablate import configs
from hepablate.app.extract import ExtractResult, extract_cohort
from hepablate.app.predict import PredictResult, predict
from hepablate.app.progress import NO_PROGRESS, Progress, Within
from hepablate.app.simulate import SimulateResult, simulate
from hepablate.app.train import TrainResult, train
from hepablate.outputs import check_output_dir, staged_dir
from hepablate.simulate.generate import SimulationConfig

__all__ = ["DEMO_OUTPUTS", "DemoResult", "DemoStarted", "DemoStep", "demo"]

# The new patient is drawn with another seed than the cohort's: a patient no model has seen.
NEW_PATIENT_SEED_OFFSET = 10_000
# Everything the demo writes into OUT (features.cache: the extraction's per-patient cache).
DEMO_OUTPUTS = frozenset(
    {
        "cohort",
        "features.parquet",
        "features.cache",
        "study.yaml",
        "study",
        "new_patient",
        "prediction.json",
    }
)


StepResult = SimulateResult | ExtractResult | TrainResult | PredictResult


@dataclass(frozen=True)
class DemoStarted:
    """The demo's working folder (beside ``out``; it becomes ``out`` when every step is done),
    the first part of the demo's progress."""

    stage: Path
    out: Path


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo done (a part of its progress): its title (``"1/5 simulate 200
    patients"``), the seconds it took and its result, with paths in the working folder."""

    name: str
    title: str
    seconds: float
    result: StepResult


@dataclass(frozen=True)
class DemoResult:
    """A complete demo in ``out``: its steps in order and where everything is."""

    out: Path
    steps: list[DemoStep]

    @property
    def seconds(self) -> dict[str, float]:
        """The seconds of each step, by name."""
        return {step.name: step.seconds for step in self.steps}

    @property
    def places(self) -> list[tuple[str, Path]]:
        """What the demo wrote and where, in ``out``."""
        out = self.out
        return [
            ("virtual cohort (truth.csv: the simulator's truth)", out / "cohort"),
            ("preview slices", out / "cohort" / "preview"),
            ("features", out / "features.parquet"),
            ("study config as run", out / "study.yaml"),
            ("study report", out / "study" / "report.html"),
            ("study report (PDF)", out / "study" / "report.pdf"),
            ("metrics with CIs", out / "study" / "metrics.json"),
            ("model bundle", out / "study" / "bundle"),
            ("new patient", out / "new_patient"),
            ("prediction", out / "prediction.json"),
        ]


def demo(
    out: Path,
    *,
    n: int = 200,
    seed: int = 1,
    workers: int = 0,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> DemoResult:
    """Simulate ``n`` patients, extract their features (the light config), validate the
    baselines and the multimodal network on the same folds (the virtual_ltp_24m study, one
    repeat), write the report and the bundle, and predict for a new virtual patient.

    The demo works in a folder beside ``out`` that takes its place when every step is done
    (``OutputError`` if ``out`` is neither empty nor an earlier demo, without ``overwrite``);
    a step's error (the exceptions of its job) leaves ``out`` as it was. Each step is handed
    to ``progress.part`` as a :class:`DemoStep` when it is done.
    """
    check_output_dir(out, "demo", overwrite=overwrite, names=DEMO_OUTPUTS)
    with staged_dir(out, "demo", overwrite=overwrite, names=DEMO_OUTPUTS) as stage:
        progress.part(DemoStarted(stage, out))
        steps = _steps(stage, n=n, seed=seed, workers=workers, progress=progress)
    return DemoResult(out, steps)


def _steps(out: Path, *, n: int, seed: int, workers: int, progress: Progress) -> list[DemoStep]:
    """The five steps into ``out``, each handed to ``progress.part`` when done."""
    cohort, features, run_dir = out / "cohort", out / "features.parquet", out / "study"
    new_patient, prediction = out / "new_patient", out / "prediction.json"
    study = configs.path("virtual_ltp_24m")
    settings = yaml.safe_load(study.read_text(encoding="utf-8"))
    settings["validation"]["repeats"] = 1  # three repeats would take the demo past 15 minutes
    demo_study = out / "study.yaml"
    demo_study.write_text(
        f"# {study.name} with one repeat (hepablate demo)\n" + yaml.safe_dump(settings),
        encoding="utf-8",
    )
    steps: list[DemoStep] = []

    def run(name: str, title: str, job: Callable[[Progress], StepResult]) -> None:
        started = time.perf_counter()
        result = job(Within(progress, title))
        step = DemoStep(name, title, time.perf_counter() - started, result)
        steps.append(step)
        progress.part(step)

    run(
        "simulate",
        f"1/5 simulate {n} patients",
        lambda p: simulate(
            SimulationConfig(n=n, seed=seed), cohort, preview=True, workers=workers, progress=p
        ),
    )
    run(
        "extract",
        "2/5 extract features (light config)",
        lambda p: extract_cohort(
            cohort, features, config=configs.path("light_extraction"), workers=workers, progress=p
        ),
    )
    run(
        "train",
        "3/5 train: selection, baselines and the multimodal network, report, bundle",
        lambda p: train(features, demo_study, run_dir, progress=p),
    )
    run(
        "new patient",
        "4/5 a new virtual patient",
        lambda p: simulate(
            SimulationConfig(n=1, seed=seed + NEW_PATIENT_SEED_OFFSET),
            new_patient,
            workers=1,
            progress=p,
        ),
    )
    run(
        "predict",
        "5/5 predict for the new patient",
        lambda p: predict(run_dir / "bundle", new_patient, prediction, progress=p),
    )
    return steps
