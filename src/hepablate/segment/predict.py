"""Prediction: a scan in, the liver and the lesions (one label per lesion) out, on its grid.

The scan is resampled to the plan's spacing and normalised as in training, segmented by
sliding-window inference (Gaussian-weighted windows), and the class probabilities are
resampled back onto the scan's own grid before the labels are taken. Post-processing: the
liver is its largest connected component (lesions count as liver there); a lesion is kept when
most of its voxels lie inside the liver dilated by ``liver_dilation_mm`` and it is at least
``min_lesion_volume_ml``; lesions are numbered 1..n by decreasing volume (connected
components, 26-connectivity). Each lesion's probability is the mean, over its voxels, of the
lesion class's softmax probability; with ``inference.tta`` the probabilities are the mean over
the scan and its mirror images along every combination of axes (nnU-Net's mirroring).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers.utils import sliding_window_inference
from scipy import ndimage

from hepablate.imaging.io import ImageReadError, Volume, find_image, read_volume
from hepablate.segment.bundle import Segmenter
from hepablate.segment.data import check_scan
from hepablate.segment.errors import SegmentError
from hepablate.segment.network import as_tensor, normalise, pad_to, zyx
from hepablate.segment.plan import TaskPlan

__all__ = [
    "Segmentation",
    "lesion_probabilities",
    "postprocess",
    "read_scan",
    "segment_scan",
    "task_of_folder",
    "with_tta",
]

_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A task's masks on the scan's grid: ``liver`` (0/1; None for a task without one) and
    ``lesions`` (0 background, 1..n one label per lesion, largest first); per lesion (index
    n - 1) its volume, voxel count and mean lesion-class probability."""

    task: str
    liver: Volume | None
    lesions: Volume
    lesion_volumes_ml: list[float]
    lesion_voxels: list[int]
    lesion_probabilities: list[float]


def with_tta(segmenter: Segmenter, tta: bool) -> Segmenter:
    """``segmenter`` with test-time augmentation switched on or off (its plan's
    ``inference.tta``; the bundle on disk is not changed)."""
    inference = segmenter.plan.inference.model_copy(update={"tta": tta})
    return replace(segmenter, plan=segmenter.plan.model_copy(update={"inference": inference}))


def _probabilities(segmenter: Segmenter, task_name: str, scan: Volume) -> np.ndarray:
    """Class probabilities (classes, z, y, x) on the scan's own grid."""
    task = segmenter.plan.tasks[task_name]
    image = normalise(scan, task)
    norm = task.normalisation
    air = float((norm.clip_low - norm.mean) / norm.std)
    padded, inside = pad_to(image.array, zyx(task.patch_size), air)
    network = segmenter.networks[task_name]
    image_tensor = as_tensor(padded)
    spatial = (2, 3, 4)
    mirrors: list[tuple[int, ...]] = [()]
    if segmenter.plan.inference.tta:
        mirrors += [axes for n in (1, 2, 3) for axes in combinations(spatial, n)]
    total = None
    with torch.no_grad():
        for axes in mirrors:
            flipped = torch.flip(image_tensor, axes) if axes else image_tensor
            logits = sliding_window_inference(
                flipped,
                zyx(task.patch_size),
                1,
                network,
                overlap=segmenter.plan.inference.overlap,
                mode="gaussian",
            )
            assert isinstance(logits, torch.Tensor)
            softmax = torch.softmax(logits, dim=1)
            softmax = torch.flip(softmax, axes) if axes else softmax
            total = softmax if total is None else total + softmax
    assert total is not None
    probabilities = (total / len(mirrors))[0].numpy()[(slice(None), *inside)]
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
    probabilities = _probabilities(segmenter, task_name, scan)
    labels = np.argmax(probabilities, axis=0)
    inference = segmenter.plan.inference
    liver, lesions, volumes = postprocess(
        labels,
        task,
        scan.grid.spacing_mm,
        inference.min_lesion_volume_ml,
        inference.liver_dilation_mm,
    )
    voxels, mean = lesion_probabilities(lesions, probabilities[len(task.labels) - 1])
    return Segmentation(
        task=task_name,
        liver=None if liver is None else Volume(liver.astype(np.uint8), scan.grid),
        lesions=Volume(lesions, scan.grid),
        lesion_volumes_ml=volumes,
        lesion_voxels=voxels,
        lesion_probabilities=mean,
    )


def lesion_probabilities(
    lesions: np.ndarray, probability: np.ndarray
) -> tuple[list[int], list[float]]:
    """Per label 1..max of ``lesions``: its voxel count and the mean of ``probability`` (the
    lesion class's, same grid) over its voxels."""
    count = int(lesions.max(initial=0))
    flat = lesions.ravel().astype(np.int64)
    voxels = np.bincount(flat, minlength=count + 1)[1:]
    sums = np.bincount(flat, weights=probability.ravel().astype(np.float64), minlength=count + 1)
    means = sums[1:] / np.maximum(voxels, 1)
    return [int(v) for v in voxels], [round(float(m), 4) for m in means]


def read_scan(path: Path) -> Volume:
    """A scan read for segmentation; an unreadable one is a ``SegmentError`` naming it."""
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
