"""`hepablate import-dicom` on layouts as public data sets ship them.

A CT series with, beside it, one DICOM image series per structure (0/255 inside, the CT's
geometry), blank PatientIDs, one study per patient; and what must be refused rather than
guessed: a mask taken for a scan, patients merged because their PatientIDs are blank or equal.
"""

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
from hepablate.cohort.dicom_import import MaskNames
from hepablate.imaging.io import Volume, read_volume, write_dicom_series
from tests.conftest import EXAMPLE_COHORT

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _mask_series(
    mask: np.ndarray,
    like: Volume,
    folder: Path,
    *,
    description: str = "",
    modality: str = "CT",
    dtype: type[np.integer] = np.int16,
    study: str = "",
    patient_id: str = "",
    patient_name: str = "",
) -> None:
    """``mask`` as an image series of 0 and 255 on ``like``'s grid, as public data sets do."""
    volume = Volume(array=(mask > 0).astype(dtype) * 255, grid=like.grid)
    write_dicom_series(
        volume,
        folder,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study or str(generate_uid(entropy_srcs=[str(folder), "masks"])),
        study_date="20221208",
        series_description=description,
    )
    if modality != "CT":
        for path in folder.iterdir():
            dataset = pydicom.dcmread(path)
            dataset.Modality = modality
            dataset.SOPClassUID = SECONDARY_CAPTURE
            dataset.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
            dataset.save_as(path)


def _import(source: Path, tmp_path: Path, *options: str) -> Result:
    out, mapping = tmp_path / "cohort", tmp_path / "private" / "mapping.csv"
    return CliRunner().invoke(
        app, ["import-dicom", str(source), "--out", str(out), "--mapping", str(mapping), *options]
    )


def _sphere(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    distance = sum((axis - c) ** 2 for axis, c in zip(grid, centre, strict=True))
    return distance <= radius**2


@pytest.fixture
def real_ct_with_mask_series(shared_data: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """TotalSegmentator's 20 real CT slices (blank PatientID, blank UIDs) and, beside them, one
    mask series per structure derived from the CT, each laid out as a public data set would."""
    source = tmp_path / "export" / "case01"
    ct_folder = source / "PATIENT_DICOM"
    shutil.copytree(shared_data / "liver_ct" / "totalseg_examples" / "example_ct_dicom", ct_folder)
    ct = read_volume(ct_folder)
    shape = ct.array.shape
    soft = (ct.array > 20) & (ct.array < 200)
    structures = {
        # folder name -> (mask, how the series is stored)
        "liver": (soft & _sphere(shape, (10, 250, 180), 120), {"dtype": np.uint8}),
        "livertumor01": (soft & _sphere(shape, (8, 230, 160), 25), {}),
        "livertumor02": (soft & _sphere(shape, (12, 300, 230), 18), {"modality": "OT"}),
        "portalvein": ((ct.array > 150) & _sphere(shape, (10, 260, 260), 40), {}),
        "venoussystem": ((ct.array > 150) & _sphere(shape, (10, 200, 300), 30), {}),
        "bone": (ct.array > 300, {}),
    }
    folders = {}
    for name, (mask, how) in structures.items():
        folders[name] = source / "MASKS_DICOM" / name
        _mask_series(mask, ct, folders[name], **how)  # type: ignore[arg-type]
    folders["ct"] = ct_folder
    return tmp_path / "export", folders


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_ct_with_mask_series_and_blank_patient_id_gives_a_pre_treatment_cohort(
    real_ct_with_mask_series: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    source, folders = real_ct_with_mask_series

    result = _import(source, tmp_path)

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    report = validate_cohort(out)
    assert report.errors == [], report.errors
    images = out / "images" / "P0001"
    assert sorted(p.name for p in images.iterdir()) == [
        "liver.nii.gz",
        "pre_ct.nii.gz",
        "pre_tumours.nii.gz",
        "vessels.nii.gz",
    ]
    ct = read_volume(folders["ct"])
    written_ct = read_volume(images / "pre_ct.nii.gz")
    np.testing.assert_array_equal(written_ct.array, ct.array)
    assert written_ct.grid.differences(ct.grid) == []

    def source_mask(name: str) -> np.ndarray:
        return read_volume(folders[name]).array > 0

    np.testing.assert_array_equal(read_volume(images / "liver.nii.gz").array, source_mask("liver"))
    tumours = read_volume(images / "pre_tumours.nii.gz").array
    assert set(np.unique(tumours)) == {0, 1, 2}
    np.testing.assert_array_equal(tumours == 1, source_mask("livertumor01"))
    np.testing.assert_array_equal(tumours == 2, source_mask("livertumor02"))
    vessels = read_volume(images / "vessels.nii.gz").array
    np.testing.assert_array_equal(
        vessels > 0, source_mask("portalvein") | source_mask("venoussystem")
    )

    schema = yaml.safe_load((out / "cohort.yaml").read_text(encoding="utf-8"))
    assert list(schema["images"]["scans"]) == ["pre_ct"]
    assert (out / "tumours.csv").read_text(encoding="utf-8").splitlines() == [
        "patient_id,tumour_id",
        "P0001,1",
        "P0001,2",
    ]
    # The structure without a rule is named, not dropped silently.
    assert "not imported: CT series in case01/MASKS_DICOM/bone: a binary (mask) series" in (
        result.stdout.replace("\n", " ")
    )


def _small_case(
    folder: Path, study: str, day: str, *, patient_id: str = "", name: str = ""
) -> None:
    """Example patient P01's pre CT as a study, with its tumour and liver as mask series."""
    images = EXAMPLE_COHORT / "images" / "P01"
    ct = read_volume(images / "pre_ct.nii.gz")
    write_dicom_series(
        ct,
        folder / "ct",
        patient_id=patient_id,
        patient_name=name,
        study_uid=study,
        study_date=day,
        series_description="",
    )
    for structure, file in (("tumour", "pre_tumours"), ("liver", "liver")):
        mask = read_volume(images / f"{file}.nii.gz").array == 1
        _mask_series(
            mask, ct, folder / structure, study=study, patient_id=patient_id, patient_name=name
        )


def _scans_look_like_cts(cohort: Path) -> None:
    for path in cohort.glob("images/*/*_ct.nii.gz"):
        assert np.unique(read_volume(path).array).size > 100, path


@pytest.mark.slow
def test_a_mask_series_is_never_written_as_a_scan(tmp_path: Path) -> None:
    """The issue's case: CT + mask series, blank PatientID; the masks in studies of their own,
    dated before the CT (as a tool that writes its own UIDs may leave them)."""
    source = tmp_path / "export"
    _small_case(source, str(generate_uid(entropy_srcs=["ct"])), "20210304")
    ct = read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_ct.nii.gz")
    for name in ("tumour", "liver"):
        shutil.rmtree(source / name)
        mask = read_volume(
            EXAMPLE_COHORT
            / "images"
            / "P01"
            / f"{'pre_tumours' if name == 'tumour' else 'liver'}.nii.gz"
        )
        volume = Volume(array=(mask.array == 1).astype(np.int16) * 255, grid=ct.grid)
        write_dicom_series(
            volume,
            source / name,
            patient_id="",
            patient_name="",
            study_uid=str(generate_uid(entropy_srcs=[name])),
            study_date="20200101",
            series_description=name,
        )

    result = _import(source, tmp_path)

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    assert validate_cohort(out).errors == []
    assert sorted(p.name for p in (out / "images" / "P0001").iterdir()) == [
        "liver.nii.gz",
        "pre_ct.nii.gz",
        "pre_tumours.nii.gz",
    ]
    np.testing.assert_array_equal(
        read_volume(out / "images" / "P0001" / "pre_ct.nii.gz").array, ct.array
    )
    _scans_look_like_cts(out)


@pytest.mark.slow
def test_mask_series_without_any_scan_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _small_case(source, str(generate_uid(entropy_srcs=["ct"])), "20210304")
    shutil.rmtree(source / "ct")

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    assert "PatientID (blank): no CT or MR scan series (folders liver, tumour)" in result.stdout
    assert not (tmp_path / "cohort").exists()


@pytest.mark.slow
def test_a_series_neither_mask_nor_ct_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _small_case(source, str(generate_uid(entropy_srcs=["ct"])), "20210304")
    ct = read_volume(source / "ct")
    labels = Volume(
        array=(np.arange(ct.array.size) % 5).reshape(ct.array.shape).astype(np.int16), grid=ct.grid
    )
    write_dicom_series(
        labels,
        source / "labels",
        patient_id="",
        patient_name="",
        study_uid=str(generate_uid(entropy_srcs=["labels"])),
        study_date="20210304",
        series_description="segmentation",
    )

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    assert (
        "CT series in labels ('segmentation') is neither a mask (it has more than two values) "
        "nor a scan: no air or fat"
    ) in result.stdout.replace("\n", " ")


def _two_patients(source: Path, *, ids: tuple[str, str], names: tuple[str, str]) -> None:
    for k, folder in enumerate(("case1", "case2")):
        study = str(generate_uid(entropy_srcs=[folder]))
        _small_case(source / folder, study, f"2021030{k + 1}", patient_id=ids[k], name=names[k])


@pytest.mark.slow
def test_blank_patient_ids_over_two_studies_are_refused_not_merged(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _two_patients(source, ids=("", ""), names=("", ""))

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    message = result.stdout.replace("\n", " ")
    assert "PatientID (blank): a blank PatientID on two studies (folders case1/..., case2/...)" in (
        message
    )
    assert "use --patient-from folder" in message
    assert not (tmp_path / "cohort").exists()


@pytest.mark.slow
def test_patients_from_folders_tells_blank_patient_ids_apart(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _two_patients(source, ids=("", ""), names=("", ""))

    result = _import(source, tmp_path, "--patient-from", "folder")

    assert result.exit_code == 0, result.output
    out = tmp_path / "cohort"
    assert validate_cohort(out).errors == []
    assert sorted(p.name for p in (out / "images").iterdir()) == ["P0001", "P0002"]
    mapping = (tmp_path / "private" / "mapping.csv").read_text(encoding="utf-8")
    assert 'P0001,,,"case1/ct, case1/liver, case1/tumour",' in mapping
    assert 'P0002,,,"case2/ct, case2/liver, case2/tumour",' in mapping


@pytest.mark.slow
def test_patients_from_studies(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _two_patients(source, ids=("ANON", "ANON"), names=("", ""))

    result = _import(source, tmp_path, "--patient-from", "study")

    assert result.exit_code == 0, result.output
    assert validate_cohort(tmp_path / "cohort").errors == []
    assert len(list((tmp_path / "cohort" / "images").iterdir())) == 2


@pytest.mark.slow
def test_equal_patient_ids_of_different_people_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _two_patients(source, ids=("ANON", "ANON"), names=("DOE^JANE", "ROE^RICHARD"))

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    message = result.stdout.replace("\n", " ")
    assert (
        "PatientID ANON: files with 2 different patient names share it (folders case1/..., "
        "case2/...); they are not merged"
    ) in message
    assert "ROE" not in message  # the folders are named, not the people


@pytest.mark.slow
def test_equal_patient_ids_whose_later_study_has_tumours_are_refused(tmp_path: Path) -> None:
    """Two anonymised patients under one PatientID would look like a pre and a post study; the
    later one holds tumour masks and no ablation zone, which a post-ablation study does not."""
    source = tmp_path / "export"
    _two_patients(source, ids=("ANON", "ANON"), names=("", ""))

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    assert "PatientID ANON: the later study has tumour masks and no ablation-zone mask" in (
        result.stdout.replace("\n", " ")
    )


@pytest.mark.slow
def test_a_folder_with_two_patient_ids_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _two_patients(source / "all", ids=("A1", "B2"), names=("", ""))

    result = _import(source, tmp_path, "--patient-from", "folder")

    assert result.exit_code == 2
    assert "folder all: holds 2 PatientIDs (A1, B2); one patient per folder" in result.stdout


@pytest.mark.slow
def test_mask_names_file_adds_rules(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _small_case(source, str(generate_uid(entropy_srcs=["ct"])), "20210304")
    (source / "tumour").rename(source / "GTV-1")
    rules = tmp_path / "names.yaml"
    rules.write_text("rules:\n  - {pattern: 'gtv ?(?P<n>\\d+)', structure: tumour}\n", "utf-8")

    without = _import(source, tmp_path)
    assert without.exit_code == 0, without.output
    assert "CT series in GTV-1: a binary (mask) series" in without.stdout.replace("\n", " ")
    shutil.rmtree(tmp_path / "cohort")

    result = _import(source, tmp_path, "--mask-names", str(rules))

    assert result.exit_code == 0, result.output
    tumours = read_volume(tmp_path / "cohort" / "images" / "P0001" / "pre_tumours.nii.gz")
    original = read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_tumours.nii.gz")
    np.testing.assert_array_equal(tumours.array == 1, original.array == 1)


@pytest.mark.slow
def test_overlapping_tumour_series_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "export"
    _small_case(source, str(generate_uid(entropy_srcs=["ct"])), "20210304")
    (source / "tumour").rename(source / "tumour_1")
    shutil.copytree(source / "liver", source / "tumour_2")  # contains tumour 1
    for path in (source / "tumour_2").iterdir():
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = generate_uid(entropy_srcs=["t2"])
        dataset.save_as(path)

    result = _import(source, tmp_path)

    assert result.exit_code == 2
    assert "tumour 1 and tumour 2 overlap in" in result.stdout


@pytest.mark.parametrize(
    ("name", "structure", "number"),
    [
        # The examples of docs/cohort-format.md, section 7.
        ("Tumour 1", "tumour", 1),
        ("tumor_2", "tumour", 2),
        ("livertumor01", "tumour", 1),
        ("lesion 3", "tumour", 3),
        ("Ablation zone 1", "ablation", 1),
        ("ablation 2", "ablation", 2),
        ("zone 3", "ablation", 3),
        ("Liver", "liver", None),
        ("vessels", "vessels", None),
        ("portalvein", "vessels", None),
        ("venoussystem", "vessels", None),
        ("hepatic artery", "vessels", None),
        ("venacava", "vessels", None),
    ],
)
def test_the_shipped_mask_names(name: str, structure: str, number: int | None) -> None:
    named = MaskNames()(name)

    assert named is not None and (named.structure, named.number) == (structure, number)


@pytest.mark.parametrize("name", ["livertumors", "liver protocol", "bone", "CT Body 3.0", ""])
def test_names_without_a_shipped_rule(name: str) -> None:
    assert MaskNames()(name) is None


def test_a_broken_mask_names_file_is_named(tmp_path: Path) -> None:
    rules = tmp_path / "names.yaml"
    rules.write_text("rules:\n  - {pattern: 'gtv(', structure: tumour}\n", "utf-8")

    result = _import(tmp_path, tmp_path, "--mask-names", str(rules))

    assert result.exit_code == 2
    assert f"{rules}: rule 1: 'gtv(': missing ), unterminated subpattern" in result.stdout
