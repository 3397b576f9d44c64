"""The job ``validate``: check a cohort folder and list every problem."""

from __future__ import annotations

from pathlib import Path

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.cohort import Cohort, ValidationReport, load_cohort, validate_cohort

__all__ = ["load_valid_cohort", "validate"]


def validate(
    cohort_dir: Path, *, images: bool = True, progress: Progress = NO_PROGRESS
) -> ValidationReport:
    """Check a cohort against its ``cohort.yaml`` (tables, values, units, outcomes and, with
    ``images``, every image and mask); the report holds every problem, errors and warnings,
    each naming its patient, file, row and field. An invalid cohort is a report, not an
    exception: ``report.ok`` says whether it can be used."""
    progress.step("checking images")
    return validate_cohort(cohort_dir, check_images=images, progress=progress.update)


def load_valid_cohort(cohort_dir: Path, progress: Progress = NO_PROGRESS) -> Cohort:
    """The validated cohort of a job that reads one; a ``CohortValidationError`` carrying the
    whole report when it has an error."""
    progress.step("checking the cohort")
    return load_cohort(cohort_dir, progress=progress.update)
