"""The job ``train``: a study from a FeatureTable or a cohort, its outputs, report and bundle."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hepablate.app.extract import load_feature_table
from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.bundle import save_bundle
from hepablate.outputs import check_output_dir, staged_dir
from hepablate.report.study import write_cohort_tables, write_report
from hepablate.schemas import BinaryStudySummary, SurvivalStudySummary, read_metrics
from hepablate.study.config import load_study_config
from hepablate.study.data import check_folds, study_data
from hepablate.study.results import write_outputs
from hepablate.study.run import run_study

__all__ = ["TRAIN_OUTPUTS", "StudyPlan", "TrainResult", "train"]

# Everything a run may write into RUN_DIR: a file of these names that an earlier run did not
# write is never replaced without overwrite.
TRAIN_OUTPUTS = frozenset(
    {
        "metrics.json",
        "selected_features.csv",
        "predictions.csv",
        "study.yaml",
        "table1.csv",
        "missingness.csv",
        "report.html",
        "report.pdf",
        "bundle",
    }
)


@dataclass(frozen=True)
class StudyPlan:
    """The data a study is about to validate on, known before the first fit (a part of the
    train job's progress): the endpoint, the rows, patients, events and candidate columns, and
    what the folds found wanting (``study.data.check_folds``: warnings, not errors)."""

    endpoint: str
    kind: str  # binary or time_to_event
    rows: int
    patients: int
    events: int
    candidates: int
    excluded_rows: int  # rows without a known outcome, left out
    warnings: list[str]


@dataclass(frozen=True)
class TrainResult:
    """A written run: the typed study summary (``metrics.json``), the paths written (in
    ``out``: ``metrics``, ``selected_features``, ``predictions``, ``report_html`` and
    ``report_pdf`` with the report, ``bundle`` with the bundle), the plan, and the libraries'
    warnings while the study ran and its outputs were written (each once, counted)."""

    out: Path
    plan: StudyPlan
    summary: BinaryStudySummary | SurvivalStudySummary
    paths: dict[str, Path]
    warnings: list[str]


def train(
    source: Path,
    config_file: Path,
    out: Path,
    *,
    report: bool = True,
    bundle: bool = True,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> TrainResult:
    """Validate every model of the study config on ``source`` (a ``.parquet`` FeatureTable or
    a cohort folder, extracted with the config's ``extraction``) and write the run into
    ``out``: ``metrics.json``, ``selected_features.csv``, ``predictions.csv``, ``study.yaml``
    (the config as run), ``table1.csv``, ``missingness.csv``, with ``report`` the report (HTML
    and PDF), with ``bundle`` the model bundle (``out/bundle``, signed with the user's key).

    Checked before any fit, in this order: ``out`` (``OutputError``; a non-empty folder must be
    an earlier run or ``overwrite`` is needed), the config (``StudyConfigError``), the table
    (``StudyConfigError``; for a cohort ``CohortValidationError``, ``ExtractionConfigError``,
    ``BundleError``, ``SchedulerError``), the folds (``StudyConfigError``). The run is written
    beside ``out`` and takes its place when complete: ``out`` holds the whole previous run or
    the whole new one, and files an earlier run did not write are kept.
    """
    check_output_dir(out, "train", overwrite=overwrite, names=TRAIN_OUTPUTS)
    config = load_study_config(config_file)
    table = load_feature_table(source, config, progress)
    data = study_data(table, config)
    plan = StudyPlan(
        endpoint=config.endpoint,
        kind=str(data.endpoint["kind"]),
        rows=len(data.y),
        patients=len(set(data.groups)),
        events=int(data.endpoint["events"]),
        candidates=int(data.X.shape[1]),
        excluded_rows=data.excluded_rows,
        warnings=check_folds(data, config),
    )
    progress.part(plan)
    gathered: list[str] = []
    progress.step("validating")
    with gathered_warnings(gathered):
        result = run_study(data, config, progress=progress.update)
    late: list[str] = []  # the libraries' warnings while the outputs are written
    progress.step("writing the outputs")
    with (
        gathered_warnings(late),
        staged_dir(out, "train", overwrite=overwrite, names=TRAIN_OUTPUTS) as stage,
    ):
        paths = write_outputs(result, stage, warnings=plan.warnings + gathered)
        shutil.copyfile(config_file, stage / "study.yaml")
        write_cohort_tables(data, stage)
        if report:
            paths.update(write_report(stage))
        summary = read_metrics(paths["metrics"])
        if bundle:
            extraction = table.attrs.get("hepablate", {}).get("extraction_config")
            paths["bundle"] = save_bundle(result, summary, stage / "bundle", extraction=extraction)
        paths = {name: out / path.relative_to(stage) for name, path in paths.items()}
    return TrainResult(out, plan, summary, paths, gathered + late)


@contextmanager
def gathered_warnings(problems: list[str]) -> Iterator[None]:
    """The libraries' warnings of a block, each once with its count, appended to ``problems``
    in plain words, instead of a source path and line on stderr per fold."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every one, to count them
        for hidden in (DeprecationWarning, PendingDeprecationWarning):  # for developers
            warnings.simplefilter("ignore", hidden)
        yield
    counts = Counter(
        (_library(w.filename), w.category.__name__, str(w.message).strip()) for w in caught
    )
    for (library, category, message), count in counts.items():
        times = "" if count == 1 else f", {count} times"
        problems.append(f"{library} ({category}{times}): {message}")


def _library(filename: str) -> str:
    """The top-level package a warning came from (``sklearn``), from its file's path."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return "hepablate" if "hepablate" in parts else Path(filename).stem
