"""``hepablate extract COHORT_DIR --out features.parquet``: the FeatureTable of a cohort."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hepablate.cli._progress import progress_bar
from hepablate.cli.validate import EXIT_INVALID, print_report

__all__ = ["extract"]


def extract(
    cohort_dir: Annotated[Path, typer.Argument(help="The cohort folder (holding cohort.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="The FeatureTable to write (.parquet).")],
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Processes (0, the default: the CPU count).")
    ] = 0,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Register the post-ablation CT onto the pre-ablation CT (default).",
        ),
    ] = True,
) -> None:
    """Validate a cohort, then measure every tumour: clinical scores and ablation geometry.

    Writes one row per tumour (per patient for a cohort without tumours) with its patient id
    and centre; the extraction settings are stored in the file's metadata.
    """
    from hepablate.cohort import CohortValidationError, load_cohort
    from hepablate.features.extract import ExtractionConfig
    from hepablate.features.extract import extract as run_extract

    out_console = Console(highlight=False, soft_wrap=True)
    try:
        cohort = load_cohort(cohort_dir)
    except CohortValidationError as invalid:
        print_report(invalid.report, out_console)
        raise typer.Exit(EXIT_INVALID) from None
    config = ExtractionConfig(register_post_ct=register)
    with progress_bar("extracting patients") as advance:
        table = run_extract(
            cohort, config, workers=workers or os.cpu_count() or 1, progress=advance
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out)
    _print_summary(out_console, table, out)


def _print_summary(console: Console, table, out: Path) -> None:  # type: ignore[no-untyped-def]
    rows = "tumours" if table.attrs["hepablate"]["rows"] == "tumour" else "patients"
    console.print(f"Wrote {len(table)} {rows} x {table.shape[1]} columns to {out}")
    if "qa.registration_ok" in table:
        by_patient = table.groupby("group")["qa.registration_ok"].first()
        failed = sorted(str(p) for p, ok in by_patient.items() if ok is False)
        dice = table.groupby("group")["qa.registration_liver_dice"].first().astype(float)
        if dice.notna().any():
            console.print(
                f"  registration: liver Dice median {dice.median():.3f} "
                f"(min {dice.min():.3f}); {len(failed)} failed"
            )
        for patient in failed:
            note = table.loc[table["group"] == patient, "qa.registration_note"].iloc[0]
            console.print(
                f"  [yellow]WARNING[/] patient {patient}: {note}; its geometry is left empty"
            )
    if "geom.minimal_ablative_margin_mm" in table:
        margin = table["geom.minimal_ablative_margin_mm"].astype(float)
        console.print(
            f"  minimal ablative margin: median {margin.median():.1f} mm, "
            f"{(margin < 0).mean() * 100:.1f}% below 0 mm, "
            f"{margin.isna().sum()} not measured"
        )
