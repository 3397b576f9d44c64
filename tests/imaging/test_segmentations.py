"""DICOM-SEG and RTSTRUCT on real public data, against their NIfTI/NRRD copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepablate.imaging.io import ImageReadError, read_volume
from hepablate.imaging.registration import dice
from hepablate.imaging.segmentations import (
    read_dicom_seg,
    read_rtstruct,
    series_instances,
    write_dicom_seg,
)

pytestmark = pytest.mark.shared_data


def _phantom(shared_data: Path) -> Path:
    return shared_data / "ibsi" / "data_sets" / "ibsi_1_ct_radiomics_phantom"


def _dcmqi(shared_data: Path) -> Path:
    return shared_data / "dicom" / "dcmqi_liver_ct_3slice_seg"


def test_rtstruct_gtv_matches_the_nifti_mask(shared_data: Path) -> None:
    phantom = _phantom(shared_data)
    reference = read_volume(phantom / "dicom" / "image")
    (rtstruct,) = (phantom / "dicom" / "mask").iterdir()

    masks = read_rtstruct(rtstruct, reference)

    nifti = read_volume(phantom / "nifti" / "mask" / "mask.nii.gz")
    assert list(masks) == ["GTV-1"]
    assert masks["GTV-1"].grid == reference.grid
    assert dice(masks["GTV-1"].array, nifti.array) >= 0.98
    assert int(masks["GTV-1"].array.sum()) == int((nifti.array > 0).sum()) == 125256


def test_dicom_seg_liver_matches_the_nrrd_label_map(shared_data: Path) -> None:
    folder = _dcmqi(shared_data)
    reference = read_volume(folder / "ct-3slice")

    masks = read_dicom_seg(folder / "liver.dcm", reference, folder / "ct-3slice")

    label_map = read_volume(folder / "liver_seg.nrrd")
    assert list(masks) == ["Liver"]
    assert dice(masks["Liver"].array, label_map.array > 0) == 1.0
    assert int(masks["Liver"].array.sum()) == 107098


def test_series_instances_are_in_slice_order(shared_data: Path) -> None:
    uid, instances = series_instances(_phantom(shared_data) / "dicom" / "image")

    assert len(instances) == 60
    assert len(set(instances)) == 60
    assert uid.startswith("1.")


def test_seg_of_another_series_is_refused(shared_data: Path) -> None:
    phantom = _phantom(shared_data)
    other = read_volume(phantom / "dicom" / "image")

    with pytest.raises(ImageReadError) as raised:
        read_dicom_seg(_dcmqi(shared_data) / "liver.dcm", other, phantom / "dicom" / "image")

    assert raised.value.path.name == "liver.dcm"
    assert "references series" in raised.value.reason


def test_unknown_roi_lists_the_rois(shared_data: Path) -> None:
    phantom = _phantom(shared_data)
    (rtstruct,) = (phantom / "dicom" / "mask").iterdir()

    with pytest.raises(ImageReadError, match="no ROI named 'liver'; the structure set has: GTV-1"):
        read_rtstruct(rtstruct, read_volume(phantom / "dicom" / "image"), roi_name="liver")


def test_wrong_kind_of_file_is_refused(shared_data: Path, tmp_path: Path) -> None:
    folder = _dcmqi(shared_data)
    reference = read_volume(folder / "ct-3slice")
    text = tmp_path / "notes.dcm"
    text.write_text("not dicom", encoding="utf-8")

    with pytest.raises(ImageReadError, match="a DICOM SEG object, not a RTSTRUCT"):
        read_rtstruct(folder / "liver.dcm", reference)
    with pytest.raises(ImageReadError, match="not a readable DICOM file"):
        read_dicom_seg(text, reference, folder / "ct-3slice")


def test_written_seg_reads_back_voxel_for_voxel(shared_data: Path, tmp_path: Path) -> None:
    folder = _dcmqi(shared_data)
    reference = read_volume(folder / "ct-3slice")
    liver = read_dicom_seg(folder / "liver.dcm", reference, folder / "ct-3slice")["Liver"]
    half = type(liver)(array=liver.array.copy(), grid=liver.grid)
    half.array[:, :, : half.array.shape[2] // 2] = 0

    written = write_dicom_seg(
        {"liver": liver, "tumour 1": half}, folder / "ct-3slice", tmp_path / "seg.dcm"
    )
    back = read_dicom_seg(written, reference, folder / "ct-3slice")

    assert list(back) == ["liver", "tumour 1"]
    assert (back["liver"].array == liver.array).all()
    assert (back["tumour 1"].array == half.array).all()
    assert int(back["tumour 1"].array.sum()) < int(back["liver"].array.sum())
