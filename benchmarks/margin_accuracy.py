"""Accuracy of the minimal ablative margin on analytic shapes, by slice thickness.

    PYTHONPATH=src .venv/bin/python benchmarks/margin_accuracy.py [--draws N] [--seed S]

A tumour and its ablation zone, spheres or ellipsoids, concentric or with the zone's centre
moved 2 mm in a random 3D direction, are voxelised by "voxel centre inside the analytic shape"
on grids of 0.7 x 0.7 mm in-plane and 1, 2, 2.5, 3 or 5 mm slices, each draw with a random
sub-voxel position of the centre, a random tumour size (radius 5-15 mm) and, for ellipsoids,
random orientations. The analytic margin is R_zone - R_tumour - |offset| for spheres and, for
ellipsoids, the least signed distance from 40 000 points of the tumour's surface to the zone's
surface (exact point-to-ellipsoid distance). The margin is measured by hepablate's fitted
surfaces (``hepablate.features.geometry``) and by the method before issue 16 (the zone's
distance map at tumour-surface voxel centres), in one run. Prints Markdown for
docs/benchmarks.md: error (measured - analytic) by thickness, shape and placement; at 2.5 mm
by margin; CPU seconds per tumour.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial.transform import Rotation

from hepablate.features.geometry import minimal_ablative_margin_mm

IN_PLANE_MM = 0.7
THICKNESSES_MM = (1.0, 2.0, 2.5, 3.0, 5.0)
MARGINS_MM = (-2.0, 0.0, 2.0, 4.0, 6.0)
SHAPES = ("sphere", "ellipsoid")
PLACEMENTS = ("concentric", "offset")
OFFSET_MM = 2.0
Spacing = tuple[float, float, float]


@dataclass(frozen=True)
class Ellipsoid:
    centre: np.ndarray  # (z, y, x) mm
    radii: np.ndarray  # semi-axes along the rotation's axes
    rotation: np.ndarray  # columns: the semi-axes' directions in (z, y, x)

    def local(self, points: np.ndarray) -> np.ndarray:
        return (points - self.centre) @ self.rotation

    def voxelise(self, shape: tuple[int, int, int], spacing: Spacing) -> np.ndarray:
        axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        inside = ((self.local(grid) / self.radii) ** 2).sum(axis=1) <= 1.0
        return inside.reshape(shape)

    def surface_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        directions = rng.normal(size=(n, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return self.centre + (directions * self.radii) @ self.rotation.T

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Exact signed distance to the surface, positive inside (Eberly's bisection)."""
        y = np.abs(self.local(points))
        a2 = self.radii**2
        low = -a2.min() + 1e-12
        high = np.full(len(y), np.linalg.norm(y, axis=1).max() * self.radii.max() + 1.0)
        low = np.full(len(y), low)
        for _ in range(200):  # F(t) = sum (a_i y_i / (t + a_i^2))^2 - 1 decreases in t
            t = (low + high) / 2
            f = ((np.sqrt(a2) * y / (t[:, None] + a2)) ** 2).sum(axis=1) - 1.0
            low, high = np.where(f > 0, t, low), np.where(f > 0, high, t)
        t = (low + high) / 2
        foot = a2 * y / (t[:, None] + a2)
        distance = np.linalg.norm(y - foot, axis=1)
        inside = ((y / self.radii) ** 2).sum(axis=1) <= 1.0
        return np.where(inside, distance, -distance)


@dataclass(frozen=True)
class Case:
    tumour: np.ndarray
    zone: np.ndarray
    spacing: Spacing
    truth_mm: float
    analytic: tuple[Ellipsoid, Ellipsoid]  # tumour, zone


def analytic_case(
    shape: str, placement: str, margin_mm: float, thickness_mm: float, rng: np.random.Generator
) -> Case:
    """One voxelised tumour and zone with their analytic margin (module doc)."""
    spacing: Spacing = (thickness_mm, IN_PLANE_MM, IN_PLANE_MM)
    offset = OFFSET_MM if placement == "offset" else 0.0
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    radius = rng.uniform(5.0, 15.0)
    if shape == "sphere":
        tumour_radii = np.full(3, radius)
        zone_radii = np.full(3, radius + margin_mm + offset)
        tumour_rotation = zone_rotation = np.eye(3)
    else:
        tumour_radii = radius * np.array([1.0, 0.8, 0.65])
        zone_radii = tumour_radii + margin_mm + offset + rng.uniform(0.0, 3.0, 3)
        tumour_rotation = Rotation.random(random_state=rng).as_matrix()
        tilt = Rotation.from_rotvec(rng.normal(size=3) * np.radians(10.0)).as_matrix()
        zone_rotation = tilt @ tumour_rotation
    extent = 2.0 * max(float(zone_radii.max()) + offset + 3.0, float(tumour_radii.max()) + 16.0)
    grid = tuple(int(np.ceil(extent / s)) + 1 for s in spacing)
    centre = np.array([n // 2 * s for n, s in zip(grid, spacing, strict=True)])
    centre = centre + rng.uniform(0.0, 1.0, 3) * np.asarray(spacing)
    tumour = Ellipsoid(centre, tumour_radii, tumour_rotation)
    zone = Ellipsoid(centre + offset * direction, zone_radii, zone_rotation)
    if shape == "sphere":
        truth = float(zone_radii[0] - tumour_radii[0] - offset)
    else:
        truth = float(zone.signed_distance(tumour.surface_points(40_000, rng)).min())
    shape3 = (grid[0], grid[1], grid[2])
    return Case(
        tumour.voxelise(shape3, spacing),
        zone.voxelise(shape3, spacing),
        spacing,
        truth,
        (tumour, zone),
    )


def voxel_centre_margin(tumour: np.ndarray, zone: np.ndarray, spacing: Spacing) -> float:
    """The method before issue 16: the zone's signed distance map (EDT, surface half the
    smallest spacing beyond the voxel centres) at the tumour's boundary voxel centres."""
    half = min(spacing) / 2.0
    inside = ndimage.distance_transform_edt(zone, sampling=spacing) - half
    outside = ndimage.distance_transform_edt(~zone, sampling=spacing) - half
    distance = np.where(zone, inside, -outside)
    surface = tumour & ~ndimage.binary_erosion(tumour)
    return float(np.clip(distance[surface], -15.0, 15.0).min())


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, Spacing], float]] = {
    "voxel centres (before)": voxel_centre_margin,
    "fitted surfaces (now)": minimal_ablative_margin_mm,
}


def run(draws: int, seed: int, thicknesses: tuple[float, ...] = THICKNESSES_MM) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for thickness in thicknesses:
        for shape in SHAPES:
            for placement in PLACEMENTS:
                for margin in MARGINS_MM:
                    for _ in range(draws):
                        case = analytic_case(shape, placement, margin, thickness, rng)
                        for method, measure in METHODS.items():
                            start = time.process_time()
                            value = measure(case.tumour, case.zone, case.spacing)
                            rows.append(
                                {
                                    "thickness_mm": thickness,
                                    "shape": shape,
                                    "placement": placement,
                                    "margin_mm": margin,
                                    "method": method,
                                    "error_mm": value - case.truth_mm,
                                    "cpu_s": time.process_time() - start,
                                }
                            )
    return pd.DataFrame(rows)


def _summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = frame.groupby([*by, "method"], sort=False)["error_mm"]
    table = pd.DataFrame(
        {
            "mean": grouped.mean(),
            "mean |e|": grouped.apply(lambda e: e.abs().mean()),
            "max |e|": grouped.apply(lambda e: e.abs().max()),
        }
    ).unstack("method")
    return table.round(2)


def _markdown(table: pd.DataFrame) -> str:
    """A Markdown table (pandas' to_markdown needs tabulate, not a dependency)."""
    columns = [" ".join(str(c) for c in np.atleast_1d(column)) for column in table.columns]
    names = [str(n) for n in table.index.names]
    lines = ["| " + " | ".join([*names, *columns]) + " |"]
    lines.append("|" + "---|" * (len(names) + len(columns)))
    for key, row in table.iterrows():
        keys = [str(k) for k in np.atleast_1d(key)]  # type: ignore[arg-type]
        lines.append("| " + " | ".join([*keys, *(f"{v:.2f}" for v in row)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4, help="draws per cell")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--thickness", type=float, nargs="*", default=list(THICKNESSES_MM))
    args = parser.parse_args()
    frame = run(args.draws, args.seed, tuple(args.thickness))
    cases = len(frame) // len(METHODS)
    print(f"{cases} cases ({args.draws} per cell, seed {args.seed}); error = measured - analytic\n")
    print(_markdown(_summary(frame, ["thickness_mm", "shape", "placement"])))
    if 2.5 in args.thickness:
        print("\nAt 2.5 mm slices, by analytic margin (shapes and placements pooled):\n")
        print(_markdown(_summary(frame[frame["thickness_mm"] == 2.5], ["margin_mm"])))
    print("\nCPU seconds per tumour (mean):\n")
    timing = frame.groupby(["thickness_mm", "method"])["cpu_s"].mean().unstack("method")
    print(_markdown(timing))


if __name__ == "__main__":
    main()
