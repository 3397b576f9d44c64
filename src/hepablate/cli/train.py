"""``hepablate train``: select features, validate models and write the study report."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._progress import progress_bar
from hepablate.cli.validate import EXIT_INVALID, print_report

__all__ = ["TRAIN_OUTPUTS", "train"]

# Everything a run may write into RUN_DIR: a file of these names that an earlier run did not
# write is never replaced without --overwrite.
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


def train(
    source: Annotated[
        Path,
        typer.Argument(
            help="A FeatureTable (.parquet from `hepablate extract`) or a cohort folder."
        ),
    ],
    config_file: Annotated[
        Path, typer.Option("--config", help="The study config (YAML; docs/study-config.md).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The run folder to write.")],
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.html and report.pdf.")
    ] = True,
    bundle: Annotated[
        bool,
        typer.Option(
            "--bundle/--no-bundle",
            help="Write the model bundle (OUT/bundle: the best model or the config's "
            "bundle_model) for `hepablate predict`.",
        ),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Write into a non-empty OUT that is not an earlier run of `hepablate train`, "
            "replacing files of the names train writes; other files are kept.",
        ),
    ] = False,
) -> None:
    """Select features and validate every model of the study on the same folds, grouped by
    patient; selection, imputation, scaling and tuning are refitted inside every training set.

    Writes OUT/metrics.json (every metric with its 95% CI, per model), OUT/selected_features.csv
    (how often each feature was selected), OUT/predictions.csv (out-of-fold predictions),
    OUT/study.yaml (the config as run), OUT/report.html + OUT/report.pdf and OUT/bundle/ (the
    model refitted on all rows, verified by `hepablate predict`).

    The run is written beside OUT and takes its place when complete: OUT always holds the
    whole previous run or the whole new one. A rerun into OUT replaces what the earlier run
    wrote and keeps every other file.
    """
    from hepablate.app import load_feature_table
    from hepablate.cohort import CohortValidationError
    from hepablate.outputs import OutputError, check_output_dir, staged_dir
    from hepablate.schemas import read_metrics
    from hepablate.study.config import StudyConfigError, load_study_config
    from hepablate.study.data import check_folds, study_data
    from hepablate.study.results import write_outputs
    from hepablate.study.run import run_study

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_dir(out, "train", overwrite=overwrite, names=TRAIN_OUTPUTS)
    except OutputError as exc:
        _refuse(console, exc)
    from hepablate.bundle import BundleError
    from hepablate.features.extract import ExtractionConfigError
    from hepablate.parallel import SchedulerError

    try:
        config = load_study_config(config_file)
        table = load_feature_table(source, config)
        data = study_data(table, config)
        problems = check_folds(data, config)
    except CohortValidationError as invalid:
        print_report(invalid.report, console)
        raise typer.Exit(EXIT_INVALID) from None
    except (StudyConfigError, ExtractionConfigError, BundleError, SchedulerError) as exc:
        _refuse(console, exc)
    console.print(
        f"Endpoint {config.endpoint} ({data.endpoint['kind']}): {len(data.y)} rows, "
        f"{len(set(data.groups))} patients, {data.endpoint['events']} events, "
        f"{data.X.shape[1]} candidate columns"
        + (
            f"; {data.excluded_rows} rows without a known outcome left out"
            if data.excluded_rows
            else ""
        )
    )
    for problem in problems:
        console.print(f"[yellow]WARNING[/] {escape(problem)}")
    gathered: list[str] = []
    try:
        with progress_bar("validating") as advance, _gathered(gathered):
            result = run_study(data, config, progress=advance)
    except StudyConfigError as exc:
        _refuse(console, exc)
    from hepablate.report.study import write_cohort_tables, write_report

    late: list[str] = []  # the libraries' warnings while the outputs are written
    try:
        with (
            _gathered(late),
            staged_dir(out, "train", overwrite=overwrite, names=TRAIN_OUTPUTS) as stage,
        ):
            paths = write_outputs(result, stage, warnings=problems + gathered)
            shutil.copyfile(config_file, stage / "study.yaml")
            write_cohort_tables(data, stage)
            if report:
                paths.update(write_report(stage))
            summary = read_metrics(paths["metrics"])
            if bundle:
                from hepablate.bundle import save_bundle

                extraction = table.attrs.get("hepablate", {}).get("extraction_config")
                paths["bundle"] = save_bundle(
                    result, summary, stage / "bundle", extraction=extraction
                )
            paths = {name: out / path.relative_to(stage) for name, path in paths.items()}
    except OutputError as exc:  # the folder changed while the study ran
        _refuse(console, exc)
    metric = summary.comparison.metric
    console.print(f"{'model':<28} {metric} (95% CI)")
    for name in summary.comparison.ranking:
        scored = summary.models[name].metrics.headline
        low, high = ("-", "-") if scored.ci is None else (f"{c:.3f}" for c in scored.ci)
        shown = "-" if scored.value is None else f"{scored.value:.3f}"
        console.print(f"{name:<28} {shown} ({low} to {high})")
    permutation = summary.permutation
    if permutation:
        for run in permutation.runs:
            chance = "-" if run.value is None else f"{run.value:.3f}"
            interval = "" if run.ci is None else f" ({run.ci[0]:.3f} to {run.ci[1]:.3f})"
            console.print(f"label permutation ({permutation.model}): {metric} {chance}{interval}")
    for problem in gathered + late:
        console.print(f"[yellow]WARNING[/] {escape(problem)}")
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


def _refuse(console: Console, exc: Exception) -> NoReturn:
    """Print an input error, one line per problem, and exit 2."""
    for line in str(exc).splitlines():
        console.print(f"[red]ERROR[/] {escape(line)}")
    raise typer.Exit(EXIT_INVALID) from None


@contextmanager
def _gathered(problems: list[str]) -> Iterator[None]:
    """The libraries' warnings of the study, each once with its count, appended to
    ``problems`` in plain words, instead of a source path and line on stderr per fold."""
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
