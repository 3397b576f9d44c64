"""A segmentation task's cases: a scan and its label map, read from a cohort, on the plan's grid.

Arrays are indexed (z, y, x) as SimpleITK returns them; spacings, sizes and patch sizes in
the fingerprint and the plan are (x, y, z), as ITK and DICOM write them. ``reversed`` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict

from hepablate.cohort import Cohort
from hepablate.cohort.image_plausibility import scan_problem
from hepablate.imaging.io import ImageReadError, Volume, read_volume
from hepablate.segment.errors import SegmentError

__all__ = [
    "DEFAULT_TASKS",
    "MIN_SLICES",
    "Case",
    "TaskSpec",
    "check_scan",
    "label_map",
    "read_case",
    "resample_image",
    "resample_labels",
    "task_patients",
]

# Fewer slices than this is not a volume a 3-D network can segment (a 2-D image, a scout).
MIN_SLICES = 8


class TaskSpec(BaseModel):
    """Which images of ``cohort.yaml`` make one network's data: a scan, its liver mask
    (optional) and its lesion mask (``tumour_id`` labels: every lesion one class here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan: str
    liver: str | None
    lesion: str
    lesion_name: str

    @property
    def labels(self) -> list[str]:
        """Class names by label value: background, (liver,) lesion."""
        return ["background", *(["liver"] if self.liver else []), self.lesion_name]


# The cohort format's names (docs/cohort-format.md): tumours and liver on the pre-ablation CT,
# the ablation zone (and the liver, which the virtual cohort has) on the post-ablation CT.
DEFAULT_TASKS: dict[str, TaskSpec] = {
    "pre": TaskSpec(scan="pre_ct", liver="liver", lesion="pre_tumours", lesion_name="tumour"),
    "post": TaskSpec(
        scan="post_ct", liver="post_liver", lesion="post_ablation", lesion_name="zone"
    ),
}


@dataclass(frozen=True, eq=False)
class Case:
    """One patient's scan (float32) and label map (uint8: 0 background, 1.. the task's
    classes), both (z, y, x) on one grid."""

    patient_id: str
    image: Volume
    labels: np.ndarray


def task_patients(cohort: Cohort, spec: TaskSpec) -> list[str]:
    """Patients that have the task's scan and masks, in the cohort's order."""
    wanted = [spec.scan, spec.lesion, *([spec.liver] if spec.liver else [])]
    return [p for p in cohort.patient_ids if all(n in cohort.images.get(p, {}) for n in wanted)]


def check_scan(volume: Volume, path: Path, modality: str = "CT") -> None:
    """Refuse a scan a 3-D network cannot segment: too few slices, or not a CT of a body."""
    size = volume.grid.size
    if len(size) != 3 or min(size) < MIN_SLICES:
        raise SegmentError(
            f"{path}: a grid of {' x '.join(str(n) for n in size)} voxels; segmentation needs a "
            f"3-D scan of at least {MIN_SLICES} voxels along every axis"
        )
    problem = scan_problem(volume.array, modality)
    if problem is not None:
        raise SegmentError(f"{path}: not a {modality} that can be segmented: {problem}")


def _read(path: Path) -> Volume:
    try:
        return read_volume(path)
    except ImageReadError as exc:
        raise SegmentError(str(exc)) from None


def label_map(spec: TaskSpec, lesion: np.ndarray, liver: np.ndarray | None) -> np.ndarray:
    """The task's label map: liver 1 (when the task has one), every lesion the last class
    (lesions are inside the liver: the lesion label wins where both are set)."""
    labels = np.zeros(lesion.shape, dtype=np.uint8)
    if liver is not None:
        labels[liver > 0] = 1
    labels[lesion > 0] = len(spec.labels) - 1
    return labels


def read_case(cohort: Cohort, patient_id: str, spec: TaskSpec) -> Case:
    """A patient's scan and label map at their own resolution."""
    images = cohort.images[patient_id]
    scan = _read(images[spec.scan])
    check_scan(scan, images[spec.scan])
    lesion = _read(images[spec.lesion]).array
    liver = _read(images[spec.liver]).array if spec.liver else None
    image = Volume(scan.array.astype(np.float32), scan.grid)
    return Case(patient_id, image, label_map(spec, lesion, liver))


def _reference(volume: Volume, spacing_mm: tuple[float, ...]) -> sitk.Image:
    size = [
        max(1, round(n * s / t))
        for n, s, t in zip(volume.grid.size, volume.grid.spacing_mm, spacing_mm, strict=True)
    ]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetOrigin(volume.grid.origin_mm)
    reference.SetDirection(volume.grid.direction)
    reference.SetSpacing(spacing_mm)
    return reference


def resample_image(volume: Volume, spacing_mm: tuple[float, ...], fill: float) -> Volume:
    """``volume`` on a grid of ``spacing_mm`` over the same extent (linear interpolation)."""
    image = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)
    moved = sitk.Resample(
        image, _reference(volume, spacing_mm), sitk.Transform(), sitk.sitkLinear, fill
    )
    return Volume.from_sitk(moved)


def resample_labels(
    volume: Volume, labels: np.ndarray, spacing_mm: tuple[float, ...]
) -> np.ndarray:
    """A label map on ``volume``'s grid moved to the grid of ``spacing_mm`` (nearest label)."""
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing(volume.grid.spacing_mm)
    image.SetOrigin(volume.grid.origin_mm)
    image.SetDirection(volume.grid.direction)
    reference = _reference(volume, spacing_mm)
    moved = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(moved).astype(np.uint8)
