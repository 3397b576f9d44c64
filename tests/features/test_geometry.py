"""Minimal ablative margin on analytic shapes (the full geometry suite comes with issue 4)."""

from __future__ import annotations

import numpy as np
import pytest

from hepablate.features.geometry import minimal_ablative_margin_mm


def _sphere(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre_mm: tuple[float, float, float],
    radius_mm: float,
) -> np.ndarray:
    z, y, x = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    cz, cy, cx = centre_mm
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.7)])
@pytest.mark.parametrize(("offset_mm", "expected_mm"), [(0.0, 5.0), (3.0, 2.0), (7.0, -2.0)])
def test_concentric_and_offset_spheres(
    spacing: tuple[float, float, float], offset_mm: float, expected_mm: float
) -> None:
    """Tumour radius 10 mm, zone radius 15 mm, zone centre moved in-plane by the offset."""
    shape = tuple(int(80 / s) for s in spacing)
    centre = (40.0, 40.0, 40.0)
    tumour = _sphere(shape, spacing, centre, 10.0)
    zone = _sphere(shape, spacing, (40.0, 40.0, 40.0 + offset_mm), 15.0)

    margin = minimal_ablative_margin_mm(tumour, zone, spacing)

    assert margin == pytest.approx(expected_mm, abs=max(spacing[1:]))


def test_tumour_without_zone_has_the_most_negative_margin() -> None:
    tumour = _sphere((30, 30, 30), (1.0, 1.0, 1.0), (15.0, 15.0, 15.0), 5.0)

    assert minimal_ablative_margin_mm(tumour, np.zeros_like(tumour), (1.0, 1.0, 1.0)) == -15.0


def test_empty_tumour_is_refused() -> None:
    with pytest.raises(ValueError, match="tumour mask is empty"):
        minimal_ablative_margin_mm(np.zeros((5, 5, 5), bool), np.ones((5, 5, 5), bool), (1, 1, 1))
