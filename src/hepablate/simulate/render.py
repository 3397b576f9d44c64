"""Drawing a virtual patient's CT scans and masks onto voxel grids.

A portal-venous-phase CT of the liver region: air, abdominal wall, fat, kidney, stomach, spine,
aorta and IVC around a liver of about 110 HU with its vessel tree (about 170 HU). Before
ablation the tumours are hypo-attenuating with a texture and an enhancing rim that grow with
the tumour's latent aggressiveness; after it, each ablation zone is about 35 HU with a thin
enhancing rim, and any tumour left outside its zone is still visible. Then the scanner: blur,
a calibration offset of the centre's scanner, and spatially correlated noise.

With a :class:`~hepablate.simulate.appearance.PatientLook` (``appearance: varied``) the scans
vary as real ones do: contrast phase, liver and vessel enhancement, tumour appearance (hyper-
or hypo-attenuating, rim, necrosis, soft edges), cysts, kernel, noise and slice thickness (each
slice the mean of odd sub-slices: partial volume). Without one, the plain scans above, voxel
for voxel those of earlier versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hepablate.imaging.io import Grid
from hepablate.simulate.anatomy import AblationZone, Anatomy, TumourSite
from hepablate.simulate.appearance import PatientLook, ScanLook, TumourLook
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
    look: PatientLook | None = None,
) -> dict[str, Array]:
    """The pre-ablation CT (anatomy frame = scan frame) and its masks; as ``look`` says when
    given."""
    if look is not None:
        return _varied_pre(anatomy, tumours, grid, profile, rng, look)
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
    look: PatientLook | None = None,
) -> dict[str, Array]:
    """The post-ablation CT, seen through the patient's motion ``transform``, and its masks; as
    ``look`` says when given."""
    if look is not None:
        return _varied_post(anatomy, tumours, zones, grid, transform, profile, rng, look)
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


# --- appearance: varied --------------------------------------------------------------------

_SUB_SLICE_MM = 2.1  # slices thicker than this are drawn from 3 sub-slices (partial volume)
_MOTTLE_MM = 12.0  # correlation length of the liver's parenchymal heterogeneity
_TEXTURE_MM = 1.8  # grain of a tumour's texture


def _sub_slices(slice_mm: float) -> int:
    """How many sub-slices (odd, so the middle one lies on the slice's centre) make a slice."""
    k = int(np.ceil(slice_mm / _SUB_SLICE_MM))
    return k if k % 2 else k + 1


def _fine(grid: Grid, k: int) -> Grid:
    """``grid`` with each slice split into ``k`` sub-slices across its thickness."""
    (nx, ny, nz), (sx, sy, sz), (ox, oy, oz) = grid.size, grid.spacing_mm, grid.origin_mm
    return Grid(
        (nx, ny, nz * k), (sx, sy, sz / k), (ox, oy, oz - (k - 1) / 2 * sz / k), grid.direction
    )


def _centres(mask: Array, k: int) -> Array:
    """A mask drawn on sub-slices, at the slices' centres (masks are not partial-volumed)."""
    return np.ascontiguousarray(mask[(k - 1) // 2 :: k])


def _unit_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: Array) -> Array:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    field /= max(float(field.std()), 1e-6)
    return field


def _coarse_field(
    rng: np.random.Generator, shape: tuple[int, ...], spacing_zyx: Array, sigma_mm: float
) -> Array:
    """A smooth unit field of correlation ``sigma_mm``, drawn on a grid a third as fine and
    interpolated: the same look at a small part of the filtering cost."""
    step_mm = sigma_mm / 3.0
    coarse = tuple(
        max(2, int(np.ceil(n * s / step_mm))) for n, s in zip(shape, spacing_zyx, strict=True)
    )
    field = _unit_field(rng, coarse, np.full(3, 3.0))
    zoom = np.asarray(shape, dtype=float) / np.asarray(coarse)
    fine = ndimage.zoom(field, zoom, order=1, grid_mode=True, mode="nearest")
    return np.asarray(fine[: shape[0], : shape[1], : shape[2]], dtype=np.float32)


def _varied_layers(
    anatomy: Anatomy,
    grid: Grid,
    transform: RigidTransform,
    scan: ScanLook,
    look: PatientLook,
    rng: np.random.Generator,
) -> tuple[Array, Array, Array]:
    """Body, organs, liver, vessels (HU of the scan's phase) and cysts; CT, liver, vessels."""
    spacing_zyx = np.asarray(grid.spacing_mm[::-1])
    ct = _empty(grid, -1000.0)
    organ_hu = {"kidney": scan.kidney_hu, "aorta": scan.aorta_hu}
    for name, shape, hu in anatomy.organs:
        _paint(ct, grid, transform, shape, organ_hu.get(name, hu))
    _bowel(ct, grid, anatomy.bowel_seed)
    liver = _empty(grid, 0, np.uint8)
    _paint(liver, grid, transform, anatomy.liver, 1)
    parenchyma = liver.astype(bool)
    mottle = _coarse_field(rng, ct.shape, spacing_zyx, _MOTTLE_MM)
    ct[parenchyma] = scan.liver_hu + scan.liver_mottle_hu * mottle[parenchyma]
    for name, shape, hu in anatomy.beside:
        painted = _paint(ct, grid, transform, shape, organ_hu.get(name, hu))
        if painted is not None:
            liver[painted[0]][painted[1]] = 0
    vessels = _empty(grid, 0, np.uint8)
    for tube, kind in zip(anatomy.vessels, anatomy.vessel_kinds, strict=True):
        hu = scan.portal_hu if kind == "portal" else scan.hepatic_hu
        painted = _paint(ct, grid, transform, tube, hu)
        if painted is not None:
            vessels[painted[0]][painted[1]] = 1
    for cyst, hu in look.cysts:  # in the liver mask, in no lesion mask
        _paint(ct, grid, transform, cyst, hu)
    return ct, liver, vessels


def _tumour_values(
    tumour: TumourSite,
    look: TumourLook,
    scan: ScanLook,
    points: Array,
    current: Array,
    spacing_zyx: Array,
    rng: np.random.Generator,
) -> tuple[Array, Array]:
    """HU of one tumour's box in a scan of ``scan``'s phase, and the tumour's inside."""
    distance, boundary = tumour.shape.radial(points)
    inside = distance <= boundary
    aggressive = 1.0 / (1.0 + np.exp(-1.5 * tumour.latent))
    texture = _unit_field(rng, inside.shape, _TEXTURE_MM / spacing_zyx)
    depth_mm = (boundary - distance) * tumour.shape.radii[0]
    # Heterogeneity and the enhancing rim grow with the latent aggressiveness, as in the plain
    # scans: what the radiomic features can learn from stays in the image.
    rim = look.rim_hu[scan.phase] + 20.0 * aggressive
    values = (
        scan.liver_hu
        + look.contrast_hu[scan.phase]
        + (4.0 + 12.0 * aggressive) * texture
        + rim * (depth_mm < look.rim_mm)
    )
    if look.necrosis:  # a fluid core with a ragged border
        core = distance / boundary < look.necrosis * (1.0 + 0.15 * texture)
        values = np.where(core, look.necrosis_hu + 3.0 * texture, values)
    if look.edge_mm:  # an infiltrative edge fades into what is around it
        weight = np.clip(depth_mm / look.edge_mm, 0.0, 1.0)
        values = current + weight * (values - current)
    return values, inside


def _varied_scanner(
    ct: Array,
    fine: Grid,
    k: int,
    profile: ScannerProfile,
    scan: ScanLook,
    look: PatientLook,
    rng: np.random.Generator,
) -> Array:
    """Kernel blur (and a sharp kernel's overshoot) on the sub-slices, their mean over each
    slice, the centre's HU offset, and noise of the kernel's grain at the scan's level."""
    _, sy, sz = fine.spacing_mm
    kernel = look.kernel
    in_plane = kernel.blur_mm / sy  # pixels are square
    blurred = ndimage.gaussian_filter(ct + profile.hu_offset, (0.3 / sz, in_plane, in_plane))
    if kernel.overshoot:
        base = ndimage.gaussian_filter(blurred, (0.0, 1.0 / sy, 1.0 / sy))
        blurred += kernel.overshoot * (blurred - base)
    if k > 1:
        nz, ny, nx = blurred.shape
        blurred = blurred.reshape(nz // k, k, ny, nx).mean(axis=1)
    grain = kernel.noise_grain_mm / sy
    noise = _unit_field(rng, blurred.shape, np.array([0.3, grain, grain])) * scan.noise_hu
    return np.clip(np.round(blurred + noise), -1024, 3071).astype(np.int16)


def _varied_pre(
    anatomy: Anatomy,
    tumours: list[TumourSite],
    grid: Grid,
    profile: ScannerProfile,
    rng: np.random.Generator,
    look: PatientLook,
) -> dict[str, Array]:
    k = _sub_slices(look.slice_mm)
    fine = _fine(grid, k)
    identity = RigidTransform()
    ct, liver, vessels = _varied_layers(anatomy, fine, identity, look.pre, look, rng)
    spacing_zyx = np.asarray(fine.spacing_mm[::-1])
    labels = _empty(fine, 0, np.uint8)
    for tumour, tumour_look in zip(tumours, look.tumours, strict=True):
        box = box_coordinates(fine, identity, tumour.shape.bounds())
        if box is None:
            continue
        slices, points = box
        view = ct[slices]
        values, inside = _tumour_values(
            tumour, tumour_look, look.pre, points, view, spacing_zyx, rng
        )
        view[inside] = values[inside]
        labels[slices][inside] = tumour.tumour_id
    return {
        "pre_ct": _varied_scanner(ct, fine, k, profile, look.pre, look, rng),
        "pre_tumours": _centres(labels, k),
        "liver": _centres(liver, k),
        "vessels": _centres(vessels, k),
    }


def _varied_post(
    anatomy: Anatomy,
    tumours: list[TumourSite],
    zones: list[AblationZone],
    grid: Grid,
    transform: RigidTransform,
    profile: ScannerProfile,
    rng: np.random.Generator,
    look: PatientLook,
) -> dict[str, Array]:
    k = _sub_slices(look.slice_mm)
    fine = _fine(grid, k)
    scan = look.post
    ct, liver, _ = _varied_layers(anatomy, fine, transform, scan, look, rng)
    spacing_zyx = np.asarray(fine.spacing_mm[::-1])
    labels = _empty(fine, 0, np.uint8)
    for tumour, zone in zip(tumours, zones, strict=True):
        box = box_coordinates(fine, transform, zone.bounds())
        if box is None:
            continue
        slices, points = box
        ablated = zone.inside(points)
        # The hyperaemic rim, about 2 mm measured in millimetres (voxels are anisotropic).
        interior = ndimage.distance_transform_edt(ablated, sampling=spacing_zyx) > RIM_MM
        view = ct[slices]
        view[ablated] = scan.zone_hu
        view[ablated & ~interior] = scan.liver_hu + scan.zone_rim_hu
        labels[slices][ablated] = tumour.tumour_id
    for tumour, zone, tumour_look in zip(tumours, zones, look.tumours, strict=True):
        box = box_coordinates(fine, transform, tumour.shape.bounds())
        if box is None:
            continue
        slices, points = box
        residual = tumour.shape.inside(points) & ~zone.inside(points)
        ct[slices][residual] = scan.liver_hu + tumour_look.contrast_hu[scan.phase]
    return {
        "post_ct": _varied_scanner(ct, fine, k, profile, scan, look, rng),
        "post_ablation": _centres(labels, k),
        "post_liver": _centres(liver, k),
    }
