"""Reading volumes: formats, geometry, and clear errors for broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hepablate.cohort import validate_cohort
from hepablate.imaging.io import Grid, ImageReadError, Volume, read_grid, read_volume, write_volume


def _volume(shape: tuple[int, int, int] = (4, 5, 6), dtype: type = np.int16) -> Volume:
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    grid = Grid(
        size=shape[::-1],
        spacing_mm=(0.7, 0.7, 2.5),
        origin_mm=(-10.0, 5.0, 1.0),
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    )
    return Volume(array=array, grid=grid)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii", "v.nrrd", "v.mha"])
def test_write_then_read_keeps_voxels_and_geometry(name: str, tmp_path: Path) -> None:
    volume = _volume()

    write_volume(volume, tmp_path / name)
    back = read_volume(tmp_path / name)

    np.testing.assert_array_equal(back.array, volume.array)
    assert back.grid.differences(volume.grid) == []
    assert read_grid(tmp_path / name).differences(volume.grid) == []
    assert back.voxel_volume_ml == pytest.approx(0.7 * 0.7 * 2.5 / 1000)


def test_grid_differences_name_each_property() -> None:
    grid = _volume().grid
    other = Grid(
        size=(6, 5, 5),
        spacing_mm=(0.7, 0.7, 3.0),
        origin_mm=(-10.0, 5.0, 1.0),
        direction=grid.direction,
    )

    assert grid.differences(other) == [
        "size (6, 5, 5) instead of (6, 5, 4)",
        "spacing (0.7, 0.7, 3) mm instead of (0.7, 0.7, 2.5) mm",
    ]
    # Float rounding from a format conversion is not a mismatch.
    rounded = Grid(grid.size, grid.spacing_mm, (-10.0000001, 5.0, 1.0), grid.direction)
    assert grid.differences(rounded) == []


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii", "v.nrrd"])
def test_truncated_file_is_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    write_volume(_volume((20, 30, 40)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])

    with pytest.raises(ImageReadError) as raised:
        read_volume(path)

    assert raised.value.path == path
    assert any(word in raised.value.reason for word in ("truncated", "expected", "fread"))


def test_not_an_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.nrrd"
    path.write_text("this is not an image", encoding="utf-8")

    with pytest.raises(ImageReadError, match=r"notes\.nrrd"):
        read_volume(path)


def test_folder_without_dicom_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pre_ct").mkdir()
    (tmp_path / "pre_ct" / "readme.txt").write_text("empty export", encoding="utf-8")

    with pytest.raises(ImageReadError, match="no DICOM image series"):
        read_volume(tmp_path / "pre_ct")


@pytest.mark.shared_data
def test_dicom_series_equals_its_nifti_copy(shared_data: Path) -> None:
    """IBSI-1 CT phantom: the 60-slice DICOM series and the NIfTI of the same scan."""
    phantom = shared_data / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom"

    from_dicom = read_volume(phantom / "dicom" / "image")
    from_nifti = read_volume(phantom / "nifti" / "image" / "phantom.nii.gz")

    assert from_dicom.grid.size == (204, 201, 60)
    assert from_dicom.grid.spacing_mm == pytest.approx((0.977, 0.977, 3.0), abs=1e-6)
    assert from_dicom.grid.differences(from_nifti.grid) == []
    np.testing.assert_array_equal(from_dicom.array, from_nifti.array)


@pytest.mark.shared_data
def test_real_dicom_ct_and_nrrd_mask_validate_as_a_cohort(
    shared_data: Path, tmp_path: Path
) -> None:
    """dcmqi's 3-slice abdominal CT (DICOM) with its liver label map (NRRD) as one patient."""
    source = shared_data / "dicom" / "dcmqi_liver_ct_3slice_seg"
    folder = tmp_path / "cohort" / "images" / "LIV1"
    shutil.copytree(source / "ct-3slice", folder / "pre_ct")
    shutil.copy(source / "liver_seg.nrrd", folder / "liver.nrrd")
    (tmp_path / "cohort" / "patients.csv").write_text("patient_id\nLIV1\n", encoding="utf-8")
    (tmp_path / "cohort" / "cohort.yaml").write_text(
        "name: real dicom\n"
        "tables: {patients: {file: patients.csv,\n"
        "                    columns: {patient_id: {role: id, type: string}}}}\n"
        "images: {scans: {pre_ct: {}}, masks: {liver: {scan: pre_ct, labels: binary}}}\n",
        encoding="utf-8",
    )

    report = validate_cohort(tmp_path / "cohort")

    # valid; the one warning: without a tumours table, extraction has no tumour to measure
    assert [p.code for p in report.problems] == ["schema.images_without_tumours"]
    ct = read_volume(folder / "pre_ct")
    liver = read_volume(folder / "liver.nrrd")
    assert ct.grid.size == (512, 512, 3)
    assert ct.array.min() == -3024  # stored -2000 plus RescaleIntercept -1024: HU
    assert int((liver.array == 1).sum()) == 107098

    # The two-label map (liver and spine) is not a binary mask: refused, naming the file.
    shutil.copy(source / "liver_spine_seg.nrrd", folder / "liver.nrrd")
    report = validate_cohort(tmp_path / "cohort")
    (problem,) = report.errors
    assert (problem.code, problem.patient, problem.file) == (
        "images.bad_labels",
        "LIV1",
        "images/LIV1/liver.nrrd",
    )


def test_two_dimensional_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(path))

    with pytest.raises(ImageReadError, match="a 2-D image; a 3-D volume is needed"):
        read_volume(path)


def _phantom_series(shared_data: Path, tmp_path: Path) -> Path:
    source = shared_data / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom" / "dicom" / "image"
    target = tmp_path / "pre_ct"
    shutil.copytree(source, target)
    return target


@pytest.mark.shared_data
def test_missing_slice_is_refused(shared_data: Path, tmp_path: Path) -> None:
    folder = _phantom_series(shared_data, tmp_path)
    (folder / "DCM_IMG_00030.dcm").unlink()

    with pytest.raises(ImageReadError) as raised:
        read_volume(folder)

    assert raised.value.path == folder
    assert "1 missing slice(s)" in raised.value.reason
    assert "a gap of 6.00 mm where slices are 3.00 mm apart" in raised.value.reason


@pytest.mark.shared_data
def test_corrupt_dicom_file_is_named(shared_data: Path, tmp_path: Path) -> None:
    folder = _phantom_series(shared_data, tmp_path)
    path = folder / "DCM_IMG_00012.dcm"
    path.write_bytes(path.read_bytes()[:300])

    with pytest.raises(ImageReadError) as raised:
        read_volume(folder)

    assert "DCM_IMG_00012.dcm" in str(raised.value)
