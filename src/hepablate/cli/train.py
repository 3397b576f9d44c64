"""``hepablate train``: select features, validate models and write the study report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hepablate.cli._progress import progress_bar
from hepablate.cli.validate import EXIT_INVALID, print_report

__all__ = ["train"]


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
) -> None:
    """Select features and validate every model of the study on the same folds, grouped by
    patient; selection, imputation, scaling and tuning are refitted inside every training set.

    Writes OUT/metrics.json (every metric with its 95% CI, per model), OUT/selected_features.csv
    (how often each feature was selected), OUT/predictions.csv (out-of-fold predictions),
    OUT/study.yaml (the config as run), OUT/report.html + OUT/report.pdf and OUT/bundle/ (the
    model refitted on all rows, verified by `hepablate predict`).
    """
    from hepablate.cohort import CohortValidationError
    from hepablate.study.config import StudyConfigError, load_study_config
    from hepablate.study.data import load_feature_table, study_data
    from hepablate.study.results import headline, write_outputs
    from hepablate.study.run import run_study

    console = Console(highlight=False, soft_wrap=True)
    try:
        config = load_study_config(config_file)
        table = load_feature_table(source, config)
        data = study_data(table, config)
    except CohortValidationError as invalid:
        print_report(invalid.report, console)
        raise typer.Exit(EXIT_INVALID) from None
    except StudyConfigError as exc:
        console.print(f"[red]ERROR[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from None
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
    try:
        with progress_bar("validating") as advance:
            result = run_study(data, config, progress=advance)
    except StudyConfigError as exc:
        console.print(f"[red]ERROR[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    from hepablate.report.study import write_cohort_tables, write_report

    paths = write_outputs(result, out)
    shutil.copyfile(config_file, out / "study.yaml")
    write_cohort_tables(data, out)
    if report:
        paths.update(write_report(out))
    import json

    summary = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    if bundle:
        from hepablate.bundle import save_bundle

        extraction = table.attrs.get("hepablate", {}).get("extraction_config")
        paths["bundle"] = save_bundle(result, summary, out / "bundle", extraction=extraction)
    metric = summary["comparison"]["metric"]
    console.print(f"{'model':<28} {metric} (95% CI)")
    for name in summary["comparison"]["ranking"]:
        scored = summary["models"][name]["metrics"][metric]
        value = headline(summary["models"][name]["metrics"], data.survival)
        ci = scored.get("ci") or [None, None]
        low = "-" if ci[0] is None else f"{ci[0]:.3f}"
        high = "-" if ci[1] is None else f"{ci[1]:.3f}"
        shown = "-" if value is None else f"{value:.3f}"
        console.print(f"{name:<28} {shown} ({low} to {high})")
    permutation = summary.get("permutation")
    if permutation:
        for run in permutation["runs"]:
            ci = run.get("ci") or [None, None]
            console.print(
                f"label permutation ({permutation['model']}): {metric} "
                f"{run['value']:.3f} ({ci[0]:.3f} to {ci[1]:.3f})"
            )
    for name, path in paths.items():
        console.print(f"  {name}: {path}")
