"""Prediction: a scan in, the liver and the lesions (one label per lesion) out, on its grid.

The scan is resampled to the plan's spacing and normalised as in training, segmented by
sliding-window inference (Gaussian-weighted windows), and the class probabilities are
resampled back onto the scan's own grid before the labels are taken. Post-processing: the
liver is its largest connected component (lesions count as liver there); a lesion is kept when
most of its voxels lie inside the liver dilated by ``liver_dilation_mm`` and it is at least
``min_lesion_volume_ml``; lesions are numbered 1..n by decreasing volume (connected
components, 26-connectivity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers.utils import sliding_window_inference
from scipy import ndimage

from hepablate.imaging.io import ImageReadError, Volume, find_image, read_volume, write_volume
from hepablate.segment.bundle import Segmenter
from hepablate.segment.data import check_scan
from hepablate.segment.errors import SegmentError
from hepablate.segment.network import as_tensor, normalise, pad_to, zyx
from hepablate.segment.plan import TaskPlan

__all__ = [
    "Segmentation",
    "postprocess",
    "predict_folder",
    "segment_scan",
    "task_of_folder",
    "write_segmentation",
]

_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A task's masks on the scan's grid: ``liver`` (0/1; None for a task without one) and
    ``lesions`` (0 background, 1..n one label per lesion, largest first)."""

    task: str
    liver: Volume | None
    lesions: Volume
    lesion_volumes_ml: list[float]


def _probabilities(segmenter: Segmenter, task_name: str, scan: Volume) -> np.ndarray:
    """Class probabilities (classes, z, y, x) on the scan's own grid."""
    task = segmenter.plan.tasks[task_name]
    image = normalise(scan, task)
    norm = task.normalisation
    air = float((norm.clip_low - norm.mean) / norm.std)
    padded, inside = pad_to(image.array, zyx(task.patch_size), air)
    network = segmenter.networks[task_name]
    with torch.no_grad():
        logits = sliding_window_inference(
            as_tensor(padded),
            zyx(task.patch_size),
            1,
            network,
            overlap=segmenter.plan.inference.overlap,
            mode="gaussian",
        )
        assert isinstance(logits, torch.Tensor)
        probabilities = torch.softmax(logits, dim=1)[0].numpy()[(slice(None), *inside)]
    reference = scan.to_sitk()
    back: list[np.ndarray] = []
    for channel in probabilities:
        moved = Volume(channel.astype(np.float32), image.grid).to_sitk()
        # Outside the resampled extent (half a voxel at the edges) nothing is liver or lesion.
        fill = 1.0 if not back else 0.0
        back.append(
            sitk.GetArrayFromImage(
                sitk.Resample(moved, reference, sitk.Transform(), sitk.sitkLinear, fill)
            )
        )
    return np.stack(back)


def postprocess(
    labels: np.ndarray,
    task: TaskPlan,
    spacing_mm: tuple[float, ...],
    min_volume_ml: float,
    dilation_mm: float,
) -> tuple[np.ndarray | None, np.ndarray, list[float]]:
    """A label map (z, y, x) of the task's classes cleaned up as the module says: the liver
    mask (None without a liver class), the lesion instances and their volumes (mL)."""
    lesion_value = len(task.labels) - 1
    lesion = labels == lesion_value
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    liver = None
    if task.spec.liver is not None:
        organ, n = ndimage.label(labels > 0, structure=_CONNECTIVITY)
        if n:
            sizes = np.bincount(organ.ravel())[1:]
            liver = organ == 1 + int(np.argmax(sizes))
        else:
            liver = np.zeros(labels.shape, dtype=bool)
        near = ndimage.distance_transform_edt(~liver, sampling=tuple(reversed(spacing_mm)))
        near_liver = near <= dilation_mm
    components, n = ndimage.label(lesion, structure=_CONNECTIVITY)
    kept: list[tuple[float, int]] = []
    for label in range(1, n + 1):
        voxels = components == label
        count = int(voxels.sum())
        if count * voxel_ml < min_volume_ml:
            continue
        if liver is not None and float(near_liver[voxels].mean()) < 0.5:
            continue
        kept.append((count * voxel_ml, label))
    kept.sort(key=lambda item: (-item[0], item[1]))
    instances = np.zeros(labels.shape, dtype=np.uint16 if len(kept) > 255 else np.uint8)
    for number, (_volume, label) in enumerate(kept, start=1):
        instances[components == label] = number
    return liver, instances, [round(v, 4) for v, _ in kept]


def segment_scan(segmenter: Segmenter, task_name: str, scan: Volume, path: Path) -> Segmentation:
    """Segment ``scan`` (read from ``path``, named in errors) with the network of ``task``."""
    if task_name not in segmenter.networks:
        raise SegmentError(
            f"{segmenter.path}: has no network for task {task_name!r} "
            f"(it has {', '.join(segmenter.networks)})"
        )
    check_scan(scan, path)
    task = segmenter.plan.tasks[task_name]
    labels = np.argmax(_probabilities(segmenter, task_name, scan), axis=0)
    inference = segmenter.plan.inference
    liver, lesions, volumes = postprocess(
        labels,
        task,
        scan.grid.spacing_mm,
        inference.min_lesion_volume_ml,
        inference.liver_dilation_mm,
    )
    return Segmentation(
        task=task_name,
        liver=None if liver is None else Volume(liver.astype(np.uint8), scan.grid),
        lesions=Volume(lesions, scan.grid),
        lesion_volumes_ml=volumes,
    )


def _read_scan(path: Path) -> Volume:
    try:
        return read_volume(path)
    except ImageReadError as exc:
        raise SegmentError(str(exc)) from None


def task_of_folder(segmenter: Segmenter, folder: Path) -> dict[str, Path]:
    """The scans of a patient folder the bundle has a network for (task -> path): a folder
    holding ``pre_ct``/``post_ct`` (the tasks' scan names) as images of the cohort format."""
    found = {}
    for name, task in segmenter.plan.tasks.items():
        candidates = find_image(folder, task.spec.scan)
        if len(candidates) > 1:
            raise SegmentError(
                f"{folder}: two candidates for {task.spec.scan}: "
                + ", ".join(p.name for p in candidates)
            )
        if candidates:
            found[name] = candidates[0]
    return found


def write_segmentation(segmentation: Segmentation, task: TaskPlan, out: Path) -> list[Path]:
    """Write the masks into ``out`` under the cohort format's names of the task's masks."""
    written = []
    if segmentation.liver is not None and task.spec.liver is not None:
        path = out / f"{task.spec.liver}.nii.gz"
        write_volume(segmentation.liver, path)
        written.append(path)
    path = out / f"{task.spec.lesion}.nii.gz"
    write_volume(segmentation.lesions, path)
    written.append(path)
    return written


def predict_folder(
    segmenter: Segmenter,
    scans: dict[str, Path],
    out: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Segmentation]:
    """Segment each task's scan and write its masks into ``out`` (cohort format names)."""
    results = {}
    for done, (name, path) in enumerate(sorted(scans.items()), start=1):
        segmentation = segment_scan(segmenter, name, _read_scan(path), path)
        write_segmentation(segmentation, segmenter.plan.tasks[name], out)
        results[name] = segmentation
        if progress is not None:
            progress(done, len(scans))
    return results
