"""The minimal ablative margin of a tumour, measured between smooth surfaces fitted to the
tumour's and the ablation zone's masks (on one grid).

The minimal ablative margin (MAM) of a tumour is the smallest distance, over the tumour's
surface, from the tumour surface to the ablation-zone surface, signed: positive where the
surface point lies inside the zone, negative where tumour lies outside it.

**Surfaces between the slices.** On CT with 2.5-5 mm slices a voxel mask says where a surface
is to ±0.35 mm in-plane but only to ±1.25-2.5 mm along z, and a margin taken at voxel centres
inherits that error where the surfaces face up or down (up to 1 mm at 2.5 mm slices:
``docs/benchmarks.md``). So the margin is measured between smooth surfaces fitted to the
masks. Each mask's surface is the zero level of a variational implicit function (Turk &
O'Brien 1999, *Shape transformation using variational implicit functions*; Carr et al. 2001):
the biharmonic radial-basis interpolant in 3D (kernel |x|, with an affine term), through
points on the in-plane contours (marching squares at 0.5 on each slice, each point the mean of
an arc of contour, which removes the staircase) with off-surface points one millimetre along
each normal, fitted with a ridge of 10 on the kernel's diagonal. Normals come first from the
gradient of the mask smoothed at 1.5 mm, which gives them their out-of-plane part, then once
more from the fitted function itself; so a cap between two slices closes as the slices below
it curve, not flat half-way as a mask would. The fit must keep every voxel centre of the mask
inside and every centre next to it outside: where it puts centres on the wrong side (a cap
that bulges past the next slice), the worst one per 4 mm cube joins the fit 0.25 mm on its own
side, three rounds at most. The fit is a dense solve, so at most 200 contour samples (about
600 equations) per surface: CPU cost in ``benchmarks/geometry_speed.py``.
Tumour-surface points are the mask's boundary voxel centres, one per millimetre cube,
projected onto the tumour's surface (nearly uniform in area, so the 5th percentile and the
mean of the margin are area-weighted); each one's distance to the zone's surface is found from
the nearest zone-surface point by closest-point iterations, and its sign from the zone's
implicit function. ``benchmarks/margin_accuracy.py`` measures the error on analytic spheres
and ellipsoids by slice thickness; a fitted surface is smooth, so a sharp notch in a zone (a
heat-sink channel of a few millimetres) is rounded, which can overstate the margin there by up
to about one millimetre (``docs/benchmarks.md``).

Where a liver mask is given, the capsule-facing side of the tumour is left out of the margin,
as the open-source qam tool does: beyond the capsule there is no parenchyma to leave untreated,
so the zone's edge is sought inside the liver only (space outside the liver counts as ablated
for the margin; coverage and residual volume use the zone as drawn).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from skimage import measure

__all__ = [
    "PAD_MM",
    "Spacing",
    "bounding_box",
    "minimal_ablative_margin_mm",
    "signed_distance_mm",
    "surface_margins",
    "surface_voxels",
]

PAD_MM = 15.0  # margins are sought this far from the tumour; a larger one is reported as this

# The fitted surfaces (module doc). The fit is a dense solve of 3n + 4 equations for n contour
# samples, so n is capped: on a larger surface the samples are spaced further apart (each is
# still the mean of its arc of contour).
_MAX_SAMPLES = 200
_MIN_STEP_MM = 1.0
_OFFSET_MM = 1.0  # off-surface points along each normal (Carr et al. 2001)
_SMOOTHING = 10.0  # ridge on the kernel's diagonal: the staircase is noise, not shape
_NORMAL_SIGMA_MM = 1.5
_VOXEL_ROUNDS = 3
_NORMAL_ITERATIONS = 1
_VOXEL_VALUE_MM = 0.25
_CONSTRAINT_MM = 4.0  # at most one voxel-centre constraint per cube of this side a round
_TUMOUR_POINT_MM = 1.0  # one tumour-surface point per cube of this side
_ZONE_POINT_MM = 1.5
_ON_SURFACE_MM = 0.05  # a projected point farther than this from the zero level is dropped
_PROJECT_ITERATIONS = 3
_CLOSEST_POINT_ITERATIONS = 2
_FOOT_ITERATIONS = 2
_BLOCK = 1024  # points per distance matrix in an evaluation

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


def bounding_box(mask: np.ndarray, spacing: Spacing, pad_mm: float) -> tuple[slice, ...]:
    """The slices of the mask's bounding box, grown by ``pad_mm`` (within the array)."""
    where = np.argwhere(mask)
    pad = np.ceil(pad_mm / np.asarray(spacing)).astype(int)
    low = np.maximum(where.min(axis=0) - pad, 0)
    high = np.minimum(where.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """The mask's voxels with a face on the background or the array's edge."""
    return mask & ~ndimage.binary_erosion(mask)


def _outer(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask) & ~mask


def _contour_samples(mask: np.ndarray, spacing: Spacing, keep: np.ndarray | None) -> np.ndarray:
    """Points (z, y, x mm) on every slice's contour, each the mean of an arc of the contour.

    Contours are marching squares at 0.5 on each slice (half-way between mask and background
    voxel centres); the slice is padded with its own edge, so a mask cut by the box has no
    contour along the cut. Arcs are at least ``_MIN_STEP_MM`` long and as long as needed to
    keep at most ``_MAX_SAMPLES`` of the samples where ``keep`` is true.
    """
    dz, dy, dx = spacing
    fine_mm = 0.25
    lines: list[tuple[np.ndarray, np.ndarray]] = []
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        padded = np.pad(mask[k], 1, mode="edge").astype(np.float32)
        for contour in measure.find_contours(padded, 0.5):
            yx = (contour - 1.0) * (dy, dx)
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(yx, axis=0).T))])
            if arc[-1] <= 0:
                continue
            at = np.linspace(0.0, arc[-1], max(int(np.ceil(arc[-1] / fine_mm)), 3))
            fine = np.column_stack([np.interp(at, arc, yx[:, 0]), np.interp(at, arc, yx[:, 1])])
            points = np.column_stack([np.full(len(fine), k * dz), fine])
            kept = np.ones(len(points), bool) if keep is None else _lookup(keep, points, spacing)
            lines.append((points, kept))
    kept_mm = fine_mm * sum(int(kept.sum()) for _, kept in lines)
    step = max(_MIN_STEP_MM, kept_mm / _MAX_SAMPLES)
    samples = []
    for points, kept in lines:
        # Equal arcs (as np.array_split cuts them), each one's mean by np.add.reduceat.
        pieces = min(max(round(len(points) * fine_mm / step), 3), len(points))
        size, extra = divmod(len(points), pieces)
        starts = np.arange(pieces) * size + np.minimum(np.arange(pieces), extra)
        lengths = np.full(pieces, size) + (np.arange(pieces) < extra)
        means = np.add.reduceat(points, starts, axis=0) / lengths[:, None]
        samples.append(means[kept[starts + lengths // 2]])
    return np.concatenate(samples) if samples else np.empty((0, 3))


def _lookup(mask: np.ndarray, points: np.ndarray, spacing: Spacing) -> np.ndarray:
    """``mask`` at the voxel nearest each point (False outside the array)."""
    index = np.rint(points / np.asarray(spacing)).astype(int)
    inside = ((index >= 0) & (index < np.asarray(mask.shape))).all(axis=1)
    values = np.zeros(len(points), bool)
    values[inside] = mask[tuple(index[inside].T)]
    return values


class _ImplicitSurface:
    """A mask's surface as the zero level of f(x) = Σ wᵢ|x − cᵢ| + a·(1, x), positive inside."""

    def __init__(
        self, mask: np.ndarray, spacing: Spacing, samples: np.ndarray, keep: np.ndarray | None
    ) -> None:
        self.spacing = spacing
        self.shift = samples.mean(axis=0)
        smoothed = ndimage.gaussian_filter(
            mask.astype(np.float32), [_NORMAL_SIGMA_MM / s for s in spacing]
        )
        index = (samples / np.asarray(spacing)).T
        gradient = np.stack(
            [
                ndimage.map_coordinates(np.gradient(smoothed, s, axis=a), index, order=1)
                for a, s in enumerate(spacing)
            ],
            axis=1,
        )
        length = np.linalg.norm(gradient, axis=1)
        samples, outward = samples[length > 0], -gradient[length > 0] / length[length > 0, None]
        self._solve(samples, outward, np.empty((0, 3)), np.empty(0))
        for _ in range(_NORMAL_ITERATIONS):
            _, gradient = self.evaluate(samples)
            outward = -gradient / np.maximum(np.linalg.norm(gradient, axis=1, keepdims=True), 1e-12)
            self._solve(samples, outward, np.empty((0, 3)), np.empty(0))
        # The surface must keep every voxel centre of the mask inside it and every centre next
        # to the mask outside it; where the fit crosses one (a cap bulging past the next
        # slice), the centre joins the fit on the surface (``_VOXEL_VALUE_MM`` inside it).
        inner, outer = surface_voxels(mask), _outer(mask)
        if keep is not None:
            inner, outer = inner & keep, outer & keep
        centres = np.concatenate([np.argwhere(inner), np.argwhere(outer)]) * np.asarray(spacing)
        sign = np.concatenate([np.ones(int(inner.sum())), -np.ones(int(outer.sum()))])
        extra, extra_values = np.empty((0, 3)), np.empty(0)
        for _ in range(_VOXEL_ROUNDS):
            signed = self.values(centres) * sign
            wrong = signed < 0
            if not wrong.any():
                break
            # The worst centre of each cube only: on a jagged mask (a zone resampled through
            # the registration) hundreds are a little wrong, and each one would grow the
            # dense solve; one per cube pulls its neighbours across with it.
            order = np.flatnonzero(wrong)[np.argsort(signed[wrong])]
            cubes = np.floor(centres[order] / _CONSTRAINT_MM).astype(np.int64)
            wrong = np.zeros(len(centres), bool)
            wrong[order[np.unique(cubes, axis=0, return_index=True)[1]]] = True
            extra = np.concatenate([extra, centres[wrong]])
            extra_values = np.concatenate([extra_values, sign[wrong] * _VOXEL_VALUE_MM])
            centres, sign = centres[~wrong], sign[~wrong]
            self._solve(samples, outward, extra, extra_values)

    def _solve(
        self, samples: np.ndarray, outward: np.ndarray, extra: np.ndarray, extra_values: np.ndarray
    ) -> None:
        n = len(samples)
        points = np.concatenate(
            [samples, samples - _OFFSET_MM * outward, samples + _OFFSET_MM * outward, extra]
        )
        values = np.concatenate(
            [np.zeros(n), np.full(n, _OFFSET_MM), np.full(n, -_OFFSET_MM), extra_values]
        )
        centres = points - self.shift
        m = len(centres)
        system = np.zeros((m + 4, m + 4))
        system[:m, :m] = -cdist(centres, centres)
        system[np.arange(m), np.arange(m)] += _SMOOTHING
        system[:m, m] = system[m, :m] = 1.0
        system[:m, m + 1 :] = centres
        system[m + 1 :, :m] = centres.T
        rhs = np.concatenate([values, np.zeros(4)])
        try:
            solution = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:  # coplanar samples (a one-slice mask): least squares
            solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
        self.centres, self.weights, self.affine = centres, solution[:m], solution[m:]

    @classmethod
    def fit(
        cls, mask: np.ndarray, spacing: Spacing, keep: np.ndarray | None = None
    ) -> _ImplicitSurface | None:
        """The surface of ``mask`` where ``keep`` (None: no contour there)."""
        samples = _contour_samples(mask, spacing, keep)
        return cls(mask, spacing, samples, keep) if len(samples) >= 4 else None

    def values(self, points: np.ndarray) -> np.ndarray:
        out = np.empty(len(points))
        for start in range(0, len(points), _BLOCK):
            x = points[start : start + _BLOCK] - self.shift
            out[start : start + _BLOCK] = (
                self.affine[0] + x @ self.affine[1:] - cdist(x, self.centres) @ self.weights
            )
        return out

    def evaluate(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and gradients at ``points``, from one distance matrix per block."""
        values, gradient = np.empty(len(points)), np.empty((len(points), 3))
        for start in range(0, len(points), _BLOCK):
            x = points[start : start + _BLOCK] - self.shift
            distance = cdist(x, self.centres)
            values[start : start + _BLOCK] = (
                self.affine[0] + x @ self.affine[1:] - distance @ self.weights
            )
            np.maximum(distance, 1e-9, out=distance)
            w = np.divide(self.weights, distance, out=distance)
            gradient[start : start + _BLOCK] = (
                w @ self.centres - x * w.sum(axis=1, keepdims=True) + self.affine[1:]
            )
        return values, gradient

    def project(
        self, points: np.ndarray, iterations: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Newton steps along the gradient onto the zero level; the points reached, with the
        function's values and gradients there."""
        values, gradient = self.evaluate(points)
        for _ in range(iterations):
            step = values / np.maximum((gradient**2).sum(axis=1), 1e-12)
            points = points - step[:, None] * gradient
            values, gradient = self.evaluate(points)
        return points, values, gradient

    def points(
        self, mask: np.ndarray, cube_mm: float, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points of the surface (with the gradient there): ``mask``'s boundary voxel centres
        where ``keep``, one per cube, projected."""
        boundary = mask & ~ndimage.binary_erosion(mask, border_value=1)
        if keep is not None:
            boundary &= keep
        seeds = np.argwhere(boundary) * np.asarray(self.spacing)
        _, first = np.unique(np.floor(seeds / cube_mm).astype(np.int64), axis=0, return_index=True)
        seeds = seeds[np.sort(first)]
        projected, values, gradient = self.project(seeds, _PROJECT_ITERATIONS)
        # A seed is within a voxel of the surface; one that ran further found another zero
        # of the function (a thin mask's fit can have one away from the mask).
        near = np.linalg.norm(projected - seeds, axis=1) <= max(self.spacing)
        good = near & (np.abs(values) <= _ON_SURFACE_MM)
        return projected[good], gradient[good]

    def distance(
        self,
        points: np.ndarray,
        surface_points: np.ndarray,
        surface_gradient: np.ndarray,
        allowed: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Unsigned distance from each point to the part of the surface where ``allowed``
        (``surface_points`` are in it): from the nearest surface point, two closest-point
        iterations (into the tangent plane at the foot, back onto the surface). Every foot
        kept is on that part of the surface, so the least distance found is the answer."""
        best, nearest = cKDTree(surface_points).query(points)
        foot, gradient = surface_points[nearest], surface_gradient[nearest]
        for _ in range(_CLOSEST_POINT_ITERATIONS):
            normal = gradient / np.maximum(np.linalg.norm(gradient, axis=1, keepdims=True), 1e-12)
            foot = points - ((points - foot) * normal).sum(axis=1, keepdims=True) * normal
            foot, values, gradient = self.project(foot, _FOOT_ITERATIONS)
            on = np.abs(values) <= _ON_SURFACE_MM
            if allowed is not None:
                on &= allowed(foot)
            best = np.where(on, np.minimum(best, np.linalg.norm(points - foot, axis=1)), best)
        return best


def _inside(
    surface: _ImplicitSurface | None, mask: np.ndarray, tumour: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Inside test of a fitted mask; a mask with no contour near the tumour is all in or all
    out there, as at the tumour's voxels."""
    if surface is not None:
        return lambda points: surface.values(points) >= 0.0
    constant = bool(mask[tumour].mean() >= 0.5)
    return lambda points: np.full(len(points), constant)


def surface_margins(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing: Spacing,
    liver: np.ndarray | None,
    pad_mm: float,
) -> np.ndarray:
    """Signed distance to the ablated region's surface at points of the tumour's surface.

    The ablated region is the zone or, with a liver mask, the zone and everything outside the
    liver (beyond the capsule there is no parenchyma to leave untreated, so the zone's edge is
    only sought inside the liver). Zone and liver are fitted apart and combined exactly (the
    region's surface is the zone's inside the liver and the capsule outside the zone), so the
    crease where the zone meets the capsule stays sharp.
    """
    box = bounding_box(tumour, spacing, pad_mm)
    tumour_box, zone_box = tumour[box], zone[box].astype(bool)
    liver_box = np.ones_like(zone_box) if liver is None else liver[box].astype(bool)
    tumour_surface = _ImplicitSurface.fit(tumour_box, spacing)
    points = (
        np.empty((0, 3))
        if tumour_surface is None
        else tumour_surface.points(tumour_box, _TUMOUR_POINT_MM)[0]
    )
    if len(points) == 0:  # too small or thin to fit: its boundary voxel centres
        points = np.argwhere(surface_voxels(tumour_box)) * np.asarray(spacing)
    # Only surfaces within reach of the tumour matter: margins stop at pad_mm.
    reach = ndimage.distance_transform_edt(~tumour_box, sampling=spacing) <= pad_mm + 2.0
    zone_surface = _ImplicitSurface.fit(zone_box, spacing, keep=reach)
    liver_surface = None if liver is None else _ImplicitSurface.fit(liver_box, spacing, reach)
    in_zone = _inside(zone_surface, zone_box, tumour_box)
    in_liver = _inside(liver_surface, liver_box, tumour_box)
    inside = in_zone(points) | ~in_liver(points)
    distance = np.full(len(points), np.inf)
    for surface, mask, allowed in (
        (zone_surface, zone_box, in_liver),
        (liver_surface, liver_box, lambda x: ~in_zone(x)),
    ):
        if surface is None:
            continue
        edge, gradient = surface.points(mask, _ZONE_POINT_MM, reach)
        kept = allowed(edge)
        if kept.any():
            distance = np.minimum(
                distance, surface.distance(points, edge[kept], gradient[kept], allowed)
            )
    return np.clip(np.where(inside, distance, -distance), -pad_mm, pad_mm)


def minimal_ablative_margin_mm(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing_zyx_mm: Spacing,
    *,
    liver: np.ndarray | None = None,
    pad_mm: float = PAD_MM,
) -> float:
    """Signed minimal ablative margin of ``tumour`` in ``zone`` (boolean masks, one grid).

    Margins beyond ``pad_mm`` are reported as ``pad_mm``: far from any clinical effect.
    """
    tumour = tumour.astype(bool)
    if not tumour.any():
        raise ValueError("the tumour mask is empty")
    return float(surface_margins(tumour, zone, spacing_zyx_mm, liver, pad_mm).min())
