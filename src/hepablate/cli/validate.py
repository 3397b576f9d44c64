"""``hepablate validate COHORT_DIR``: check a cohort and list every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._progress import progress_bar
from hepablate.cohort import Cohort, Severity, ValidationReport, validate_cohort

__all__ = ["EXIT_INVALID", "load_cohort_or_exit", "print_report", "validate"]

EXIT_INVALID = 2

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow"}


def validate(
    cohort_dir: Annotated[Path, typer.Argument(help="The cohort folder (holding cohort.yaml).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of text.")
    ] = False,
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="Read and check every image and mask.")
    ] = True,
) -> None:
    """Check a cohort against its cohort.yaml: tables, values, units, outcomes, images.

    Exits 0 when the cohort is valid (warnings allowed) and 2 when it has errors, after
    listing every problem with the patient, file, row and field it concerns.
    """
    with progress_bar("checking images") as advance:
        report = validate_cohort(cohort_dir, check_images=images, progress=advance)

    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report, Console(highlight=False, soft_wrap=True))
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def load_cohort_or_exit(cohort_dir: Path, out: Console) -> Cohort:
    """The validated cohort, or its problems printed and exit code 2 (what every command that
    reads a cohort does with an invalid one)."""
    from hepablate.cohort import CohortValidationError, load_cohort

    try:
        return load_cohort(cohort_dir)
    except CohortValidationError as invalid:
        print_report(invalid.report, out)
        raise typer.Exit(EXIT_INVALID) from None


def print_report(report: ValidationReport, out: Console) -> None:
    summary = report.summary
    if summary:
        parts = [f"{summary['patients']} patients"]
        if "tumours" in summary:
            parts.append(f"{summary['tumours']} tumours")
        if "centres" in summary:
            parts.append(f"{len(summary['centres'])} centres")
        parts.append(f"{summary['images']} images and masks")
        out.print(
            f"Cohort {escape(repr(summary['name']))} in {escape(report.cohort_dir)}: "
            + ", ".join(parts)
        )
        for endpoint, counts in summary.get("endpoints", {}).items():
            if counts["kind"] == "binary":
                text = f"{counts['events']} events among {counts['labelled']} labelled rows"
                text += f" of {counts['rows']}"
            else:
                text = f"{counts['events']} events, {counts['censored']} censored"
                text += f", median time {counts['median_time_months']} months"
            out.print(f"  endpoint {escape(endpoint)} ({counts['kind']}): {text}")
    for severity in (Severity.ERROR, Severity.WARNING):
        for problem in (p for p in report.problems if p.severity is severity):
            out.print(
                f"[{_STYLE[severity]}]{severity.value.upper()}[/] "
                f"[dim]\\[{escape(problem.code)}][/] {escape(problem.location())}: "
                f"{escape(problem.message)}"
            )
    n_errors, n_warnings = len(report.errors), len(report.warnings)
    counts = f"{n_errors} error(s), {n_warnings} warning(s)"
    if report.ok:
        out.print(f"[green]valid[/]: {counts}")
    else:
        out.print(f"[bold red]not valid[/]: {counts}; fix the errors above and run again")
