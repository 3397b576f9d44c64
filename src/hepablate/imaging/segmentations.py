"""Masks stored as DICOM objects: DICOM-SEG (highdicom) and RTSTRUCT (pydicom, rasterised).

Both return binary masks on the grid of the image series they were drawn on, as
:class:`~hepablate.imaging.io.Volume` objects, keyed by segment or ROI name. Errors name the file
and say why in one line (:class:`~hepablate.imaging.io.ImageReadError`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from matplotlib.path import Path as Polygon

from hepablate.imaging.io import ImageReadError, Volume

__all__ = [
    "read_dicom_seg",
    "read_rtstruct",
    "series_datasets",
    "series_instances",
    "write_dicom_seg",
]


def series_instances(folder: Path) -> tuple[str, list[str]]:
    """SeriesInstanceUID of a series folder and its SOPInstanceUIDs in slice order.

    Slices are ordered by position along the slice normal, as ITK orders them when it reads the
    series, so index k is slice k of the series' :class:`Volume`.
    """
    headers = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as exc:  # pydicom raises many types for a broken file
            raise ImageReadError(path, f"unreadable DICOM header: {exc}") from None
    if not headers:
        raise ImageReadError(folder, "no DICOM files")
    orientation = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    headers.sort(key=lambda h: float(np.asarray(h.ImagePositionPatient, dtype=float) @ normal))
    return str(headers[0].SeriesInstanceUID), [str(h.SOPInstanceUID) for h in headers]


def _read(path: Path, modality: str) -> pydicom.Dataset:
    try:
        dataset = pydicom.dcmread(path)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable DICOM file: {exc}") from None
    if getattr(dataset, "Modality", None) != modality:
        found = getattr(dataset, "Modality", "no modality")
        raise ImageReadError(path, f"a DICOM {found} object, not a {modality}")
    return dataset


def _mask_volume(array: np.ndarray, reference: Volume) -> Volume:
    return Volume(array=array.astype(np.uint8), grid=reference.grid)


def read_dicom_seg(seg_path: Path, reference: Volume, reference_folder: Path) -> dict[str, Volume]:
    """One binary mask per segment of a DICOM-SEG, on the grid of its source series.

    ``reference`` is the series read by :func:`~hepablate.imaging.io.read_volume` from
    ``reference_folder``; the SEG must reference that series.
    """
    import highdicom as hd

    dataset = _read(seg_path, "SEG")
    series_uid, instances = series_instances(reference_folder)
    referenced = [
        str(item.SeriesInstanceUID) for item in getattr(dataset, "ReferencedSeriesSequence", [])
    ]
    if referenced and series_uid not in referenced:
        raise ImageReadError(
            seg_path,
            f"the segmentation references series {', '.join(referenced)}, not the image "
            f"series {series_uid} of {reference_folder}",
        )
    try:
        seg = hd.seg.Segmentation.from_dataset(dataset)
        numbers = list(seg.segment_numbers)
        labels = [seg.get_segment_description(n).segment_label for n in numbers]
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=instances,
            segment_numbers=numbers,
            combine_segments=False,
            ignore_spatial_locations=True,
            assert_missing_frames_are_empty=True,
        )
    except Exception as exc:  # highdicom raises ValueError, KeyError, AttributeError...
        raise ImageReadError(seg_path, f"cannot read the segmentation: {exc}") from None
    expected = reference.array.shape
    if pixels.shape[:3] != expected:
        raise ImageReadError(
            seg_path, f"frames of shape {pixels.shape[:3]} do not match the series {expected}"
        )
    return {label: _mask_volume(pixels[..., k] > 0, reference) for k, label in enumerate(labels)}


def series_datasets(folder: Path) -> list[pydicom.Dataset]:
    """The datasets of the DICOM series in ``folder``, in the order of its volume's slices
    (the sources a DICOM-SEG references)."""
    _, instances = series_instances(folder)
    by_uid = {}
    for path in folder.iterdir():
        if path.is_file():
            dataset = pydicom.dcmread(path)
            if "SpecificCharacterSet" in dataset and not dataset.SpecificCharacterSet:
                del dataset.SpecificCharacterSet  # empty in some exports; highdicom refuses it
            by_uid[str(dataset.SOPInstanceUID)] = dataset
    return [by_uid[uid] for uid in instances]


def write_dicom_seg(
    masks: dict[str, Volume],
    reference_folder: Path,
    out: Path,
    *,
    series_description: str = "hepablate segmentation",
) -> Path:
    """Write binary ``masks`` (on the grid of the series in ``reference_folder``) as one
    DICOM-SEG with a segment per mask, referencing that series (highdicom).

    Segments are coded as SCT "Tissue" / "Lesion" for names containing "tumour", "tumor" or
    "lesion", else "Organ"; the label keeps the mask's name.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = series_datasets(reference_folder)
    names = list(masks)
    stacked = np.stack([masks[name].array.astype(bool) for name in names], axis=-1)
    if stacked.shape[:3] != (len(sources), sources[0].Rows, sources[0].Columns):
        raise ValueError(
            f"masks of shape {stacked.shape[:3]} are not on the grid of {reference_folder}"
        )
    descriptions = []
    for number, name in enumerate(names, start=1):
        lesion = any(word in name.lower() for word in ("tumour", "tumor", "lesion"))
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Lesion if lesion else codes.SCT.Organ,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
        )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=stacked.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hepablate",
        manufacturer_model_name="hepablate",
        software_versions="hepablate",
        device_serial_number="0",
        series_description=series_description,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out


def read_rtstruct(
    rtstruct_path: Path, reference: Volume, roi_name: str | None = None
) -> dict[str, Volume]:
    """Each ROI of an RTSTRUCT rasterised on ``reference``'s grid (even-odd rule per slice).

    A voxel is inside when its centre is inside the contour; contours on one slice combine by
    the even-odd rule, so a hole drawn as its own contour stays a hole.
    """
    dataset = _read(rtstruct_path, "RTSTRUCT")
    names = {int(r.ROINumber): str(r.ROIName) for r in dataset.StructureSetROISequence}
    if roi_name is not None and roi_name not in names.values():
        raise ImageReadError(
            rtstruct_path,
            f"no ROI named {roi_name!r}; the structure set has: {', '.join(names.values())}",
        )
    grid = reference.grid
    matrix = np.asarray(grid.direction).reshape(3, 3) * np.asarray(grid.spacing_mm)
    to_index = np.linalg.inv(matrix)
    origin = np.asarray(grid.origin_mm)
    nx, ny, nz = grid.size
    column, row = np.meshgrid(np.arange(nx), np.arange(ny))
    centres = np.stack([column.ravel(), row.ravel()], axis=1)
    masks: dict[str, Volume] = {}
    for item in getattr(dataset, "ROIContourSequence", []):
        name = names.get(int(item.ReferencedROINumber), f"ROI {item.ReferencedROINumber}")
        if roi_name is not None and name != roi_name:
            continue
        mask = np.zeros((nz, ny, nx), dtype=bool)
        for contour in getattr(item, "ContourSequence", []):
            if contour.ContourGeometricType != "CLOSED_PLANAR":
                continue
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            index = (points - origin) @ to_index.T
            k = float(np.median(index[:, 2]))
            if abs(k - round(k)) > 0.5 or not 0 <= round(k) < nz:
                raise ImageReadError(
                    rtstruct_path,
                    f"a contour of {name!r} lies at z = {points[0, 2]:.2f} mm, off the slices "
                    "of the image series",
                )
            inside = Polygon(index[:, :2]).contains_points(centres).reshape(ny, nx)
            mask[round(k)] ^= inside
        if not mask.any():
            raise ImageReadError(rtstruct_path, f"ROI {name!r} has no closed contour")
        masks[name] = _mask_volume(mask, reference)
    if not masks:
        raise ImageReadError(rtstruct_path, "the structure set has no contours")
    return masks
