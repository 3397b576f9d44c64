"""``hepablate import-dicom SRC --out COHORT_DIR --mapping FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._errors import input_errors
from hepablate.cli._progress import progress_bar
from hepablate.cohort.dicom_import import PatientRule

if TYPE_CHECKING:
    from hepablate.app import DicomImportResult

__all__ = ["import_dicom", "print_import"]


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
    from hepablate.app import import_dicom as run_import

    console = Console(highlight=False, soft_wrap=True)
    with input_errors(console), progress_bar() as progress:
        result = run_import(
            source,
            out,
            mapping,
            patient_from=patient_from,
            mask_names=mask_names,
            progress=progress,
        )
    print_import(console, result)


def print_import(console: Console, result: DicomImportResult) -> None:
    """The cohort written, where its identities are, and what was not imported."""
    out, imported = result.out, result.imported
    console.print(
        f"Wrote a de-identified cohort of {len(imported.patients)} patient(s) to "
        f"{escape(str(out))}; the identity mapping is in {escape(str(result.mapping))} "
        "(keep it private)"
    )
    for line in imported.patients:
        console.print(f"  {escape(line)}")
    for name in imported.not_dicom:
        console.print(f"  skipped (not DICOM): {escape(name)}")
    for note in imported.not_imported:
        console.print(f"  not imported: {escape(note)}")
    console.print(f"Next: add clinical columns and outcomes, then hepablate validate {out}")
