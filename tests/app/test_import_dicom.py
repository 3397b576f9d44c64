"""The import-dicom job: a DICOM study becomes a cohort; a refused import writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from hepablate.app import import_dicom, validate
from hepablate.cohort.dicom_import import DicomImportError
from hepablate.imaging.io import read_volume, write_dicom_series
from tests.conftest import EXAMPLE_COHORT

pytestmark = pytest.mark.slow  # a CT written and read as DICOM


def test_one_ct_study_is_one_pre_treatment_patient(tmp_path: Path) -> None:
    source = tmp_path / "export"
    write_dicom_series(
        read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_ct.nii.gz"),
        source / "ct",
        patient_id="MRN-4711",
        patient_name="DOE^JANE",
        study_uid=generate_uid(entropy_srcs=["app test"]),
        study_date="20210304",
        series_description="PV pre",
    )
    out, mapping = tmp_path / "cohort", tmp_path / "private" / "mapping.csv"
    result = import_dicom(source, out, mapping)
    assert (result.out, result.mapping) == (out, mapping)
    assert len(result.imported.patients) == 1
    assert "MRN-4711" in mapping.read_text(encoding="utf-8")
    assert (out / "images" / "P0001" / "pre_ct.nii.gz").is_file()
    assert validate(out).errors == []


def test_a_refused_import_lists_the_problem_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    with pytest.raises(DicomImportError) as refused:
        import_dicom(tmp_path / "no_such_folder", out, tmp_path / "mapping.csv")
    assert refused.value.problems == [f"{tmp_path / 'no_such_folder'} is not a folder"]
    assert not out.exists() and not (tmp_path / "mapping.csv").exists()
