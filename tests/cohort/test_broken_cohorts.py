"""One broken copy of the example cohort per validation rule.

Each case breaks one thing, runs ``hepablate validate`` as a user would, and checks that it
exits 2 with a message naming the rule, the patient, the file and the field, without a Python
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import validate_cohort

runner = CliRunner()


def _edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, index=False)


def _set_cell(file: str, patient: str, column: str, value: str, tumour: str | None = None):
    def breaker(root: Path) -> None:
        def edit(frame: pd.DataFrame) -> pd.DataFrame:
            rows = frame["patient_id"] == patient
            if tumour is not None:
                rows &= frame["tumour_id"] == tumour
            assert rows.sum() == 1
            frame.loc[rows, column] = value
            return frame

        _edit_csv(root / file, edit)

    return breaker


def _edit_yaml(old: str, new: str):
    def breaker(root: Path) -> None:
        path = root / "cohort.yaml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return breaker


def _edit_image(relative: str, edit: Callable[[sitk.Image], sitk.Image]):
    def breaker(root: Path) -> None:
        path = root / relative
        sitk.WriteImage(edit(sitk.ReadImage(str(path))), str(path), useCompression=True)

    return breaker


def _relabel(relative: str, old: int, new: int):
    def edit(image: sitk.Image) -> sitk.Image:
        array = sitk.GetArrayFromImage(image)
        array[array == old] = new
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        return out

    return _edit_image(relative, edit)


def _shift_origin(image: sitk.Image) -> sitk.Image:
    image.SetOrigin(tuple(o + 4.0 for o in image.GetOrigin()))
    return image


def _remove(relative: str):
    def breaker(root: Path) -> None:
        (root / relative).unlink()

    return breaker


def _truncate(relative: str):
    def breaker(root: Path) -> None:
        path = root / relative
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return breaker


def _unit_as_mg_dl(root: Path) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame["bilirubin_umol_l"].astype(float) / 17.1
        frame["bilirubin_umol_l"] = values.round(2).astype(str)
        return frame

    _edit_csv(root / "patients.csv", edit)


def _duplicate_row(file: str, index: int):
    def breaker(root: Path) -> None:
        _edit_csv(root / file, lambda f: pd.concat([f, f.iloc[[index]]], ignore_index=True))

    return breaker


def _add_column(root: Path) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["child_pugh_points"] = "5"
        return frame

    _edit_csv(root / "patients.csv", edit)


def _drop_column(root: Path) -> None:
    _edit_csv(root / "tumours.csv", lambda f: f.drop(columns=["modality"]))


def _orphan_tumour(root: Path) -> None:
    _set_cell("tumours.csv", "P06", "patient_id", "P99")(root)


def _second_series(root: Path) -> None:
    """Copy one slice of another series (P05's post CT) into P05's pre CT folder."""
    folder = root / "images" / "P05"
    (folder / "pre_ct" / "stray.dcm").write_bytes(
        (folder / "post_ct" / "slice_001.dcm").read_bytes()
    )


def _ambiguous(root: Path) -> None:
    folder = root / "images" / "P03"
    sitk.WriteImage(sitk.ReadImage(str(folder / "pre_ct.nii.gz")), str(folder / "pre_ct.nrrd"))


def _empty_mask(root: Path) -> None:
    path = root / "images" / "P06" / "pre_tumours.nii.gz"
    image = sitk.ReadImage(str(path))
    empty = sitk.Image(image.GetSize(), image.GetPixelID())
    empty.CopyInformation(image)
    sitk.WriteImage(empty, str(path))


def _with_values(relative: str, change: Callable[[np.ndarray], None], suffix: str | None = None):
    """Rewrite an image with ``change`` applied to its voxels, as float32 (which can hold NaN),
    optionally in another format (``suffix``); the original file is then removed."""

    def breaker(root: Path) -> None:
        path = root / relative
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        change(array)
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        target = path if suffix is None else path.with_name(path.name.split(".")[0] + suffix)
        sitk.WriteImage(out, str(target))
        if target != path:
            path.unlink()

    return breaker


def _some_nan(array: np.ndarray) -> None:
    array[0, :2, :3] = np.nan  # 6 voxels
    array[1, 0, 0] = np.inf


def _latin1_table(root: Path) -> None:
    path = root / "patients.csv"
    text = path.read_text(encoding="utf-8").replace("Dr Sample", "Dr Müller")
    path.write_bytes(text.encode("latin-1"))


@dataclass(frozen=True)
class Case:
    name: str
    breaker: Callable[[Path], None]
    code: str
    patient: str | None
    file: str
    field: str | None
    text: str  # a phrase the message must contain


CASES = [
    Case(
        "schema_missing",
        _remove("cohort.yaml"),
        "schema.missing",
        None,
        "cohort.yaml",
        None,
        "needs one",
    ),
    Case(
        "schema_not_yaml",
        _edit_yaml("name: Minimal", "name: [Minimal"),
        "schema.not_yaml",
        None,
        "cohort.yaml",
        None,
        "line",
    ),
    Case(
        "schema_misspelt_key",
        _edit_yaml("range: [18, 100]", "rnage: [18, 100]"),
        "schema.invalid",
        None,
        "cohort.yaml",
        "tables.patients.columns.age.rnage",
        "unknown key",
    ),
    Case(
        "schema_unit_not_of_concept",
        _edit_yaml("unit: g/L", "unit: mmol/L"),
        "schema.invalid",
        None,
        "cohort.yaml",
        "tables.patients.columns.albumin_g_l",
        "not a unit of 'albumin'",
    ),
    Case(
        "table_missing",
        _remove("tumours.csv"),
        "table.missing_file",
        None,
        "tumours.csv",
        None,
        "file not found",
    ),
    Case("table_not_utf8", _latin1_table, "table.unreadable", None, "patients.csv", None, "UTF-8"),
    Case(
        "unknown_column",
        _add_column,
        "table.unknown_column",
        None,
        "patients.csv",
        "child_pugh_points",
        "not declared",
    ),
    Case(
        "missing_column",
        _drop_column,
        "table.missing_column",
        None,
        "tumours.csv",
        "modality",
        "not in the file",
    ),
    Case(
        "wrong_type_number",
        _set_cell("patients.csv", "P03", "albumin_g_l", "forty"),
        "value.wrong_type",
        "P03",
        "patients.csv",
        "albumin_g_l",
        "'forty' is not a number",
    ),
    Case(
        "decimal_comma",
        _set_cell("patients.csv", "P02", "inr", "1,25"),
        "value.wrong_type",
        "P02",
        "patients.csv",
        "inr",
        "decimal comma",
    ),
    Case(
        "wrong_category",
        _set_cell("patients.csv", "P04", "aetiology", "HBC"),
        "value.wrong_type",
        "P04",
        "patients.csv",
        "aetiology",
        "'HBC' is not one of",
    ),
    Case(
        "ambiguous_date",
        _set_cell("patients.csv", "P01", "ablation_date", "04/03/2021"),
        "value.wrong_type",
        "P01",
        "patients.csv",
        "ablation_date",
        "YYYY-MM-DD",
    ),
    Case(
        "wrong_boolean",
        _set_cell("patients.csv", "P05", "cirrhosis", "maybe"),
        "value.wrong_type",
        "P05",
        "patients.csv",
        "cirrhosis",
        "not a yes/no",
    ),
    Case(
        "out_of_range",
        _set_cell("patients.csv", "P06", "age", "160"),
        "value.out_of_range",
        "P06",
        "patients.csv",
        "age",
        "160 years is outside the valid range [18, 100]",
    ),
    Case(
        "required_missing",
        _set_cell("tumours.csv", "P03", "diameter_mm", "", tumour="1"),
        "value.missing",
        "P03",
        "tumours.csv",
        "diameter_mm",
        "required",
    ),
    Case(
        "unit_contradicted",
        _unit_as_mg_dl,
        "value.unit_contradicted",
        None,
        "patients.csv",
        "bilirubin_umol_l",
        "look like mg/dL",
    ),
    Case(
        "duplicate_patient",
        _duplicate_row("patients.csv", 2),
        "table.duplicate_id",
        "P03",
        "patients.csv",
        "patient_id",
        "appears in 2 rows",
    ),
    Case(
        "duplicate_tumour",
        _set_cell("tumours.csv", "P02", "tumour_id", "1", tumour="2"),
        "table.duplicate_id",
        "P02",
        "tumours.csv",
        "tumour_id",
        "appears in 2 rows",
    ),
    Case(
        "orphan_tumour",
        _orphan_tumour,
        "table.orphan_tumour",
        "P99",
        "tumours.csv",
        "patient_id",
        "not in patients.csv",
    ),
    Case(
        "event_without_time",
        _set_cell("tumours.csv", "P04", "ltp_months", ""),
        "outcome.event_without_time",
        "P04",
        "tumours.csv",
        "ltp_months",
        "missing",
    ),
    Case(
        "time_without_event",
        _set_cell("patients.csv", "P01", "rfs_event", ""),
        "outcome.time_without_event",
        "P01",
        "patients.csv",
        "rfs_event",
        "missing",
    ),
    Case(
        "negative_time",
        _set_cell("tumours.csv", "P01", "ltp_months", "-3"),
        "outcome.negative_time",
        "P01",
        "tumours.csv",
        "ltp_months",
        "negative",
    ),
    Case(
        "beyond_follow_up",
        _edit_yaml("follow_up_months: 60", "follow_up_months: 30"),
        "outcome.beyond_follow_up",
        "P01",
        "tumours.csv",
        "ltp_months",
        "beyond the study",
    ),
    Case(
        "missing_image",
        _remove("images/P03/pre_ct.nii.gz"),
        "images.missing",
        "P03",
        "images/P03",
        "pre_ct",
        "required image 'pre_ct' is missing",
    ),
    Case(
        "truncated_image",
        _truncate("images/P02/post_ct.nii.gz"),
        "images.unreadable",
        "P02",
        "images/P02/post_ct.nii.gz",
        "post_ct",
        "cannot read",
    ),
    Case(
        "grid_mismatch",
        _edit_image("images/P01/pre_tumours.nii.gz", _shift_origin),
        "images.grid_mismatch",
        "P01",
        "images/P01/pre_tumours.nii.gz",
        "pre_tumours",
        "origin",
    ),
    Case(
        "empty_mask",
        _empty_mask,
        "images.empty_mask",
        "P06",
        "images/P06/pre_tumours.nii.gz",
        "pre_tumours",
        "no foreground",
    ),
    Case(
        "unknown_label",
        _relabel("images/P01/pre_tumours.nii.gz", 1, 3),
        "images.unknown_label",
        "P01",
        "images/P01/pre_tumours.nii.gz",
        "pre_tumours",
        "label 3",
    ),
    Case(
        "tumour_not_in_ablation_mask",
        _relabel("images/P02/post_ablation.nii.gz", 2, 0),
        "images.tumour_not_in_mask",
        "P02",
        "images/P02/post_ablation.nii.gz",
        "post_ablation",
        "tumour 2",
    ),
    Case(
        "nan_in_nifti_scan",  # ITK's NIfTI reader would read these voxels as 0
        _with_values("images/P02/pre_ct.nii.gz", _some_nan),
        "images.non_finite",
        "P02",
        "images/P02/pre_ct.nii.gz",
        "pre_ct",
        "7 of 36864 voxels are not finite numbers (6 NaN, 1 infinite)",
    ),
    Case(
        "nan_in_nrrd_scan",
        _with_values("images/P03/post_ct.nii.gz", _some_nan, suffix=".nrrd"),
        "images.non_finite",
        "P03",
        "images/P03/post_ct.nrrd",
        "post_ct",
        "7 of 36864 voxels are not finite numbers",
    ),
    Case(
        "all_nan_scan",
        _with_values("images/P01/pre_ct.nii.gz", lambda a: a.fill(np.nan)),
        "images.non_finite",
        "P01",
        "images/P01/pre_ct.nii.gz",
        "pre_ct",
        "36864 of 36864 voxels are not finite numbers (36864 NaN)",
    ),
    Case(
        "all_air_post_ct",  # shows no body: not a CT (it used to fail the registration)
        _with_values("images/P01/post_ct.nii.gz", lambda a: a.fill(-1000.0)),
        "images.implausible_ct",
        "P01",
        "images/P01/post_ct.nii.gz",
        "post_ct",
        "declared as the CT 'post_ct', but every voxel is -1000: it shows no anatomy",
    ),
    Case(
        "nan_in_mask",
        _with_values("images/P06/pre_tumours.nii.gz", _some_nan),
        "images.non_finite",
        "P06",
        "images/P06/pre_tumours.nii.gz",
        "pre_tumours",
        "(6 NaN, 1 infinite)",
    ),
    Case(
        "binary_mask_labels",
        _relabel("images/P03/liver.nii.gz", 1, 2),
        "images.bad_labels",
        "P03",
        "images/P03/liver.nii.gz",
        "liver",
        "only 0 and 1",
    ),
    Case(
        "ambiguous_image", _ambiguous, "images.ambiguous", "P03", "images/P03", "pre_ct", "keep one"
    ),
    Case(
        "two_dicom_series",
        _second_series,
        "images.unreadable",
        "P05",
        "images/P05/pre_ct",
        "pre_ct",
        "2 DICOM series mixed",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_cohort_exits_2_and_names_the_problem(case: Case, cohort_copy: Path) -> None:
    case.breaker(cohort_copy)

    result = runner.invoke(app, ["validate", str(cohort_copy), "--json"])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    problems = json.loads(result.stdout)["problems"]
    matching = [p for p in problems if p["code"] == case.code and p["severity"] == "error"]
    assert matching, f"no {case.code} among {[p['code'] for p in problems]}"
    problem = matching[0]
    assert problem["patient"] == case.patient
    assert problem["file"] == case.file
    assert problem["field"] == case.field
    assert case.text in problem["message"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES[:3] + CASES[-6:], ids=lambda c: c.name)
def test_text_report_names_patient_file_and_field(case: Case, cohort_copy: Path) -> None:
    case.breaker(cohort_copy)

    result = runner.invoke(app, ["validate", str(cohort_copy)])

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"[{case.code}]" in result.output
    for part in (case.patient, case.file, case.field):
        if part is not None:
            assert part in result.output
    assert "not valid" in result.output


def test_every_problem_is_reported_at_once(cohort_copy: Path) -> None:
    for case in (CASES[8], CASES[13], CASES[21], CASES[26]):
        case.breaker(cohort_copy)

    report = validate_cohort(cohort_copy)

    codes = {p.code for p in report.errors}
    assert {
        "value.wrong_type",
        "value.out_of_range",
        "outcome.negative_time",
        "images.empty_mask",
    } <= codes


def test_nothing_is_changed_in_the_broken_cohort(cohort_copy: Path) -> None:
    _set_cell("patients.csv", "P03", "albumin_g_l", "forty")(cohort_copy)
    before = {p: p.read_bytes() for p in cohort_copy.rglob("*") if p.is_file()}

    validate_cohort(cohort_copy)

    after = {p: p.read_bytes() for p in cohort_copy.rglob("*") if p.is_file()}
    assert after == before


def test_censoring_before_horizon_is_a_warning_naming_the_rows(cohort_copy: Path) -> None:
    _set_cell("tumours.csv", "P06", "ltp_months", "14.0")(cohort_copy)

    report = validate_cohort(cohort_copy)

    assert report.ok
    (warning,) = [w for w in report.warnings if w.code == "outcome.censored_before_horizon"]
    assert "P06 (row 9)" in warning.message
    assert warning.field == "ltp_event"


def test_unread_files_and_folders_are_named(cohort_copy: Path) -> None:
    (cohort_copy / "images" / "P01" / "notes.txt").write_text("scan was repeated", encoding="utf-8")
    (cohort_copy / "images" / "P77").mkdir()

    report = validate_cohort(cohort_copy)

    assert report.ok
    codes = {(w.code, w.file) for w in report.warnings}
    assert ("images.undeclared_file", "images/P01/notes.txt") in codes
    assert ("images.unknown_patient_folder", "images/P77") in codes


def test_float_mask_with_fractions_is_refused(cohort_copy: Path) -> None:
    path = cohort_copy / "images" / "P01" / "liver.nii.gz"
    image = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32) * 0.5
    sitk.WriteImage(image, str(path))

    report = validate_cohort(cohort_copy)

    (problem,) = [p for p in report.errors if p.code == "images.mask_not_integer"]
    assert problem.patient == "P01"
    assert np.isclose(float(sitk.GetArrayFromImage(image).max()), 0.5)


def _keep_one_voxel(array: np.ndarray, label: int) -> None:
    first = tuple(np.argwhere(array == label)[0])
    array[array == label] = 0
    array[first] = label


@dataclass(frozen=True)
class WarningCase:
    name: str
    breaker: Callable[[Path], None]
    code: str
    patient: str
    file: str
    field: str
    text: str


WARNING_CASES = [
    WarningCase(
        "tumour_on_the_edge",
        _with_values("images/P02/pre_tumours.nii.gz", lambda a: a.__setitem__((3, 20, 0), 2)),
        "images.touches_edge",
        "P02",
        "images/P02/pre_tumours.nii.gz",
        "pre_tumours",
        "tumour 2 in 'pre_tumours' reaches the edge of the image (the first x plane)",
    ),
    WarningCase(
        "zone_on_the_edge",
        _with_values("images/P01/post_ablation.nii.gz", lambda a: a.__setitem__((15, 20, 20), 1)),
        "images.touches_edge",
        "P01",
        "images/P01/post_ablation.nii.gz",
        "post_ablation",
        "tumour 1 in 'post_ablation' reaches the edge of the image (the last z plane)",
    ),
    WarningCase(
        "one_voxel_tumour",
        _with_values("images/P03/pre_tumours.nii.gz", lambda a: _keep_one_voxel(a, 1)),
        "images.too_small_for_radiomics",
        "P03",
        "images/P03/pre_tumours.nii.gz",
        "pre_tumours",
        "tumour 1 has 1 voxel(s) in 'pre_tumours'",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", WARNING_CASES, ids=[c.name for c in WARNING_CASES])
def test_suspect_images_are_warnings_naming_patient_file_and_tumour(
    case: WarningCase, cohort_copy: Path
) -> None:
    case.breaker(cohort_copy)

    result = runner.invoke(app, ["validate", str(cohort_copy), "--json"])

    assert result.exit_code == 0, result.output  # a warning does not block
    problems = json.loads(result.stdout)["problems"]
    [problem] = [p for p in problems if p["code"] == case.code]
    assert problem["severity"] == "warning"
    assert (problem["patient"], problem["file"], problem["field"]) == (
        case.patient,
        case.file,
        case.field,
    )
    assert case.text in problem["message"]
    if case.code == "images.too_small_for_radiomics":
        assert "at least 27 voxels" in problem["message"]
    if case.code == "images.touches_edge":
        assert "cut short" in problem["message"]


def test_an_endpoint_without_events_is_a_warning_naming_it(cohort_copy: Path) -> None:
    def no_progression(frame: pd.DataFrame) -> pd.DataFrame:
        frame["ltp_event"] = "no"
        return frame

    _edit_csv(cohort_copy / "tumours.csv", no_progression)

    report = validate_cohort(cohort_copy)

    assert report.ok  # a cohort may hold an endpoint nobody studies; training on it fails
    warned = {w.message: w for w in report.warnings if w.code == "outcome.single_outcome"}
    assert set(warned) == {
        "endpoint 'ltp_24m': 0 events among the 5 rows with a known outcome; no model can "
        "be trained or validated on it",
        "endpoint 'ltp': 0 events among the 8 rows with a known outcome; no model can be "
        "trained or validated on it",
    }
    assert {(w.file, w.field) for w in warned.values()} == {("tumours.csv", "ltp_event")}


def _ct_only_cohort(root: Path, cohort_copy: Path, *, tumours: bool) -> Path:
    """One patient with a pre-ablation CT and no tumour mask; with or without a tumours table."""
    (root / "images" / "P01").mkdir(parents=True)
    ct = cohort_copy / "images" / "P01" / "pre_ct.nii.gz"
    (root / "images" / "P01" / "pre_ct.nii.gz").write_bytes(ct.read_bytes())
    (root / "patients.csv").write_text("patient_id,age\nP01,61\n", encoding="utf-8")
    tables = "  patients:\n    file: patients.csv\n    columns:\n"
    tables += "      patient_id: {role: id, type: string}\n"
    tables += "      age: {role: predictor, type: integer, unit: years, range: [18, 100]}\n"
    if tumours:
        (root / "tumours.csv").write_text("patient_id,tumour_id\nP01,1\n", encoding="utf-8")
        tables += "  tumours:\n    file: tumours.csv\n    columns:\n"
        tables += "      patient_id: {role: patient_id, type: string}\n"
        tables += "      tumour_id: {role: id, type: integer}\n"
    (root / "cohort.yaml").write_text(
        "format_version: 1\nname: CT only\ntables:\n"
        + tables
        + "images:\n  directory: images\n  scans:\n    pre_ct: {modality: CT}\n",
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize(
    ("tumours", "code", "text"),
    [
        (False, "schema.images_without_tumours", "there is no tumours table"),
        (True, "schema.images_without_tumour_mask", "no mask has labels: tumour_id"),
    ],
)
def test_images_extraction_cannot_measure_are_a_warning(
    tmp_path: Path, cohort_copy: Path, tumours: bool, code: str, text: str
) -> None:
    root = _ct_only_cohort(tmp_path / "ct_only", cohort_copy, tumours=tumours)

    report = validate_cohort(root)

    assert report.ok, [p.message for p in report.errors]
    [warning] = [w for w in report.warnings if w.code == code]
    assert text in warning.message and "no geometry, radiomics or crops" in warning.message
    assert warning.file == "cohort.yaml"
    other = "schema.images_without_tumour_mask" if not tumours else "schema.images_without_tumours"
    assert not [w for w in report.warnings if w.code == other]
