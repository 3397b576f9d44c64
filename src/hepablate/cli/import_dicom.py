"""``hepablate import-dicom SRC --out COHORT_DIR --mapping FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli.validate import EXIT_INVALID
from hepablate.cohort.dicom_import import PatientRule

__all__ = ["import_dicom"]


def import_dicom(
    source: Annotated[Path, typer.Argument(help="A folder of DICOM studies (any layout).")],
    out: Annotated[Path, typer.Option("--out", help="The cohort folder to write (new or empty).")],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            help="Where to keep the link to the real identities "
            "(a CSV outside the cohort folder; keep it private).",
        ),
    ],
    patient_from: Annotated[
        PatientRule,
        typer.Option(
            "--patient-from",
            help="How to tell patients apart: by DICOM PatientID; one patient per folder under "
            "SRC (public data sets with blank or equal PatientIDs); or one per study.",
        ),
    ] = PatientRule.PATIENT_ID,
    mask_names: Annotated[
        Path | None,
        typer.Option(
            "--mask-names",
            help="A YAML file of rules naming mask structures, tried before the shipped ones "
            "(hepablate/cohort/dicom_masks.yaml; docs/cohort-format.md, section 7).",
        ),
    ] = None,
) -> None:
    """Turn DICOM studies into a de-identified cohort.

    Per patient, one study with a CT is a pre-treatment patient; two studies are the
    pre-treatment and the post-ablation scan, by date. Masks come from DICOM-SEG, RTSTRUCT and
    mask image series (one structure per series, two values such as 0/255), by the names of
    their segments, ROIs, series descriptions or folders: tumour N, ablation N, liver, vessels.
    """
    from hepablate.cohort.dicom_import import DicomImportError
    from hepablate.cohort.dicom_import import import_dicom as run_import

    console = Console(highlight=False, soft_wrap=True)
    try:
        result = run_import(source, out, mapping, patient_from=patient_from, mask_names=mask_names)
    except DicomImportError as exc:
        for problem in exc.problems:
            console.print(f"[bold red]ERROR[/] {escape(problem)}")
        console.print("Nothing was written.")
        raise typer.Exit(EXIT_INVALID) from None
    console.print(
        f"Wrote a de-identified cohort of {len(result.patients)} patient(s) to "
        f"{escape(str(out))}; the identity mapping is in {escape(str(mapping))} (keep it private)"
    )
    for line in result.patients:
        console.print(f"  {escape(line)}")
    for name in result.not_dicom:
        console.print(f"  skipped (not DICOM): {escape(name)}")
    for note in result.not_imported:
        console.print(f"  not imported: {escape(note)}")
    console.print(f"Next: add clinical columns and outcomes, then hepablate validate {out}")
