"""Drawing a virtual patient's CT scans and masks onto voxel grids.

A portal-venous-phase CT of the liver region: air, abdominal wall, fat, kidney, stomach, spine,
aorta and IVC around a liver of about 110 HU with its vessel tree (about 170 HU). Before
ablation the tumours are hypo-attenuating with a texture and an enhancing rim that grow with
the tumour's latent aggressiveness; after it, each ablation zone is about 35 HU with a thin
enhancing rim, and any tumour left outside its zone is still visible. Then the scanner: blur,
a calibration offset of the centre's scanner, and spatially correlated noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hepablate.imaging.io import Grid
from hepablate.simulate.anatomy import AblationZone, Anatomy, TumourSite
from hepablate.simulate.shapes import RigidTransform, Shape, box_coordinates

__all__ = ["ScannerProfile", "render_post", "render_pre"]

Array = np.ndarray

HU_LIVER = 110.0
HU_VESSEL = 172.0
HU_TUMOUR = 68.0
HU_ABLATION = 35.0
HU_ABLATION_RIM = 125.0
RIM_MM = 2.0
HU_BOWEL = 20.0


@dataclass(frozen=True)
class ScannerProfile:
    """What a centre's scanner and protocol add: noise, HU calibration offset, blur."""

    noise_hu: float = 15.0
    hu_offset: float = 0.0
    blur_mm: float = 0.7
    liver_hu: float = HU_LIVER


def _paint(
    volume: Array, grid: Grid, transform: RigidTransform, shape: Shape, value: float | int
) -> tuple[tuple[slice, ...], Array] | None:
    """Set ``value`` inside ``shape``; return the shape's voxel box and its inside mask."""
    box = box_coordinates(grid, transform, shape.bounds())
    if box is None:
        return None
    slices, points = box
    inside = shape.inside(points)
    volume[slices][inside] = value
    return slices, inside


def _empty(grid: Grid, value: float, dtype: type = np.float32) -> Array:
    return np.full(grid.size[::-1], value, dtype=dtype)


def _anatomy_layers(
    anatomy: Anatomy, grid: Grid, transform: RigidTransform, profile: ScannerProfile
) -> tuple[Array, Array, Array]:
    ct = _empty(grid, -1000.0)
    for _, shape, hu in anatomy.organs:
        _paint(ct, grid, transform, shape, hu)
    _bowel(ct, grid, anatomy.bowel_seed)
    liver = _empty(grid, 0, np.uint8)
    _paint(liver, grid, transform, anatomy.liver, 1)
    ct[liver.astype(bool)] = profile.liver_hu
    for _, shape, hu in anatomy.beside:
        painted = _paint(ct, grid, transform, shape, hu)
        if painted is not None:
            liver[painted[0]][painted[1]] = 0
    vessels = _empty(grid, 0, np.uint8)
    for tube in anatomy.vessels:
        _paint(vessels, grid, transform, tube, 1)
    ct[vessels.astype(bool)] = HU_VESSEL
    return ct, liver, vessels


def _bowel(ct: Array, grid: Grid, seed: int) -> None:
    """Loops of bowel and mesentery in the abdominal fat: blobs of soft tissue.

    Drawn in the scan's own voxels from the patient's seed (the same loops in both scans,
    not moved with the liver: bowel moves on its own between scans anyway).
    """
    field = np.random.default_rng(seed).standard_normal(ct.shape).astype(np.float32)
    spacing_zyx = np.asarray(grid.spacing_mm[::-1])
    field = ndimage.gaussian_filter(field, 5.0 / spacing_zyx)
    field /= max(float(field.std()), 1e-6)
    fat = ct == -95.0
    ct[fat & (field > 1.0)] = HU_BOWEL


def _scanner(ct: Array, grid: Grid, profile: ScannerProfile, rng: np.random.Generator) -> Array:
    spacing_zyx = np.asarray(grid.spacing_mm[::-1])
    blurred = ndimage.gaussian_filter(ct + profile.hu_offset, profile.blur_mm / spacing_zyx)
    noise = ndimage.gaussian_filter(rng.standard_normal(ct.shape).astype(np.float32), 0.7)
    noise *= profile.noise_hu / max(float(noise.std()), 1e-6)
    return np.clip(np.round(blurred + noise), -1024, 3071).astype(np.int16)


def render_pre(
    anatomy: Anatomy,
    tumours: list[TumourSite],
    grid: Grid,
    profile: ScannerProfile,
    rng: np.random.Generator,
) -> dict[str, Array]:
    """The pre-ablation CT (anatomy frame = scan frame) and its masks."""
    identity = RigidTransform()
    ct, liver, vessels = _anatomy_layers(anatomy, grid, identity, profile)
    labels = _empty(grid, 0, np.uint8)
    for tumour in tumours:
        box = box_coordinates(grid, identity, tumour.shape.bounds())
        if box is None:
            continue
        slices, points = box
        distance, boundary = tumour.shape.radial(points)
        inside = distance <= boundary
        aggressive = 1.0 / (1.0 + np.exp(-1.5 * tumour.latent))
        texture = ndimage.gaussian_filter(rng.standard_normal(inside.shape), 1.2)
        texture /= max(float(texture.std()), 1e-6)
        depth_mm = (boundary - distance) * tumour.shape.radii[0]
        rim = depth_mm < 2.5
        values = (
            HU_TUMOUR
            - 12.0 * aggressive
            + (5.0 + 14.0 * aggressive) * texture
            + 30.0 * aggressive * rim
        )
        ct[slices][inside] = values[inside]
        labels[slices][inside] = tumour.tumour_id
    return {
        "pre_ct": _scanner(ct, grid, profile, rng),
        "pre_tumours": labels,
        "liver": liver,
        "vessels": vessels,
    }


def render_post(
    anatomy: Anatomy,
    tumours: list[TumourSite],
    zones: list[AblationZone],
    grid: Grid,
    transform: RigidTransform,
    profile: ScannerProfile,
    rng: np.random.Generator,
) -> dict[str, Array]:
    """The post-ablation CT, seen through the patient's motion ``transform``, and its masks."""
    ct, liver, _ = _anatomy_layers(anatomy, grid, transform, profile)
    labels = _empty(grid, 0, np.uint8)
    for tumour, zone in zip(tumours, zones, strict=True):
        box = box_coordinates(grid, transform, zone.bounds())
        if box is None:
            continue
        slices, points = box
        ablated = zone.inside(points)
        # A rim of about 2 mm: hyperaemia around the coagulated tissue.
        rim_voxels = max(1, round(RIM_MM / min(grid.spacing_mm)))
        interior = ndimage.binary_erosion(ablated, iterations=rim_voxels)
        view = ct[slices]
        view[ablated] = HU_ABLATION
        view[ablated & ~interior] = HU_ABLATION_RIM
        labels[slices][ablated] = tumour.tumour_id
    for tumour, zone in zip(tumours, zones, strict=True):  # tumour left outside its zone
        box = box_coordinates(grid, transform, tumour.shape.bounds())
        if box is None:
            continue
        slices, points = box
        residual = tumour.shape.inside(points) & ~zone.inside(points)
        ct[slices][residual] = HU_TUMOUR
    return {
        "post_ct": _scanner(ct, grid, profile, rng),
        "post_ablation": labels,
        "post_liver": liver,
    }
