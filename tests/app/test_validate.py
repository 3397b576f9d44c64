"""The validate job: a report, never an exception, for a cohort with errors; a loaded cohort
or the whole report as a CohortValidationError for the jobs that read one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepablate.app import load_valid_cohort, validate
from hepablate.cohort import CohortValidationError
from tests.app.conftest import Recorder, assert_counted


def test_the_example_is_valid_and_every_patient_counted(
    example_cohort: Path, recorder: Recorder
) -> None:
    report = validate(example_cohort, progress=recorder)
    assert report.ok and report.errors == []
    patients = len((example_cohort / "patients.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert report.summary["patients"] == patients == 6
    assert recorder.steps == ["checking images"]
    assert_counted(recorder.counts("checking images"), patients)


def test_a_cohort_with_an_error_is_a_report_naming_patient_file_and_field(
    cohort_copy: Path,
) -> None:
    table = cohort_copy / "patients.csv"
    lines = table.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("albumin_g_l")] = "forty"
    table.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n", encoding="utf-8")

    report = validate(cohort_copy, images=False)
    assert not report.ok
    (problem,) = report.errors
    assert (problem.patient, Path(str(problem.file)).name, problem.field) == (
        cells[0],
        "patients.csv",
        "albumin_g_l",
    )
    with pytest.raises(CohortValidationError) as raised:
        load_valid_cohort(cohort_copy)
    assert raised.value.report.errors == report.errors
