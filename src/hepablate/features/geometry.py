"""Ablation geometry from masks: the minimal ablative margin and its relatives.

The minimal ablative margin (MAM) of a tumour is the smallest distance, over the tumour's
surface, from the tumour surface to the ablation-zone surface, signed: positive where the
surface point lies inside the zone, negative where tumour lies outside it. It is computed from
Euclidean distance maps in millimetres, so anisotropic voxels are handled exactly, within the
tumour's bounding box (plus a padding) rather than over the whole scan.

This first version works on two masks already on one grid; registration of the follow-up scan
and the capsule exclusion come with the imaging stage.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["minimal_ablative_margin_mm", "signed_distance_mm"]


def signed_distance_mm(mask: np.ndarray, spacing_zyx_mm: tuple[float, float, float]) -> np.ndarray:
    """Signed distance (mm) of every voxel centre to the mask's surface, positive inside.

    The surface is taken half-way between a mask voxel and its nearest non-mask voxel: the
    distance between their centres less half the spacing along the axis of closest approach
    (approximated by half the smallest spacing).
    """
    mask = mask.astype(bool)
    half = min(spacing_zyx_mm) / 2.0
    inside = ndimage.distance_transform_edt(mask, sampling=spacing_zyx_mm) - half
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx_mm) - half
    return np.where(mask, inside, -outside)


def minimal_ablative_margin_mm(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing_zyx_mm: tuple[float, float, float],
    *,
    pad_mm: float = 15.0,
) -> float:
    """Signed minimal ablative margin of ``tumour`` in ``zone`` (boolean masks, one grid).

    Margins beyond ``pad_mm`` are reported as ``pad_mm``: far from any clinical effect.
    """
    tumour = tumour.astype(bool)
    if not tumour.any():
        raise ValueError("the tumour mask is empty")
    spacing = np.asarray(spacing_zyx_mm, dtype=float)
    where = np.argwhere(tumour)
    pad = np.ceil(pad_mm / spacing).astype(int)
    low = np.maximum(where.min(axis=0) - pad, 0)
    high = np.minimum(where.max(axis=0) + pad + 1, tumour.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    tumour_box, zone_box = tumour[box], zone[box].astype(bool)
    if not zone_box.any():
        return -pad_mm
    distance = signed_distance_mm(zone_box, (spacing[0], spacing[1], spacing[2]))
    surface = tumour_box & ~ndimage.binary_erosion(tumour_box)
    return float(np.clip(distance[surface].min(), -pad_mm, pad_mm))
