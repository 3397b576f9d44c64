"""Ablation geometry per tumour, from masks on one grid: margins, coverage, volumes, vessels.

The minimal ablative margin (MAM) of a tumour is the smallest distance, over the tumour's
surface, from the tumour surface to the ablation-zone surface, signed: positive where the
surface point lies inside the zone, negative where tumour lies outside it. Distances come from
Euclidean distance maps in millimetres (anisotropic voxels handled exactly), computed in the
tumour's bounding box plus a padding rather than over the whole scan.

Where a liver mask is given, the capsule-facing side of the tumour is left out of the margin,
as the open-source qam tool does: beyond the capsule there is no parenchyma to leave untreated,
so the zone's edge is sought inside the liver only (space outside the liver counts as ablated
for the margin; coverage and residual volume use the zone as drawn).

All masks must be on one grid; the post-ablation zone is brought onto the pre-ablation grid by
registration first (:mod:`hepablate.imaging.registration`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

__all__ = [
    "GEOMETRY_COLUMNS",
    "LARGE_VESSEL_CALIBRE_MM",
    "SUBCAPSULAR_MM",
    "TumourGeometry",
    "large_vessels",
    "minimal_ablative_margin_mm",
    "signed_distance_mm",
    "tumour_geometry",
]

# A vessel of this calibre or more matters for heat sink and perivascular location.
LARGE_VESSEL_CALIBRE_MM = 3.0
# A tumour closer than this to the liver surface is subcapsular.
SUBCAPSULAR_MM = 5.0
_PAD_MM = 15.0

GEOMETRY_COLUMNS = (
    "geom.minimal_ablative_margin_mm",
    "geom.margin_p5_mm",
    "geom.margin_mean_mm",
    "geom.tumour_coverage_pct",
    "geom.residual_tumour_ml",
    "geom.tumour_volume_ml",
    "geom.tumour_max_diameter_mm",
    "geom.ablation_volume_ml",
    "geom.distance_to_vessel_mm",
    "geom.distance_to_capsule_mm",
    "geom.subcapsular",
)

Spacing = tuple[float, float, float]


def signed_distance_mm(mask: np.ndarray, spacing_zyx_mm: Spacing) -> np.ndarray:
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


def _box(mask: np.ndarray, spacing: Spacing, pad_mm: float) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    pad = np.ceil(pad_mm / np.asarray(spacing)).astype(int)
    low = np.maximum(where.min(axis=0) - pad, 0)
    high = np.minimum(where.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _surface_margins(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing: Spacing,
    liver: np.ndarray | None,
    pad_mm: float,
) -> np.ndarray:
    """Signed zone distance at each tumour-surface voxel not on the liver capsule."""
    box = _box(tumour, spacing, pad_mm)
    tumour_box, zone_box = tumour[box], zone[box].astype(bool)
    surface = _surface(tumour_box)
    if liver is not None:
        # Beyond the capsule there is no parenchyma to leave untreated: count it as ablated,
        # so that the zone's edge is only sought inside the liver.
        zone_box = zone_box | ~liver[box].astype(bool)
    if not zone_box.any():
        return np.full(int(surface.sum()), -pad_mm)
    distance = signed_distance_mm(zone_box, spacing)
    return np.clip(distance[surface], -pad_mm, pad_mm)


def minimal_ablative_margin_mm(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing_zyx_mm: Spacing,
    *,
    liver: np.ndarray | None = None,
    pad_mm: float = _PAD_MM,
) -> float:
    """Signed minimal ablative margin of ``tumour`` in ``zone`` (boolean masks, one grid).

    Margins beyond ``pad_mm`` are reported as ``pad_mm``: far from any clinical effect.
    """
    tumour = tumour.astype(bool)
    if not tumour.any():
        raise ValueError("the tumour mask is empty")
    return float(_surface_margins(tumour, zone, spacing_zyx_mm, liver, pad_mm).min())


def large_vessels(vessels: np.ndarray, spacing_zyx_mm: Spacing) -> np.ndarray:
    """The part of a vessel mask of calibre ≥ 3 mm.

    A voxel belongs to a large vessel when it lies within a ball of radius 1.5 mm that fits
    inside the vessel mask (a morphological opening by the distance map): thin branches drop
    out, the lumen of large ones stays whole.
    """
    vessels = vessels.astype(bool)
    radius = LARGE_VESSEL_CALIBRE_MM / 2.0
    # Centres of balls of radius >= 1.5 mm that fit (less half a voxel for discretisation).
    centres = ndimage.distance_transform_edt(vessels, sampling=spacing_zyx_mm) >= (
        radius - min(spacing_zyx_mm) / 2.0
    )
    if not centres.any():
        return np.zeros_like(vessels)
    reach = ndimage.distance_transform_edt(~centres, sampling=spacing_zyx_mm)
    return vessels & (reach <= radius)


def _max_diameter_mm(mask: np.ndarray, spacing: Spacing) -> float:
    points = np.argwhere(_surface(mask)) * np.asarray(spacing)
    if len(points) < 2:
        return float(max(spacing))
    with contextlib.suppress(QhullError, ValueError):  # flat or tiny: every surface voxel
        points = points[ConvexHull(points).vertices]
    gaps = points[:, None, :] - points[None, :, :]
    # Voxel centres span one voxel less than the object: add one spacing (the smallest).
    return float(np.sqrt((gaps**2).sum(axis=-1)).max() + min(spacing))


@dataclass(frozen=True)
class TumourGeometry:
    minimal_ablative_margin_mm: float
    margin_p5_mm: float
    margin_mean_mm: float
    tumour_coverage_pct: float
    residual_tumour_ml: float
    tumour_volume_ml: float
    tumour_max_diameter_mm: float
    ablation_volume_ml: float
    distance_to_vessel_mm: float | None
    distance_to_capsule_mm: float | None
    subcapsular: bool | None

    def as_columns(self) -> dict[str, float | bool | None]:
        return {f"geom.{name}": value for name, value in self.__dict__.items()}


def tumour_geometry(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing_zyx_mm: Spacing,
    *,
    liver: np.ndarray | None = None,
    large_vessel_mask: np.ndarray | None = None,
) -> TumourGeometry:
    """Every geometry feature of one tumour (masks on one grid; ``zone`` its own zone only)."""
    tumour, zone = tumour.astype(bool), zone.astype(bool)
    if not tumour.any():
        raise ValueError("the tumour mask is empty")
    voxel_ml = float(np.prod(spacing_zyx_mm)) / 1000.0
    margins = _surface_margins(tumour, zone, spacing_zyx_mm, liver, _PAD_MM)
    inside = int((tumour & zone).sum())
    total = int(tumour.sum())

    distance_to_vessel = None
    if large_vessel_mask is not None and large_vessel_mask.any():
        gap = ndimage.distance_transform_edt(~large_vessel_mask, sampling=spacing_zyx_mm)
        distance_to_vessel = float(max(gap[_surface(tumour)].min() - min(spacing_zyx_mm), 0.0))
    distance_to_capsule = None
    subcapsular = None
    if liver is not None and liver.any():
        box = _box(tumour, spacing_zyx_mm, 2 * _PAD_MM)
        depth = signed_distance_mm(liver[box].astype(bool), spacing_zyx_mm)
        distance_to_capsule = float(depth[_surface(tumour[box])].min())
        subcapsular = distance_to_capsule < SUBCAPSULAR_MM
    return TumourGeometry(
        minimal_ablative_margin_mm=float(margins.min()),
        margin_p5_mm=float(np.percentile(margins, 5)),
        margin_mean_mm=float(margins.mean()),
        tumour_coverage_pct=100.0 * inside / total,
        residual_tumour_ml=(total - inside) * voxel_ml,
        tumour_volume_ml=total * voxel_ml,
        tumour_max_diameter_mm=_max_diameter_mm(tumour, spacing_zyx_mm),
        ablation_volume_ml=int(zone.sum()) * voxel_ml,
        distance_to_vessel_mm=distance_to_vessel,
        distance_to_capsule_mm=distance_to_capsule,
        subcapsular=subcapsular,
    )
