"""``hepablate extract COHORT_DIR --out features.parquet``: the FeatureTable of a cohort."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hepablate.cli._errors import input_errors
from hepablate.cli._progress import progress_bar

if TYPE_CHECKING:
    from hepablate.app import ExtractResult

__all__ = ["extract", "print_extraction"]


class Masks(StrEnum):
    """Where the masks come from (``ExtractionConfig.masks``)."""

    manual = "manual"
    auto = "auto"
    manual_else_auto = "manual_else_auto"


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
    masks: Annotated[
        Masks | None,
        typer.Option(
            "--masks",
            help="The cohort's masks (manual), the segmenter's for every patient (auto), or the "
            "segmenter's where a patient lacks a mask (manual_else_auto); default: the "
            "config's masks (manual).",
        ),
    ] = None,
    segmenter: Annotated[
        Path | None,
        typer.Option(
            "--segmenter",
            help="The segmentation bundle (`hepablate segment train`) that draws the automatic "
            "masks.",
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
    from hepablate.app import extract_cohort

    console = Console(highlight=False, soft_wrap=True)
    with input_errors(console), progress_bar() as progress:
        result = extract_cohort(
            cohort_dir,
            out,
            config=config_file,
            masks=None if masks is None else masks.value,
            segmenter=segmenter,
            register=register,
            workers=workers,
            scheduler=scheduler,
            cache=cache,
            use_cache=use_cache,
            overwrite=overwrite,
            progress=progress,
        )
    print_extraction(console, result)


def print_extraction(console: Console, result: ExtractResult) -> None:
    """Where the FeatureTable is, its shape, and what the extraction found wanting."""
    _print_summary(console, result.table, result.out)


def _print_summary(console: Console, table, out: Path) -> None:  # type: ignore[no-untyped-def]
    # Imported here: this function is edited apart from the command above it.
    from collections import Counter

    from rich.markup import escape

    rows = "tumours" if table.attrs["hepablate"]["rows"] == "tumour" else "patients"
    console.print(f"Wrote {len(table)} {rows} x {table.shape[1]} columns to {out}")
    info = table.attrs["hepablate"]
    if "qa.mask_source" in table:
        sources = table.groupby("group")["qa.mask_source"].first().value_counts()
        if set(sources.index) - {"manual"}:
            counts = ", ".join(f"{n} {source}" for source, n in sources.items())
            console.print(f"  masks by patient: {counts}")
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
