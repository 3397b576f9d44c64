"""The network of a task's plan, and the plan's preprocessing of a scan for it."""

from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets.dynunet import DynUNet

from hepablate.imaging.io import Volume
from hepablate.segment.data import resample_image
from hepablate.segment.plan import TaskPlan

__all__ = ["as_tensor", "build_network", "normalise", "pad_to", "zyx"]

# Air outside the scanned field, for resampling beyond a scan's edge.
_AIR_HU = -1024.0


def zyx(values: tuple[int, int, int] | tuple[float, float, float]) -> tuple[int, ...]:
    """An (x, y, z) triple of the plan in the arrays' (z, y, x) order."""
    return tuple(int(v) for v in reversed(values))


def build_network(task: TaskPlan) -> DynUNet:
    """The task's DynUNet (one input channel, a class per label), untrained."""
    network = task.network
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=len(task.labels),
        kernel_size=[zyx(k) for k in network.kernel_sizes],
        strides=[zyx(s) for s in network.strides],
        upsample_kernel_size=[zyx(s) for s in network.strides[1:]],
        filters=network.filters,
        norm_name=network.norm,
        res_block=network.residual,
    )


def normalise(volume: Volume, task: TaskPlan) -> Volume:
    """The scan on the plan's grid, clipped and z-scored as the plan says (float32)."""
    moved = resample_image(volume, task.target_spacing_mm, _AIR_HU)
    norm = task.normalisation
    values = (np.clip(moved.array, norm.clip_low, norm.clip_high) - norm.mean) / norm.std
    return Volume(values.astype(np.float32), moved.grid)


def pad_to(
    array: np.ndarray, shape: tuple[int, ...], value: float
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``array`` padded at the end of each axis to at least ``shape``; the slices of the
    original inside the padded array."""
    widths = [(0, max(0, s - n)) for n, s in zip(array.shape, shape, strict=True)]
    inside = tuple(slice(0, n) for n in array.shape)
    return np.pad(array, widths, constant_values=value), inside


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A (z, y, x) array as a batch of one single-channel image."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
