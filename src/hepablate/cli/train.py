"""``hepablate train``: select features, validate models and write the study report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._errors import input_errors
from hepablate.cli._progress import progress_bar

if TYPE_CHECKING:
    from hepablate.app import StudyPlan, TrainResult

__all__ = ["print_plan", "print_training", "train"]


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
    from hepablate.app import StudyPlan
    from hepablate.app import train as run_train

    console = Console(highlight=False, soft_wrap=True)

    def show(part: object) -> None:
        if isinstance(part, StudyPlan):
            print_plan(console, part)

    with input_errors(console), progress_bar(show) as progress:
        result = run_train(
            source,
            config_file,
            out,
            report=report,
            bundle=bundle,
            overwrite=overwrite,
            progress=progress,
        )
    print_training(console, result)


def print_plan(console: Console, plan: StudyPlan) -> None:
    """The study's data, before the first fit, and what its folds found wanting."""
    console.print(
        f"Endpoint {plan.endpoint} ({plan.kind}): {plan.rows} rows, {plan.patients} patients, "
        f"{plan.events} events, {plan.candidates} candidate columns"
        + (
            f"; {plan.excluded_rows} rows without a known outcome left out"
            if plan.excluded_rows
            else ""
        )
    )
    for problem in plan.warnings:
        console.print(f"[yellow]WARNING[/] {escape(problem)}")


def print_training(console: Console, result: TrainResult) -> None:
    """Every model's headline metric with its CI, best first, the permutation check, the
    libraries' warnings and the paths written."""
    summary = result.summary
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
    for problem in result.warnings:
        console.print(f"[yellow]WARNING[/] {escape(problem)}")
    for name, path in result.paths.items():
        console.print(f"  {name}: {path}")
