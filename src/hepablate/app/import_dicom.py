"""The job ``import-dicom``: DICOM studies into a de-identified cohort."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.cohort.dicom_import import ImportResult, PatientRule
from hepablate.cohort.dicom_import import import_dicom as run_import

__all__ = ["DicomImportResult", "import_dicom"]


@dataclass(frozen=True)
class DicomImportResult:
    """A written cohort and its identity mapping, with what was imported and what was not."""

    out: Path
    mapping: Path
    imported: ImportResult


def import_dicom(
    source: Path,
    out: Path,
    mapping: Path,
    *,
    patient_from: PatientRule = PatientRule.PATIENT_ID,
    mask_names: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> DicomImportResult:
    """Import every patient of ``source`` into the new cohort folder ``out``, the link to the
    real identities into ``mapping`` (outside ``out``). A ``DicomImportError`` lists every
    problem, found before anything is written
    (:func:`hepablate.cohort.dicom_import.import_dicom`)."""
    progress.step("importing DICOM studies")
    imported = run_import(source, out, mapping, patient_from=patient_from, mask_names=mask_names)
    return DicomImportResult(out, mapping, imported)
