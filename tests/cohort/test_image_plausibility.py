"""A CT must look like a CT and a mask like a mask: on real CTs, and on images declared wrongly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepablate.cohort import validate_cohort
from hepablate.cohort.image_plausibility import binary_values, mask_problem, scan_problem
from hepablate.imaging.io import Volume, read_volume, write_volume

REAL_CTS = [
    "ibsi/data_sets/ibsi_1_ct_radiomics_phantom/nifti/image/phantom.nii.gz",
    "ibsi/data_sets/ibsi_1_ct_radiomics_phantom/dicom/image",
    "liver_ct/totalseg_examples/example_ct_sm.nii.gz",
    "liver_ct/totalseg_examples/example_ct_dicom",
    "dicom/dcmqi_liver_ct_3slice_seg/ct-3slice",  # -3024 HU outside the field of view
]


@pytest.mark.shared_data
@pytest.mark.parametrize("relative", REAL_CTS)
def test_real_cts_look_like_cts_and_not_like_masks(shared_data: Path, relative: str) -> None:
    values = read_volume(shared_data / relative).array

    assert scan_problem(values, "CT") is None
    assert mask_problem(values) is not None


@pytest.mark.shared_data
def test_a_label_map_and_an_unrescaled_ct_are_not_cts(shared_data: Path) -> None:
    folder = shared_data / "liver_ct" / "totalseg_examples"
    labels = read_volume(folder / "example_seg.nii.gz").array  # 0..117
    ct = read_volume(folder / "example_ct_sm.nii.gz").array

    assert "no air or fat" in (scan_problem(labels, "CT") or "")
    assert mask_problem(labels) is None
    assert "no air or fat" in (scan_problem(ct.astype(np.int32) + 1024, "CT") or "")
    assert "outside -1024..3071 HU" in (scan_problem(ct.astype(np.int32) * 100, "CT") or "")


def test_binary_images_are_masks_whatever_their_two_values() -> None:
    image = np.zeros((4, 30, 30), dtype=np.int16)
    image[1:3, 10:20, 10:20] = 255

    assert binary_values(image) == [0.0, 255.0]
    assert binary_values(image - 1024) == [-1024.0, -769.0]
    assert scan_problem(image, "CT") == "it holds only the values 0 and 255: a mask, not a CT"
    assert scan_problem(image, "MR") == "it holds only the values 0 and 255: a mask, not a MR"
    assert scan_problem(np.zeros((2, 3, 3)), "CT") == "every voxel is 0: it shows no anatomy"


def test_a_rare_third_value_is_not_missed_by_the_sample() -> None:
    image = np.zeros((100, 200, 200), dtype=np.uint8)  # 4 M voxels: every second one sampled
    image[::2] = 1
    image[0, 0, 1] = 7

    assert binary_values(image) is None


def _replace(cohort: Path, name: str, values: np.ndarray) -> Path:
    path = cohort / "images" / "P01" / f"{name}.nii.gz"
    write_volume(Volume(array=values, grid=read_volume(path).grid), path)
    return path


def test_a_binary_image_declared_as_ct_fails_validate_naming_the_file(cohort_copy: Path) -> None:
    tumours = read_volume(cohort_copy / "images" / "P01" / "pre_tumours.nii.gz").array
    _replace(cohort_copy, "pre_ct", (tumours > 0).astype(np.uint8) * 255)

    errors = validate_cohort(cohort_copy).errors

    assert [(p.code, p.patient, p.file, p.field) for p in errors] == [
        ("images.implausible_ct", "P01", "images/P01/pre_ct.nii.gz", "pre_ct")
    ]
    assert errors[0].message == (
        "declared as the CT 'pre_ct', but it holds only the values 0 and 255: a mask, not a CT"
    )
    assert "images/P01/pre_ct.nii.gz" in str(errors[0])


def test_a_ct_declared_as_a_mask_gives_one_error_not_one_per_value(cohort_copy: Path) -> None:
    ct = read_volume(cohort_copy / "images" / "P01" / "pre_ct.nii.gz").array
    _replace(cohort_copy, "liver", ct)

    errors = validate_cohort(cohort_copy).errors

    assert [(p.code, p.file) for p in errors] == [
        ("images.implausible_mask", "images/P01/liver.nii.gz")
    ]
    assert "an intensity image (a scan?), not a mask of labels" in errors[0].message


def test_the_example_cohort_passes(example_cohort: Path) -> None:
    codes = {p.code for p in validate_cohort(example_cohort).problems}

    assert not codes & {"images.implausible_ct", "images.implausible_mask"}


def test_a_small_mask_missed_by_the_sample_is_still_binary() -> None:
    image = np.zeros((100, 200, 200), dtype=np.uint8)
    image[0, 0, 1] = 255  # off the sampling lattice

    assert binary_values(image) == [0.0, 255.0]
