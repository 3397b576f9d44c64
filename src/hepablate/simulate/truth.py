"""Ground-truth geometry of each tumour, measured on the true shapes, not on the images.

The minimal ablative margin is computed on a fine isotropic grid (0.5 mm) in the anatomy frame:
the signed Euclidean distance to the ablation-zone surface (positive inside the zone), taken at
the tumour's surface, minimum over the surface. Its accuracy is about half the fine spacing,
well below the voxels of any simulated scan; margins beyond the padding around the tumour are
reported as the padding (they are far from any effect).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from hepablate.simulate.anatomy import LARGE_VESSEL_RADIUS_MM, AblationZone, Anatomy, TumourSite
from hepablate.simulate.shapes import distance_to_segments, grid_points

__all__ = ["TRUTH_SPACING_MM", "TumourTruth", "measure_tumour"]

TRUTH_SPACING_MM = 0.5
_PAD_MM = 10.0


@dataclass(frozen=True)
class TumourTruth:
    minimal_margin_mm: float
    coverage_pct: float
    volume_ml: float
    capsule_gap_mm: float  # from the tumour surface to the liver capsule (negative: beyond it)
    vessel_gap_mm: float  # from the tumour surface to the nearest vessel of >= 3 mm calibre

    @property
    def subcapsular(self) -> bool:
        return self.capsule_gap_mm < 5.0

    @property
    def perivascular(self) -> bool:
        return self.vessel_gap_mm < 5.0


def measure_tumour(tumour: TumourSite, zone: AblationZone, anatomy: Anatomy) -> TumourTruth:
    low, high = tumour.shape.bounds()
    low = low - _PAD_MM
    counts = np.ceil((high + _PAD_MM - low) / TRUTH_SPACING_MM).astype(int)
    points = _grid_points(low, counts)
    in_zone = zone.inside(points)
    # The tumour is evaluated in its own box only (the padding holds no tumour).
    inner = tuple(
        slice(int(_PAD_MM / TRUTH_SPACING_MM) - 1, int(c - _PAD_MM / TRUTH_SPACING_MM) + 1)
        for c in counts[::-1]
    )
    in_tumour = np.zeros(in_zone.shape, dtype=bool)
    in_tumour[inner] = tumour.shape.inside(points[inner])
    del points

    # Signed distance from each tumour-surface voxel to the zone surface (positive inside the
    # zone): the distance to the nearest voxel across the zone boundary, less half a voxel.
    surface = in_tumour & ~ndimage.binary_erosion(in_tumour)
    where = np.argwhere(surface) * TRUTH_SPACING_MM
    inside_zone = in_zone[surface]
    # Only the minimum counts. A surface voxel outside the zone is at least a voxel from every
    # zone voxel (a distance <= 0), one inside at least a voxel from every voxel outside (>= 0):
    # with any surface outside the zone, the voxels inside cannot hold the minimum, and their
    # distances (half of this function's time) are not computed.
    half = TRUTH_SPACING_MM / 2.0
    if (~inside_zone).any():
        signed = np.full(int((~inside_zone).sum()), -_PAD_MM)
        zone_edge = in_zone & ~ndimage.binary_erosion(in_zone)
        if zone_edge.any():
            tree = cKDTree(np.argwhere(zone_edge) * TRUTH_SPACING_MM)
            signed = -(tree.query(where[~inside_zone])[0] - half)
    elif (outside_edge := ~in_zone & ndimage.binary_dilation(in_zone)).any():
        tree = cKDTree(np.argwhere(outside_edge) * TRUTH_SPACING_MM)
        signed = tree.query(where)[0] - half
    else:
        signed = np.full(len(where), _PAD_MM)  # the zone fills the whole box around the tumour
    margin = float(np.clip(signed.min(), -_PAD_MM, _PAD_MM))

    voxel_ml = TRUTH_SPACING_MM**3 / 1000.0
    volume = float(in_tumour.sum()) * voxel_ml
    coverage = 100.0 * float((in_tumour & in_zone).sum()) / max(float(in_tumour.sum()), 1.0)

    surface_points = tumour.shape.surface_points(3000)
    capsule_gap = float(anatomy.depth_mm(surface_points).min())
    large = [v for v in anatomy.vessels if v.radius >= LARGE_VESSEL_RADIUS_MM]
    distance, which = distance_to_segments(surface_points, large)
    vessel_gap = float((distance - np.array([v.radius for v in large])[which]).min())
    return TumourTruth(margin, coverage, volume, capsule_gap, vessel_gap)


def _grid_points(low: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Anatomy-frame points of a fine grid, shape (nz, ny, nx, 3)."""
    return grid_points([low[a] + TRUTH_SPACING_MM * np.arange(counts[a]) for a in range(3)])
