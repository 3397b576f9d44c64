"""Ablation geometry on analytic shapes: spheres and ellipsoids of known size and offset."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.margin_accuracy import MARGINS_MM, PLACEMENTS, SHAPES, analytic_case

from hepablate.features.geometry import (
    ZONE_COLUMNS,
    large_vessels,
    minimal_ablative_margin_mm,
    tumour_geometry,
)

ANISOTROPIC = (2.5, 0.7, 0.7)  # (z, y, x) mm, as in a thin-slice abdominal CT
ISOTROPIC = (1.0, 1.0, 1.0)


def _coordinates(shape: tuple[int, ...], spacing: tuple[float, float, float]) -> list[np.ndarray]:
    return np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )


def _ellipsoid(
    shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    centre_zyx: tuple[float, float, float],
    radii_zyx: tuple[float, float, float],
) -> np.ndarray:
    z, y, x = _coordinates(shape, spacing)
    cz, cy, cx = centre_zyx
    rz, ry, rx = radii_zyx
    return ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _grid(spacing: tuple[float, float, float], extent_mm: float = 80.0) -> tuple[int, ...]:
    return tuple(int(extent_mm / s) for s in spacing)


@pytest.mark.slow
@pytest.mark.parametrize("spacing", [ISOTROPIC, ANISOTROPIC])
@pytest.mark.parametrize(("offset_mm", "expected_mm"), [(0.0, 5.0), (3.0, 2.0), (7.0, -2.0)])
def test_sphere_in_a_sphere(
    spacing: tuple[float, float, float], offset_mm: float, expected_mm: float
) -> None:
    """Tumour radius 10 mm, zone radius 15 mm, zone centre moved in-plane by the offset."""
    shape = _grid(spacing)
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (10.0, 10.0, 10.0))
    zone = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0 + offset_mm), (15.0, 15.0, 15.0))

    margin = minimal_ablative_margin_mm(tumour, zone, spacing)

    assert margin == pytest.approx(expected_mm, abs=0.5)


@pytest.mark.parametrize("spacing", [ISOTROPIC, ANISOTROPIC])
def test_ellipsoidal_zone_margin_is_set_by_its_short_axis(
    spacing: tuple[float, float, float],
) -> None:
    """Zone semi-axes 14 (z), 18 (y), 13 (x) mm around a 9 mm tumour: margin 4 mm, along x."""
    shape = _grid(spacing)
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (9.0, 9.0, 9.0))
    zone = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (14.0, 18.0, 13.0))

    geometry = tumour_geometry(tumour, zone, spacing)

    assert geometry.minimal_ablative_margin_mm == pytest.approx(4.0, abs=0.5)
    assert geometry.tumour_coverage_pct == 100.0
    assert geometry.residual_tumour_ml == 0.0
    assert geometry.tumour_volume_ml == pytest.approx(4 / 3 * np.pi * 9**3 / 1000, rel=0.05)
    assert geometry.ablation_volume_ml == pytest.approx(
        4 / 3 * np.pi * 14 * 18 * 13 / 1000, rel=0.03
    )
    assert geometry.tumour_max_diameter_mm == pytest.approx(18.0, abs=max(spacing))


def test_tumour_partly_outside_its_zone() -> None:
    """Zone of radius 12 mm whose centre is 8 mm off a 10 mm tumour: 6 mm of tumour uncovered."""
    spacing = ANISOTROPIC
    shape = _grid(spacing)
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (10.0, 10.0, 10.0))
    zone = _ellipsoid(shape, spacing, (40.0, 40.0, 48.0), (12.0, 12.0, 12.0))

    geometry = tumour_geometry(tumour, zone, spacing)

    assert geometry.minimal_ablative_margin_mm == pytest.approx(-6.0, abs=0.5)
    assert 50.0 < geometry.tumour_coverage_pct < 95.0
    assert geometry.residual_tumour_ml == pytest.approx(
        geometry.tumour_volume_ml * (1 - geometry.tumour_coverage_pct / 100), rel=1e-9
    )


def test_capsule_facing_surface_is_left_out_of_the_margin() -> None:
    """A tumour touching the liver surface: the zone ends 1 mm beyond it on the capsule side,
    6 mm beyond it toward the parenchyma. With the liver given, the margin is 6 mm."""
    spacing = ANISOTROPIC
    shape = _grid(spacing)
    *_, x = _coordinates(shape, spacing)
    liver = x <= 50.0  # the capsule is the plane x = 50 mm
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (10.0, 10.0, 10.0)) & liver
    zone = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (16.0, 16.0, 16.0)) & (x <= 51.0)

    without_liver = minimal_ablative_margin_mm(tumour, zone, spacing)
    with_liver = tumour_geometry(tumour, zone, spacing, liver=liver)

    assert without_liver == pytest.approx(1.0, abs=0.5)
    assert with_liver.minimal_ablative_margin_mm == pytest.approx(6.0, abs=0.5)
    assert with_liver.subcapsular is True
    assert with_liver.distance_to_capsule_mm is not None
    assert with_liver.distance_to_capsule_mm < 1.0


def test_deep_tumour_is_not_subcapsular_and_sees_its_nearest_large_vessel() -> None:
    spacing = ISOTROPIC
    shape = _grid(spacing)
    _, y, x = _coordinates(shape, spacing)
    liver = np.ones(shape, dtype=bool)
    liver[:, :, :2] = False
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (8.0, 8.0, 8.0))
    zone = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (14.0, 14.0, 14.0))
    big = (y - 40.0) ** 2 + (x - 55.0) ** 2 <= 3.0**2  # radius 3 mm, 4 mm from the tumour
    small = (y - 40.0) ** 2 + (x - 27.0) ** 2 <= 1.0**2  # radius 1 mm, 4 mm away, too thin
    vessels = big | small

    geometry = tumour_geometry(
        tumour, zone, spacing, liver=liver, large_vessel_mask=large_vessels(vessels, spacing)
    )

    assert geometry.subcapsular is False
    assert geometry.distance_to_vessel_mm == pytest.approx(4.0, abs=1.0)


def test_large_vessels_keeps_thick_and_drops_thin_vessels() -> None:
    spacing = (1.0, 0.5, 0.5)
    shape = (20, 80, 80)
    _, y, x = _coordinates(shape, spacing)
    thick = (y - 10.0) ** 2 + (x - 10.0) ** 2 <= 2.5**2  # calibre 5 mm
    thin = (y - 30.0) ** 2 + (x - 30.0) ** 2 <= 1.0**2  # calibre 2 mm

    large = large_vessels(thick | thin, spacing)

    assert large[thick].mean() > 0.95
    assert not large[thin].any()


def test_tumour_without_zone_has_the_most_negative_margin() -> None:
    tumour = _ellipsoid((30, 30, 30), ISOTROPIC, (15.0, 15.0, 15.0), (5.0, 5.0, 5.0))

    assert minimal_ablative_margin_mm(tumour, np.zeros_like(tumour), ISOTROPIC) == -15.0


def test_empty_tumour_is_refused() -> None:
    with pytest.raises(ValueError, match="tumour mask is empty"):
        minimal_ablative_margin_mm(np.zeros((5, 5, 5), bool), np.ones((5, 5, 5), bool), ISOTROPIC)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_margin_within_half_a_millimetre_on_2_5_mm_slices(shape: str, placement: str) -> None:
    """0.7 x 0.7 x 2.5 mm, margins -2 to +6 mm, random sub-voxel positions, sizes and (for
    ellipsoids) orientations: the analytic margin within 0.5 mm every time
    (benchmarks/margin_accuracy.py gives the same cases at other slice thicknesses)."""
    rng = np.random.default_rng(SHAPES.index(shape) * 2 + PLACEMENTS.index(placement))
    errors = []
    for margin in MARGINS_MM:
        case = analytic_case(shape, placement, margin, 2.5, rng)
        errors.append(
            minimal_ablative_margin_mm(case.tumour, case.zone, case.spacing) - case.truth_mm
        )

    assert np.abs(errors).max() <= 0.5, np.round(errors, 2)


def test_geometry_without_a_zone_has_size_and_distances_only() -> None:
    """A pre-CT-only tumour: volume, diameter, capsule, vessel and other-tumour distances."""
    spacing = ANISOTROPIC
    shape = _grid(spacing)
    _, y, x = _coordinates(shape, spacing)
    liver = x <= 60.0  # capsule 10 mm beyond the tumour (radius 10, centre x = 40)
    tumour = _ellipsoid(shape, spacing, (40.0, 40.0, 40.0), (10.0, 10.0, 10.0))
    other = _ellipsoid(shape, spacing, (40.0, 40.0, 16.0), (6.0, 6.0, 6.0))  # 8 mm away
    vessel = (y - 40.0) ** 2 + (x - 26.0) ** 2 <= 2.0**2  # calibre 4 mm, 2 mm from the tumour

    geometry = tumour_geometry(
        tumour,
        None,
        spacing,
        liver=liver,
        large_vessel_mask=large_vessels(vessel, spacing),
        other_tumours=other | tumour,  # the tumour itself is not its own neighbour
    )

    columns = geometry.as_columns()
    assert all(columns[c] is None for c in ZONE_COLUMNS)
    assert geometry.tumour_volume_ml == pytest.approx(4 / 3 * np.pi * 10**3 / 1000, rel=0.05)
    assert geometry.tumour_max_diameter_mm == pytest.approx(20.0, abs=1.0)
    assert geometry.distance_to_capsule_mm == pytest.approx(10.0, abs=1.0)
    assert geometry.subcapsular is False
    assert geometry.distance_to_other_tumour_mm == pytest.approx(8.0, abs=1.0)
    assert geometry.distance_to_vessel_mm == pytest.approx(2.0, abs=1.0)


def test_single_tumour_has_no_other_tumour_distance() -> None:
    tumour = _ellipsoid((30, 30, 30), ISOTROPIC, (15.0, 15.0, 15.0), (5.0, 5.0, 5.0))

    geometry = tumour_geometry(tumour, None, ISOTROPIC, other_tumours=tumour)

    assert geometry.distance_to_other_tumour_mm is None
    assert geometry.distance_to_vessel_mm is None
