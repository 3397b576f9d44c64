"""``hepablate import-dicom SRC --out COHORT_DIR --mapping FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli.validate import EXIT_INVALID

__all__ = ["import_dicom"]


def import_dicom(
    source: Annotated[Path, typer.Argument(help="A folder of DICOM studies (any layout).")],
    out: Annotated[Path, typer.Option("--out", help="The cohort folder to write.")],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            help="Where to keep the link to the real identities "
            "(a CSV outside the cohort folder; keep it private).",
        ),
    ],
) -> None:
    """Turn DICOM studies (CT + DICOM-SEG/RTSTRUCT) into a de-identified cohort.

    Per patient, the earliest study is the pre-ablation scan and the latest the post-ablation
    scan; masks come from the segments named tumour N, ablation N, liver, vessels.
    """
    from hepablate.cohort.dicom_import import DicomImportError
    from hepablate.cohort.dicom_import import import_dicom as run_import

    console = Console(highlight=False, soft_wrap=True)
    try:
        skipped = run_import(source, out, mapping)
    except DicomImportError as exc:
        console.print(f"[bold red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    console.print(
        f"Wrote a de-identified cohort to {escape(str(out))}; the identity mapping is "
        f"in {escape(str(mapping))} (keep it private)"
    )
    for name in skipped:
        console.print(f"  skipped (not DICOM): {escape(name)}")
    console.print(f"Next: add clinical columns and outcomes, then hepablate validate {out}")
