"""Ablation geometry per tumour, from masks on one grid: margins, coverage, volumes, vessels.

:func:`tumour_geometry` gives every ``geom.*`` column of one tumour. Its margins (minimal,
5th percentile, mean) are measured between smooth surfaces fitted to the masks, the method of
:mod:`hepablate.features.margin`; coverage and residual volume use the zone as drawn.

Sizes and distances that do not involve the zone (volume, diameter, distances to large
vessels, to the liver capsule and to the nearest other tumour) need the pre-ablation CT's
masks only; :func:`tumour_geometry` without a zone leaves the zone's columns empty.

All masks must be on one grid; the post-ablation zone is brought onto the pre-ablation grid by
registration first (:mod:`hepablate.imaging.registration`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree

from hepablate.features.margin import (
    PAD_MM,
    Spacing,
    bounding_box,
    minimal_ablative_margin_mm,
    signed_distance_mm,
    surface_margins,
    surface_voxels,
)

__all__ = [
    "GEOMETRY_COLUMNS",
    "LARGE_VESSEL_CALIBRE_MM",
    "SUBCAPSULAR_MM",
    "ZONE_COLUMNS",
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

# Geometry that needs the ablation zone; the others need the pre-ablation CT's masks only.
ZONE_COLUMNS = (
    "geom.minimal_ablative_margin_mm",
    "geom.margin_p5_mm",
    "geom.margin_mean_mm",
    "geom.tumour_coverage_pct",
    "geom.residual_tumour_ml",
    "geom.ablation_volume_ml",
)
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
    "geom.distance_to_other_tumour_mm",
)


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
    reach = ndimage.distance_transform_edt(~centres, sampling=spacing_zyx_mm) <= radius
    return vessels & reach


def _max_diameter_mm(mask: np.ndarray, spacing: Spacing) -> float:
    points = np.argwhere(surface_voxels(mask)) * np.asarray(spacing)
    if len(points) < 2:
        return float(max(spacing))
    with contextlib.suppress(QhullError, ValueError):  # flat or tiny: every surface voxel
        points = points[ConvexHull(points).vertices]
    gaps = points[:, None, :] - points[None, :, :]
    # Voxel centres span one voxel less than the object: add one spacing (the smallest).
    return float(np.sqrt((gaps**2).sum(axis=-1)).max() + min(spacing))


def _gap_mm(tumour: np.ndarray, other: np.ndarray | None, spacing: Spacing) -> float | None:
    """Least distance between the two masks' voxels, less one voxel (edge to edge, not centre
    to centre), 0 when they touch; None when ``other`` is empty."""
    if other is None or not other.any():
        return None
    scale = np.asarray(spacing)
    # The nearest voxel of a mask to an outside point is on the mask's boundary.
    tree = cKDTree(np.argwhere(surface_voxels(other.astype(bool))) * scale)
    gap, _ = tree.query(np.argwhere(surface_voxels(tumour)) * scale)
    return float(max(gap.min() - min(spacing), 0.0))


@dataclass(frozen=True)
class TumourGeometry:
    """One tumour's geometry; the zone's fields are None without a zone (``ZONE_COLUMNS``)."""

    minimal_ablative_margin_mm: float | None
    margin_p5_mm: float | None
    margin_mean_mm: float | None
    tumour_coverage_pct: float | None
    residual_tumour_ml: float | None
    tumour_volume_ml: float
    tumour_max_diameter_mm: float
    ablation_volume_ml: float | None
    distance_to_vessel_mm: float | None
    distance_to_capsule_mm: float | None
    subcapsular: bool | None
    distance_to_other_tumour_mm: float | None

    def as_columns(self) -> dict[str, float | bool | None]:
        return {f"geom.{name}": value for name, value in self.__dict__.items()}


def tumour_geometry(
    tumour: np.ndarray,
    zone: np.ndarray | None,
    spacing_zyx_mm: Spacing,
    *,
    liver: np.ndarray | None = None,
    large_vessel_mask: np.ndarray | None = None,
    other_tumours: np.ndarray | None = None,
) -> TumourGeometry:
    """Every geometry feature of one tumour (masks on one grid; ``zone`` its own zone only).

    Without ``zone`` (a patient with the pre-ablation CT only, or a failed registration) the
    margins, coverage and zone volume are None; size, vessel, capsule and other-tumour
    distances need only the pre-ablation masks. ``other_tumours``: the patient's other tumours
    (one mask), for the edge-to-edge distance to the nearest one.
    """
    tumour = tumour.astype(bool)
    if not tumour.any():
        raise ValueError("the tumour mask is empty")
    voxel_ml = float(np.prod(spacing_zyx_mm)) / 1000.0
    total = int(tumour.sum())

    zone_fields: dict[str, float | None] = dict.fromkeys(
        (c.removeprefix("geom.") for c in ZONE_COLUMNS), None
    )
    if zone is not None:
        zone = zone.astype(bool)
        margins = surface_margins(tumour, zone, spacing_zyx_mm, liver, PAD_MM)
        inside = int((tumour & zone).sum())
        zone_fields = {
            "minimal_ablative_margin_mm": float(margins.min()),
            "margin_p5_mm": float(np.percentile(margins, 5)),
            "margin_mean_mm": float(margins.mean()),
            "tumour_coverage_pct": 100.0 * inside / total,
            "residual_tumour_ml": (total - inside) * voxel_ml,
            "ablation_volume_ml": int(zone.sum()) * voxel_ml,
        }
    distance_to_capsule = None
    subcapsular = None
    if liver is not None and liver.any():
        box = bounding_box(tumour, spacing_zyx_mm, 2 * PAD_MM)
        depth = signed_distance_mm(liver[box].astype(bool), spacing_zyx_mm)
        distance_to_capsule = float(depth[surface_voxels(tumour[box])].min())
        subcapsular = distance_to_capsule < SUBCAPSULAR_MM
    others = None if other_tumours is None else other_tumours.astype(bool) & ~tumour
    return TumourGeometry(
        **zone_fields,
        tumour_volume_ml=total * voxel_ml,
        tumour_max_diameter_mm=_max_diameter_mm(tumour, spacing_zyx_mm),
        distance_to_vessel_mm=_gap_mm(tumour, large_vessel_mask, spacing_zyx_mm),
        distance_to_capsule_mm=distance_to_capsule,
        subcapsular=subcapsular,
        distance_to_other_tumour_mm=_gap_mm(tumour, others, spacing_zyx_mm),
    )
