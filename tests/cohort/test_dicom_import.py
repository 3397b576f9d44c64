"""`hepablate import-dicom`: two DICOM studies with SEGs become a valid, de-identified cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from click.testing import Result
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import validate_cohort
from hepablate.imaging.io import Volume, read_volume, write_dicom_series
from hepablate.imaging.segmentations import write_dicom_seg
from tests.conftest import EXAMPLE_COHORT

PHI = ("DOE^JANE", "MRN-4711", "19450312")


def _write_study(volume: Volume, folder: Path, study: str, day: str, description: str) -> None:
    write_dicom_series(
        volume,
        folder,
        patient_id=PHI[1],
        patient_name=PHI[0],
        study_uid=study,
        study_date=day,
        series_description=description,
    )
    for path in folder.iterdir():  # a birth date too, as real exports carry
        dataset = pydicom.dcmread(path)
        dataset.PatientBirthDate = PHI[2]
        dataset.save_as(path)


@pytest.fixture
def dicom_source(tmp_path: Path) -> Path:
    """Patient P01 of the example as a hospital would export it: two studies, SEGs, PHI."""
    images = EXAMPLE_COHORT / "images" / "P01"
    pre, post = read_volume(images / "pre_ct.nii.gz"), read_volume(images / "post_ct.nii.gz")
    tumours = read_volume(images / "pre_tumours.nii.gz")
    zones = read_volume(images / "post_ablation.nii.gz")
    liver = read_volume(images / "liver.nii.gz")
    source = tmp_path / "export"
    pre_study, post_study = generate_uid(entropy_srcs=["pre"]), generate_uid(entropy_srcs=["post"])
    _write_study(pre, source / "study1" / "ct", pre_study, "20210304", "PV pre")
    _write_study(post, source / "study2" / "ct", post_study, "20210415", "PV post")

    def binary(v: Volume, label: int) -> Volume:
        return Volume(array=(v.array == label).astype(np.uint8), grid=v.grid)

    write_dicom_seg(
        {"Tumour 1": binary(tumours, 1), "Liver": binary(liver, 1)},
        source / "study1" / "ct",
        source / "study1" / "seg.dcm",
    )
    write_dicom_seg(
        {"Ablation zone 1": binary(zones, 1)},
        source / "study2" / "ct",
        source / "study2" / "seg.dcm",
    )
    (source / "README.txt").write_text("exported by PACS", encoding="utf-8")
    return source


@pytest.mark.slow
def test_import_gives_a_valid_deidentified_cohort(dicom_source: Path, tmp_path: Path) -> None:
    out, mapping = tmp_path / "cohort", tmp_path / "private" / "mapping.csv"

    result = CliRunner().invoke(
        app, ["import-dicom", str(dicom_source), "--out", str(out), "--mapping", str(mapping)]
    )

    assert result.exit_code == 0, result.output
    assert validate_cohort(out).errors == []
    images = out / "images" / "P0001"
    assert sorted(p.name for p in images.iterdir()) == [
        "liver.nii.gz",
        "post_ablation.nii.gz",
        "post_ct.nii.gz",
        "pre_ct.nii.gz",
        "pre_tumours.nii.gz",
    ]
    original = read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_tumours.nii.gz")
    imported = read_volume(images / "pre_tumours.nii.gz")
    np.testing.assert_array_equal(imported.array, original.array)
    assert imported.grid.differences(original.grid) == []
    assert "days_pre_to_post" in (out / "patients.csv").read_text(encoding="utf-8")
    assert "42" in (out / "patients.csv").read_text(encoding="utf-8")  # 4 March to 15 April 2021
    # No identifying value anywhere in the cohort; all of them in the mapping.
    for path in out.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(value.encode() in content for value in (*PHI, "2021")), path
    link = mapping.read_text(encoding="utf-8")
    assert "MRN-4711" in link and "DOE^JANE" in link and "2021-03-04" in link
    assert "README.txt" in result.stdout  # the skipped file is named


@pytest.mark.slow
def test_mapping_inside_the_cohort_is_refused(dicom_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"

    result = CliRunner().invoke(
        app,
        [
            "import-dicom",
            str(dicom_source),
            "--out",
            str(out),
            "--mapping",
            str(out / "mapping.csv"),
        ],
    )

    assert result.exit_code == 2
    assert "outside the cohort" in result.stdout


def _import(source: Path, tmp_path: Path, *options: str) -> Result:
    out, mapping = tmp_path / "cohort", tmp_path / "private" / "mapping.csv"
    return CliRunner().invoke(
        app, ["import-dicom", str(source), "--out", str(out), "--mapping", str(mapping), *options]
    )


@pytest.mark.slow
def test_one_study_is_a_pre_treatment_patient(dicom_source: Path, tmp_path: Path) -> None:
    shutil.rmtree(dicom_source / "study2")

    result = _import(dicom_source, tmp_path)

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    assert validate_cohort(out).errors == []
    assert sorted(p.name for p in (out / "images" / "P0001").iterdir()) == [
        "liver.nii.gz",
        "pre_ct.nii.gz",
        "pre_tumours.nii.gz",
    ]
    images = yaml.safe_load((out / "cohort.yaml").read_text(encoding="utf-8"))["images"]
    assert images["scans"] == {"pre_ct": {"modality": "CT", "required": True}}
    assert set(images["masks"]) == {"pre_tumours", "liver"}
    assert "P0001,\n" in (out / "patients.csv").read_text(encoding="utf-8")  # no days


@pytest.mark.slow
def test_a_failed_import_writes_nothing(dicom_source: Path, tmp_path: Path) -> None:
    _write_study(
        read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_ct.nii.gz"),
        dicom_source / "study3" / "ct",
        generate_uid(entropy_srcs=["third"]),
        "20210601",
        "PV follow-up",
    )

    result = _import(dicom_source, tmp_path)

    assert result.exit_code == 2
    assert "PatientID MRN-4711: 3 studies with a scan (2021-03-04 in study1/ct; 2021-04-15 in " in (
        result.stdout.replace("\n", " ")
    )
    assert not (tmp_path / "cohort").exists() and not (tmp_path / "private").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging folder left


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_rtstruct_gtv_imports_as_a_tumour_with_a_mask_names_rule(
    shared_data: Path, tmp_path: Path
) -> None:
    phantom = shared_data / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom"
    rules = tmp_path / "names.yaml"
    rules.write_text("rules:\n  - {pattern: 'gtv ?(?P<n>\\d+)', structure: tumour}\n", "utf-8")

    without = _import(phantom / "dicom", tmp_path)
    assert without.exit_code == 0, without.output
    assert "segment 'GTV-1' not imported (no mask-names rule)" in without.stdout
    shutil.rmtree(tmp_path / "cohort")
    result = _import(phantom / "dicom", tmp_path, "--mask-names", str(rules))

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    assert validate_cohort(out).errors == []
    tumours = read_volume(out / "images" / "P0001" / "pre_tumours.nii.gz")
    nifti = read_volume(phantom / "nifti" / "mask" / "mask.nii.gz")
    assert int((tumours.array == 1).sum()) == int((nifti.array > 0).sum()) == 125256
    assert tumours.grid.differences(nifti.grid) == []


@pytest.mark.shared_data
def test_real_dicom_seg_of_the_liver_imports(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "dicom" / "dcmqi_liver_ct_3slice_seg"
    source = tmp_path / "export"
    shutil.copytree(folder / "ct-3slice", source / "ct")
    shutil.copy(folder / "liver.dcm", source / "liver.dcm")

    result = _import(source, tmp_path)

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    assert validate_cohort(out).errors == []
    liver = read_volume(out / "images" / "P0001" / "liver.nii.gz").array
    np.testing.assert_array_equal(liver, read_volume(folder / "liver_seg.nrrd").array > 0)


@pytest.mark.slow
def test_a_one_image_series_beside_the_scan_is_listed_not_fatal(
    dicom_source: Path, tmp_path: Path
) -> None:
    pre = read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_ct.nii.gz")
    scout = Volume(array=pre.array[:1], grid=pre.grid)
    study = str(pydicom.dcmread(next((dicom_source / "study1" / "ct").iterdir())).StudyInstanceUID)
    write_dicom_series(
        scout,
        dicom_source / "study1" / "scout",
        patient_id=PHI[1],
        patient_name=PHI[0],
        study_uid=study,
        study_date="20210304",
        series_description="Topogram",
        series_number=2,
    )

    result = _import(dicom_source, tmp_path)

    assert result.exit_code == 0, result.output
    assert "not imported: CT series in study1/scout ('Topogram'): one image, not a volume" in (
        result.stdout
    )
    assert validate_cohort(tmp_path / "cohort").errors == []
