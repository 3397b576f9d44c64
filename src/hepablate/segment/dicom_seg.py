"""Predicted masks as a DICOM-SEG (highdicom) referencing the DICOM series they were drawn on.

One SEG per scan: a segment for the liver and one per lesion, labelled as
``hepablate import-dicom`` reads them back (``Liver``, ``Tumour n``, ``Ablation zone n``;
hepablate/cohort/dicom_masks.yaml), with ``n`` the label of the lesion in the NIfTI mask.
Coded as SNOMED CT: the liver an Anatomical Structure / Liver, a tumour a Morphologically
Abnormal Structure / Neoplasm, an ablation zone a Morphologically Abnormal Structure / Necrosis
(thermal ablation leaves coagulation necrosis). A segment drawn by the network is AUTOMATIC,
with the segmenter as its algorithm (name, hepablate's version, the bundle's id); one copied
from a manual mask is MANUAL.

Frames follow the series' slices in the order ITK reads them (by position along the slice
normal, :func:`hepablate.imaging.segmentations.series_instances`), which is the first axis of
the masks' arrays: frame k is slice k of the scan that was segmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from hepablate.imaging.io import Volume
from hepablate.imaging.segmentations import series_datasets
from hepablate.segment.errors import SegmentError

__all__ = ["SegSegment", "write_seg"]

_LESION_LABELS = {"tumour": "Tumour", "zone": "Ablation zone"}


@dataclass(frozen=True)
class SegSegment:
    """One segment: a binary mask on the scan's grid and what it is."""

    kind: str  # "liver", or a task's lesion name ("tumour", "zone")
    number: int | None  # the lesion's label in its mask (None for the liver)
    mask: np.ndarray
    manual: bool = False

    @property
    def label(self) -> str:
        if self.kind == "liver":
            return "Liver"
        return f"{_LESION_LABELS.get(self.kind, self.kind.capitalize())} {self.number}"


def _hepablate_version() -> str:
    try:
        return version("hepablate")
    except PackageNotFoundError:
        return "unknown"


def write_seg(
    segments: list[SegSegment],
    scan: Volume,
    series_folder: Path,
    out: Path,
    *,
    segmenter_id: str,
) -> Path:
    """Write ``segments`` (masks on ``scan``'s grid, ``scan`` read from ``series_folder``) as
    one DICOM-SEG at ``out``; empty masks are left out (a SEG segment needs a voxel)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    kept = [s for s in segments if s.mask.any()]
    if not kept:
        raise ValueError("no segment has a voxel")
    sources = series_datasets(series_folder)
    shape = (len(sources), int(sources[0].Rows), int(sources[0].Columns))
    if scan.array.shape != shape:
        raise SegmentError(
            f"{series_folder}: the series' {shape[0]} slices of {shape[1]} x {shape[2]} do not "
            f"match the scan's grid {scan.array.shape}"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="hepablate segment",
        family=codes.cid7162.ArtificialIntelligence,
        version=_hepablate_version(),
        parameters={"segmenter": segmenter_id},
    )
    descriptions = []
    for number, segment in enumerate(kept, start=1):
        if segment.kind == "liver":
            category, kind = codes.SCT.AnatomicalStructure, codes.SCT.Liver
        elif segment.kind == "zone":
            category, kind = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Necrosis
        else:
            category, kind = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm
        manual = hd.seg.SegmentAlgorithmTypeValues.MANUAL
        automatic = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=segment.label,
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=manual if segment.manual else automatic,
                algorithm_identification=None if segment.manual else algorithm,
            )
        )
    pixels = np.stack([s.mask.astype(bool) for s in kept], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hepablate",
        manufacturer_model_name="hepablate segment",
        software_versions=_hepablate_version(),
        device_serial_number=segmenter_id[:16],
        series_description="hepablate segmentation",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out
