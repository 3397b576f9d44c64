"""Solid shapes of the virtual anatomy, and drawing them onto a scan's voxel grid.

Every shape lives in the *anatomy frame*: the patient's body as it lay at the pre-ablation scan,
in millimetres, LPS (x to the patient's left, y posterior, z superior), as ITK and DICOM use.
A scan sees the anatomy through a :class:`RigidTransform` (identity for the pre-ablation CT, a
small rigid motion for the follow-up CT). A shape is drawn by evaluating ``inside`` at the
anatomy-frame position of every voxel centre in the shape's bounding box, so a moved scan is
drawn exactly, without resampling an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hepablate.imaging.io import Grid

__all__ = [
    "Ellipsoid",
    "RigidTransform",
    "Shape",
    "StarShape",
    "Tube",
    "box_coordinates",
    "distance_to_segments",
    "grid_points",
    "rotation_matrix",
]

Array = np.ndarray


def rotation_matrix(angles_deg: tuple[float, float, float]) -> Array:
    """Rotation about x, then y, then z (angles in degrees): ``Rz @ Ry @ Rx``."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class RigidTransform:
    """``x_scan = matrix @ x_anatomy + translation`` (mm): where a scan sees an anatomy point.

    For the follow-up CT this is the patient's motion between the scans. Registering the
    post-ablation CT onto the pre-ablation CT means recovering it: ITK's resampling of the post
    image into the pre frame uses exactly this map (fixed point -> moving point).
    """

    matrix: Array = field(default_factory=lambda: np.eye(3))
    translation: Array = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def from_angles(
        cls, angles_deg: tuple[float, float, float], translation_mm: tuple[float, float, float]
    ) -> RigidTransform:
        return cls(rotation_matrix(angles_deg), np.asarray(translation_mm, dtype=float))

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.matrix, np.eye(3)) and not np.any(self.translation))

    def apply(self, points: Array) -> Array:
        """Anatomy -> scan, for points of shape (..., 3)."""
        return points @ self.matrix.T + self.translation

    def inverse_apply(self, points: Array) -> Array:
        """Scan -> anatomy (in the points' precision)."""
        if self.is_identity:
            return points
        shifted = points - self.translation.astype(points.dtype)
        return shifted @ self.matrix.astype(points.dtype)


class Shape(Protocol):
    """A solid in the anatomy frame."""

    def bounds(self) -> tuple[Array, Array]:
        """Lower and upper corners of an axis-aligned box holding the shape (mm)."""
        ...

    def inside(self, points: Array) -> Array:
        """Boolean array: which of the points (..., 3) are inside."""
        ...


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with semi-axes ``radii`` along the columns of ``axes`` (a rotation)."""

    centre: Array
    radii: Array
    axes: Array = field(default_factory=lambda: np.eye(3))

    def bounds(self) -> tuple[Array, Array]:
        half = np.sqrt(((self.axes * self.radii) ** 2).sum(axis=1))
        return self.centre - half, self.centre + half

    def inside(self, points: Array) -> Array:
        scaled = (self.axes / self.radii).astype(points.dtype)  # columns: axis / semi-axis
        local = (points - self.centre.astype(points.dtype)) @ scaled
        return np.einsum("...i,...i->...", local, local) <= 1.0


@dataclass(frozen=True)
class Tube:
    """A vessel segment: all points within ``radius`` of the segment from ``start`` to ``end``."""

    start: Array
    end: Array
    radius: float

    def bounds(self) -> tuple[Array, Array]:
        low = np.minimum(self.start, self.end) - self.radius
        return low, np.maximum(self.start, self.end) + self.radius

    def inside(self, points: Array) -> Array:
        return distance_to_segments(points, [self])[0] <= self.radius


def distance_to_segments(points: Array, tubes: list[Tube]) -> tuple[Array, Array]:
    """Distance from each point to the axis of the nearest tube, and that tube's index."""
    best = np.full(points.shape[:-1], np.inf)
    which = np.full(points.shape[:-1], -1, dtype=np.int64)
    for index, tube in enumerate(tubes):
        direction = tube.end - tube.start
        length2 = max(float(direction @ direction), 1e-12)
        rel = points - tube.start
        along = np.clip((rel @ direction) / length2, 0.0, 1.0)
        rel -= along[..., None] * direction
        distance2 = np.einsum("...i,...i->...", rel, rel)
        closer = distance2 < best
        best[closer] = distance2[closer]
        which[closer] = index
    return np.sqrt(best), which


@dataclass(frozen=True)
class StarShape:
    """A lobulated solid: radius ``r(u) = scale(u) * (1 + sum_k a_k cos(w_k u.v_k + p_k))``.

    ``radii`` stretch a sphere into an ellipsoid first (the liver), and ``taper`` narrows the
    y and z extent toward +x (the thin left lobe). With small amplitudes this is the irregular
    boundary of a tumour; with none, an ellipsoid.
    """

    centre: Array
    radii: Array
    amplitudes: Array = field(default_factory=lambda: np.zeros(0))
    frequencies: Array = field(default_factory=lambda: np.zeros(0))
    directions: Array = field(default_factory=lambda: np.zeros((0, 3)))
    phases: Array = field(default_factory=lambda: np.zeros(0))
    taper: float = 0.0

    @property
    def max_factor(self) -> float:
        return 1.0 + float(np.abs(self.amplitudes).sum())

    def bounds(self) -> tuple[Array, Array]:
        half = self.radii * self.max_factor
        return self.centre - half, self.centre + half

    def radial(self, points: Array) -> tuple[Array, Array]:
        """Scaled distance of each point from the centre, and the boundary's at that angle."""
        dtype = points.dtype
        local = (points - self.centre.astype(dtype)) / self.radii.astype(dtype)
        if self.taper:
            width = 1.0 - self.taper * np.clip((local[..., 0] + 1.0) / 2.0, 0.0, 1.0)
            local = local.copy()
            local[..., 1] /= width
            local[..., 2] /= width
        distance = np.sqrt(np.einsum("...i,...i->...", local, local))
        boundary = np.ones(distance.shape)
        if len(self.amplitudes):
            # cos(w * u.v + p) for every lobe at once: projections of the unit direction.
            projection = (local @ self.directions.T.astype(dtype)) / np.maximum(distance, 1e-9)[
                ..., None
            ]
            waves = np.cos(
                projection * self.frequencies.astype(dtype) + self.phases.astype(dtype)
            ) @ self.amplitudes.astype(dtype)
            boundary = boundary + waves
        return distance, boundary

    def inside(self, points: Array) -> Array:
        distance, boundary = self.radial(points)
        return distance <= boundary

    def surface_points(self, n: int = 2000) -> Array:
        """Points on the surface, along ``n`` evenly spread directions (for a round shape)."""
        index = np.arange(n) + 0.5
        polar = np.arccos(1.0 - 2.0 * index / n)
        azimuth = np.pi * (1.0 + 5.0**0.5) * index
        unit = np.stack(
            [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], -1
        )
        _, boundary = self.radial(self.centre + unit * self.radii)
        return self.centre + unit * self.radii * boundary[:, None]


def grid_points(axes: list[Array]) -> Array:
    """Points (nz, ny, nx, 3) of the grid with coordinate ``axes`` x, y, z, in float32.

    Float32 keeps a millimetre coordinate to about 1e-5 mm and halves the memory traffic of
    drawing, which dominates the simulator's time.
    """
    x, y, z = (np.asarray(a, dtype=np.float32) for a in axes)
    points = np.empty((len(z), len(y), len(x), 3), dtype=np.float32)
    points[..., 0] = x[None, None, :]
    points[..., 1] = y[None, :, None]
    points[..., 2] = z[:, None, None]
    return points


def box_coordinates(
    grid: Grid, transform: RigidTransform, bounds: tuple[Array, Array], pad_mm: float = 0.0
) -> tuple[tuple[slice, slice, slice], Array] | None:
    """Voxels of ``grid`` that may see the anatomy box ``bounds``.

    Returns the (z, y, x) slices of the voxel box and the anatomy-frame coordinates of its voxel
    centres, shape (nz, ny, nx, 3); ``None`` when the box is outside the grid.
    """
    low, high = bounds
    corners = np.array(
        [
            [(low, high)[i][0], (low, high)[j][1], (low, high)[k][2]]
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ]
    )
    in_scan = transform.apply(corners)
    origin = np.asarray(grid.origin_mm)
    spacing = np.asarray(grid.spacing_mm)
    size = np.asarray(grid.size)
    first = np.floor((in_scan.min(axis=0) - pad_mm - origin) / spacing).astype(int)
    last = np.ceil((in_scan.max(axis=0) + pad_mm - origin) / spacing).astype(int)
    first = np.clip(first, 0, size)
    last = np.clip(last + 1, 0, size)
    if np.any(last <= first):
        return None
    scan_points = grid_points(
        [origin[a] + spacing[a] * np.arange(first[a], last[a]) for a in range(3)]
    )
    slices = (slice(first[2], last[2]), slice(first[1], last[1]), slice(first[0], last[0]))
    return slices, transform.inverse_apply(scan_points)
