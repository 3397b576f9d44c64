"""``hepablate validate COHORT_DIR``: check a cohort and list every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._errors import EXIT_INVALID
from hepablate.cli._progress import progress_bar
from hepablate.cohort import Severity, ValidationReport

__all__ = ["EXIT_INVALID", "print_report", "validate"]

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
    from hepablate.app import validate as run_validate

    with progress_bar() as progress:
        report = run_validate(cohort_dir, images=images, progress=progress)

    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report, Console(highlight=False, soft_wrap=True))
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def print_report(report: ValidationReport, out: Console) -> None:
    """A validation report as text: the cohort's counts, every problem, the verdict."""
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
