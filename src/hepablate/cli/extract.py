"""``hepablate extract COHORT_DIR --out features.parquet``: the FeatureTable of a cohort."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._progress import progress_bar
from hepablate.cli.validate import EXIT_INVALID, load_cohort_or_exit

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
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Extraction settings (YAML or JSON, keys of ExtractionConfig)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Run on the Dask cluster at this address (tcp://H:P)."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Per-patient result cache (default: OUT's name + .cache)."),
    ] = None,
    use_cache: Annotated[
        bool, typer.Option("--cache-results/--no-cache", help="Keep and reuse results (default).")
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing OUT that is not a FeatureTable."),
    ] = False,
) -> None:
    """Validate a cohort, then measure every tumour: clinical scores, ablation geometry,
    radiomics of the tumour, its peritumoral ring and its ablation zone, and deep-model crops.

    Writes one row per tumour (per patient for a cohort without tumours) with its patient id
    and centre; the extraction settings and the radiomics' robustness (ICC) are stored in the
    file's metadata. Each patient's result is cached as soon as it is done: a rerun only
    extracts what changed, and a run that was stopped resumes. OUT is checked before any work
    and replaced only when the new table is complete.
    """
    from hepablate.app import extract_features as run_extract
    from hepablate.bundle import BundleError
    from hepablate.features.extract import (
        ExtractionConfig,
        ExtractionConfigError,
        load_extraction_config,
    )
    from hepablate.features.table import is_feature_table
    from hepablate.outputs import OutputError, check_output_file, staged_file
    from hepablate.parallel import SchedulerError

    out_console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_file(
            out, overwrite=overwrite, recognise=is_feature_table, what="a FeatureTable"
        )
    except OutputError as exc:
        out_console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    try:  # the settings before the cohort: reading every image takes a while
        config = ExtractionConfig() if config_file is None else load_extraction_config(config_file)
    except ExtractionConfigError as exc:
        out_console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    cohort = load_cohort_or_exit(cohort_dir, out_console)
    if not register:
        config = config.model_copy(update={"register_post_ct": False})
    cache_dir = (cache or out.with_name(out.stem + ".cache")) if use_cache else None
    try:
        with progress_bar("extracting patients") as advance:
            table = run_extract(
                cohort,
                config,
                workers=workers or os.cpu_count() or 1,
                scheduler=scheduler,
                cache=cache_dir,
                progress=advance,
            )
    except (SchedulerError, ExtractionConfigError, BundleError) as exc:
        out_console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    try:
        with staged_file(out) as partial:
            table.to_parquet(partial)
    except OutputError as exc:
        out_console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    _print_summary(out_console, table, out)


def _print_summary(console: Console, table, out: Path) -> None:  # type: ignore[no-untyped-def]
    # Imported here: this function is edited apart from the command above it.
    from collections import Counter

    from rich.markup import escape

    rows = "tumours" if table.attrs["hepablate"]["rows"] == "tumour" else "patients"
    console.print(f"Wrote {len(table)} {rows} x {table.shape[1]} columns to {out}")
    info = table.attrs["hepablate"]
    if "qa.registration_ok" in table:
        by_patient = table.groupby("group")["qa.registration_ok"].first()
        failed = sum(ok is False for ok in by_patient)
        dice = table.groupby("group")["qa.registration_liver_dice"].first().astype(float)
        if dice.notna().any():
            console.print(
                f"  registration: liver Dice median {dice.median():.3f} "
                f"(min {dice.min():.3f}); {failed} failed"
            )
    for failure in info.get("failed_patients", []):
        console.print(
            f"  [red]ERROR[/] patient {escape(str(failure['patient']))}: extraction failed at "
            f"{escape(str(failure['step']))}: {escape(str(failure['reason']))}"
        )
    warnings = info.get("warnings") or []
    for warning in warnings[:_WARNINGS_SHOWN]:
        where = f"patient {warning['patient']}"
        if warning.get("tumour") is not None:
            where += f" tumour {warning['tumour']}"
        empty = ""
        if warning.get("left_empty") and warning.get("columns"):
            shown = ", ".join(warning["columns"][:3])
            more = len(warning["columns"]) - 3
            empty = f" (left empty: {shown}" + (f" and {more} more" if more > 0 else "") + ")"
        console.print(
            f"  [yellow]WARNING[/] {escape(where)} · {escape(warning['step'])}: "
            f"{escape(warning['reason'])}{escape(empty)}"
        )
    if len(warnings) > _WARNINGS_SHOWN:
        by_step = Counter(w["step"] for w in warnings[_WARNINGS_SHOWN:])
        steps = ", ".join(f"{n} {step}" for step, n in sorted(by_step.items()))
        console.print(
            f"  ... and {len(warnings) - _WARNINGS_SHOWN} more warnings ({steps}); all are in "
            f"the file's metadata (attrs['hepablate']['warnings'])"
        )
    robustness = info.get("robustness") or {}
    if robustness.get("icc"):
        values = list(robustness["icc"].values())
        good = sum(v >= 0.75 for v in values)
        console.print(
            f"  radiomics robustness: ICC >= 0.75 for {good} of {len(values)} features "
            f"({robustness['n_tumours']} perturbed tumours)"
        )
    elif robustness.get("note"):
        console.print(f"  radiomics robustness: {robustness['note']}")
    if "geom.minimal_ablative_margin_mm" in table:
        margin = table["geom.minimal_ablative_margin_mm"].astype(float)
        console.print(
            f"  minimal ablative margin: median {margin.median():.1f} mm, "
            f"{(margin < 0).mean() * 100:.1f}% below 0 mm, "
            f"{margin.isna().sum()} not measured"
        )


# Warnings printed one per line; the rest are counted (all are in the file's metadata).
_WARNINGS_SHOWN = 20
