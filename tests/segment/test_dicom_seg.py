"""DICOM-SEG beside the NIfTI masks of a scan read from a DICOM series, equal voxel for voxel."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from hepablate.cohort.dicom_masks import MaskNames, NamedMask
from hepablate.imaging.io import Grid, Volume, read_volume, write_dicom_series
from hepablate.segment.bundle import load_segmenter
from hepablate.segment.patient import segment_patient

# Rows mirrored (x from right to left) and slices written along +z: the slice normal of that
# orientation is -z, so a reader orders the slices against the files' order, and the
# orientation is not the identity: a frame put on the wrong slice or axis shows.
DIRECTION = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _as_dicom(volume: Volume, folder: Path, study: str, number: int) -> None:
    grid = Grid(volume.grid.size, volume.grid.spacing_mm, volume.grid.origin_mm, DIRECTION)
    write_dicom_series(
        Volume(volume.array.astype(np.int16), grid),
        folder,
        patient_id="SEGTEST",
        patient_name="TEST^SEG",
        study_uid=study,
        study_date="20240101",
        series_description=folder.name,
        series_number=number,
    )


def _instances_by_slice(folder: Path, reference: Volume) -> list[str]:
    """The series' SOPInstanceUIDs in the order of ``reference``'s slices, found by position
    (not by the order hepablate sorts them in)."""
    image = reference.to_sitk()
    positions = {}
    for path in folder.iterdir():
        header = pydicom.dcmread(path, stop_before_pixels=True)
        positions[str(header.SOPInstanceUID)] = np.asarray(header.ImagePositionPatient, float)
    order = []
    for k in range(reference.grid.size[2]):
        where = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, k)))
        uid = min(positions, key=lambda u: float(np.linalg.norm(positions[u] - where)))
        assert np.linalg.norm(positions[uid] - where) < 1e-3
        order.append(uid)
    return order


@pytest.mark.slow
def test_dicom_scans_get_a_seg_equal_to_their_nifti_masks(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    source = tiny_cohort_dir / "images" / "SIM0003"
    patient = tmp_path / "patient"
    study = pydicom.uid.generate_uid(entropy_srcs=["seg test"])
    _as_dicom(read_volume(source / "pre_ct.nii.gz"), patient / "pre_ct", study, 1)
    _as_dicom(read_volume(source / "post_ct.nii.gz"), patient / "post_ct", study, 2)

    # the manual tumours on the grid the series is read onto (slices reversed)
    tumours = read_volume(source / "pre_tumours.nii.gz")
    manual = Volume(tumours.array[::-1].copy(), read_volume(patient / "pre_ct").grid)

    result = segment_patient(load_segmenter(trained_bundle), patient, tmp_path / "out", manual)

    names = MaskNames()
    for task, scan_name, liver_name, lesion_name, structure in (
        ("pre", "pre_ct", "liver", "pre_tumours", "tumour"),
        ("post", "post_ct", "post_liver", "post_ablation", "ablation"),
    ):
        record = result.record.scans[task]
        assert record.dicom_seg == f"{lesion_name}.dcm"
        scan = read_volume(patient / scan_name)
        # read back in the reverse of the files' order (the premise of this test)
        original = read_volume(source / f"{scan_name}.nii.gz").array
        assert np.array_equal(scan.array, original[::-1].astype(np.int16))
        liver = read_volume(result.masks[liver_name])
        lesions = read_volume(result.masks[lesion_name])
        assert liver.grid.differences(scan.grid) == [] == lesions.grid.differences(scan.grid)
        numbers = [int(n) for n in np.unique(lesions.array) if n > 0]
        assert numbers == sorted(lesion.label for lesion in record.lesions) and numbers

        dataset = pydicom.dcmread(result.folder / record.dicom_seg)
        seg = hd.seg.Segmentation.from_dataset(dataset)
        segments = list(seg.segment_numbers)
        labels = [seg.get_segment_description(n).segment_label for n in segments]
        # labelled as `hepablate import-dicom` reads them back
        assert [names(label) for label in labels] == [
            NamedMask("liver", None),
            *(NamedMask(structure, n) for n in numbers),  # type: ignore[arg-type]
        ]
        assert (
            seg.ReferencedSeriesSequence[0].SeriesInstanceUID
            == pydicom.dcmread(
                next((patient / scan_name).iterdir()), stop_before_pixels=True
            ).SeriesInstanceUID
        )
        orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
        assert [float(v) for v in orientation.ImageOrientationPatient] == [-1, 0, 0, 0, 1, 0]
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=_instances_by_slice(patient / scan_name, scan),
            segment_numbers=segments,
            combine_segments=False,
            assert_missing_frames_are_empty=True,
        )
        assert pixels.shape == (*scan.array.shape, len(segments))
        assert np.array_equal(pixels[..., 0] > 0, liver.array > 0)
        for k, n in enumerate(numbers, start=1):
            assert np.array_equal(pixels[..., k] > 0, lesions.array == n), (task, n)
        descriptions = [seg.get_segment_description(n) for n in segments]
        algorithm = descriptions[0].algorithm_identification
        assert algorithm is not None and algorithm[0].AlgorithmName == "hepablate segment"
        # the manual tumours are MANUAL, what the network drew AUTOMATIC
        kinds = [d.algorithm_type.value for d in descriptions]
        assert kinds == [
            "AUTOMATIC",
            *(["MANUAL" if task == "pre" else "AUTOMATIC"] * len(numbers)),
        ]
