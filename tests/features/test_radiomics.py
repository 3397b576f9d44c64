"""The MIRP wrapper: settings, names, cropping, values on shapes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from hepablate.features import radiomics
from hepablate.features.radiomics import (
    MIN_RADIOMICS_VOXELS,
    RESEGMENTATION_NOTED,
    RadiomicsConfig,
    RadiomicsError,
    column_name,
    compute_radiomics,
    crop_to_mask,
    measure_region,
    mirp_settings,
    resample_mask,
    resampled_grid,
)
from hepablate.imaging.io import Grid, Volume


def _sphere(
    spacing: tuple[float, float, float], radius_mm: float = 10.0
) -> tuple[Volume, np.ndarray]:
    size = tuple(int(np.ceil(60 / s)) for s in spacing)  # x, y, z
    origin = (-31.0, 12.5, -200.0)
    z, y, x = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(size[::-1], spacing[::-1], strict=True)), indexing="ij"
    )
    centre = [30.0, 30.0, 30.0]
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius_mm**2
    rng = np.random.default_rng(1)
    array = np.where(inside, 100.0, 40.0) + rng.normal(0, 5, inside.shape)
    grid = Grid(
        size=size, spacing_mm=spacing, origin_mm=origin, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    return Volume(array.astype(np.float32), grid), inside


@pytest.mark.slow
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.0)])
def test_sphere_volume_and_mean_intensity(spacing: tuple[float, float, float]) -> None:
    image, mask = _sphere(spacing)
    config = RadiomicsConfig(families=("morph", "stat"))

    features = compute_radiomics(image, mask, config, region="tumour")

    assert features["rad.tumour.morph.volume"] == pytest.approx(4 / 3 * np.pi * 1000, rel=0.04)
    assert features["rad.tumour.morph.sphericity"] > 0.85  # a voxelised sphere's mesh
    # Resampled to 1 mm with partial-volume masking: the mean stays that of the sphere's inside.
    assert features["rad.tumour.stat.mean"] == pytest.approx(100, abs=5)  # edge: partial volume
    assert all(name.startswith(("rad.tumour.morph.", "rad.tumour.stat.")) for name in features)


@pytest.mark.slow
def test_families_narrow_the_config_and_texture_names_drop_the_discretisation() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))

    features = compute_radiomics(
        image, mask, RadiomicsConfig(), region="ring", families=("cm", "ngl")
    )

    assert "rad.ring.cm.joint_max_d1_3d_v_mrg" in features
    assert "rad.ring.ngl.lde_d1_a00_3d" in features
    assert not any(".morph." in name for name in features)
    assert all(name.count(".") == 3 for name in features)  # rad.<region>.<family>.<feature>


def test_crop_keeps_the_physical_position() -> None:
    image, mask = _sphere((0.8, 0.8, 2.0))

    cropped, cropped_mask = crop_to_mask(image, mask, margin_mm=4.0)

    assert cropped_mask.array.sum() == mask.sum()
    first = np.argwhere(cropped_mask.array)[0]  # z, y, x in the crop
    point_crop = cropped.to_sitk().TransformIndexToPhysicalPoint([int(i) for i in first[::-1]])
    original = np.argwhere(mask)[0]
    point_full = image.to_sitk().TransformIndexToPhysicalPoint([int(i) for i in original[::-1]])
    assert np.allclose(point_crop, point_full)


def test_empty_region_and_bad_settings_are_refused() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))
    with pytest.raises(RadiomicsError, match="empty"):
        compute_radiomics(image, np.zeros_like(mask), RadiomicsConfig(), region="tumour")
    with pytest.raises(ValidationError, match="not below"):
        RadiomicsConfig(resegmentation_hu=(300, -100))
    with pytest.raises(ValidationError, match="by_slice"):
        RadiomicsConfig(by_slice=True, texture_methods=("3d_average",))


def test_settings_reach_mirp_in_its_axis_order() -> None:
    settings = mirp_settings(
        RadiomicsConfig(spacing_mm=(0.5, 0.7, 2.0), discretisation="fixed_bin_number")
    )

    assert settings["new_spacing"] == [2.0, 0.7, 0.5]  # MIRP: z, y, x
    assert settings["base_discretisation_n_bins"] == 32
    assert "base_discretisation_bin_width" not in settings
    assert settings["glszm_spatial_method"] == ["3d"]
    assert column_name("tumour", "image_voxel_size_x") is None
    assert column_name("zone", "ih_mean_fbn_n32") == "rad.zone.ih.mean"


@pytest.mark.slow
def test_monte_carlo_morphology_is_the_same_in_every_run() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))  # > 1000 voxels: MIRP estimates Moran's I
    config = RadiomicsConfig(families=("morph",))

    first = compute_radiomics(image, mask, config, region="tumour")
    second = compute_radiomics(image, mask, config, region="tumour")

    assert mask.sum() > 1000
    assert first["rad.tumour.morph.moran_i"] == second["rad.tumour.morph.moran_i"]
    assert first["rad.tumour.morph.geary_c"] == second["rad.tumour.morph.geary_c"]


@pytest.mark.slow
def test_values_do_not_depend_on_the_crop_when_resampling() -> None:
    image, mask = _sphere((0.8, 0.8, 2.0))
    near = RadiomicsConfig(families=("stat", "cm"), crop_margin_mm=4.0)
    whole = near.model_copy(update={"crop_margin_mm": 1000.0})

    cropped = compute_radiomics(image, mask, near, region="tumour")
    uncropped = compute_radiomics(image, mask, whole, region="tumour")

    assert cropped == pytest.approx(uncropped, rel=1e-9)


def test_resampled_grid_is_centred_on_the_scan() -> None:
    image, _ = _sphere((0.8, 0.8, 2.0))
    target = resampled_grid(image.grid, RadiomicsConfig(spacing_mm=1.0))

    assert target is not None
    old_centre = np.array(image.grid.origin_mm) + (np.array(image.grid.size) - 1) / 2 * np.array(
        image.grid.spacing_mm
    )
    new_centre = np.array(target.grid.origin_mm) + (np.array(target.grid.size) - 1) / 2
    assert np.allclose(old_centre, new_centre)
    assert target.grid.size == (60, 60, 60)  # ceil(75 x 0.8 / 1), ceil(30 x 2 / 1)


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 2.0), (1.5, 1.5, 2.5), (0.977, 0.977, 3.0)])
def test_mask_resampled_over_its_box_equals_the_whole_grid(
    spacing: tuple[float, float, float],
) -> None:
    rng = np.random.default_rng(0)
    grid = Grid(
        size=(80, 70, 40),
        spacing_mm=spacing,
        origin_mm=(0, 0, 0),
        direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
    )
    mask = np.zeros((40, 70, 80), dtype=bool)
    mask[10:25, 20:40, 30:60] = rng.random((15, 20, 30)) > 0.6
    config = RadiomicsConfig()
    target = resampled_grid(grid, config)
    assert target is not None

    whole = ndimage.affine_transform(
        mask.astype(float),
        np.array(target.scale),
        offset=np.array(target.offset),
        output_shape=target.shape,
        order=1,
        mode="constant",
    )

    assert np.array_equal(resample_mask(mask, grid, config), np.around(whole, 6) >= 0.5)


FAST = RadiomicsConfig(families=("stat", "cm"), spacing_mm=None)


def test_a_region_too_small_is_left_out_with_the_minimum_stated() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))
    one = np.zeros_like(mask)
    one[30, 30, 30] = True

    measured = measure_region(image, one, FAST, region="tumour")

    assert measured.columns == {} and not measured.complete
    [(columns, reason)] = measured.problems
    assert columns == ["rad.tumour.*"]
    assert "1 voxel(s)" in reason and f"at least {MIN_RADIOMICS_VOXELS}" in reason
    assert MIN_RADIOMICS_VOXELS == 27


def test_a_region_outside_the_resegmentation_range_is_left_out_with_its_values() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))
    air = Volume(np.full_like(image.array, -1024.0), image.grid)

    measured = measure_region(air, mask, FAST, region="tumour")

    [(columns, reason)] = measured.problems
    assert columns == ["rad.tumour.*"] and measured.columns == {}
    assert "0 of the tumour region's" in reason and "[-150, 350] HU" in reason
    assert "from -1024 to -1024" in reason


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.029, 0.005])
def test_voxels_outside_the_resegmentation_range_are_counted_and_noted(share: float) -> None:
    """A tumour with bright voxels (calcification, a clip): above 1% of its voxels out of
    [-150, 350] HU, the measurement says how many its intensity features left out."""
    image, mask = _sphere((1.0, 1.0, 1.0))
    voxels = np.argwhere(mask)
    dropped = round(share * len(voxels))
    array = image.array.copy()
    array[tuple(voxels[:: len(voxels) // dropped][:dropped].T)] = 900.0
    bright = Volume(array, image.grid)

    measured = measure_region(bright, mask, FAST, region="tumour")

    assert measured.complete and measured.resegmented_out == pytest.approx(dropped / len(voxels))
    # The mean of what is left: the bright voxels are not in it.
    assert measured.columns["rad.tumour.stat.mean"] == pytest.approx(100.0, abs=1.0)
    assert measured.columns["rad.tumour.stat.max"] < 350.0
    if share < RESEGMENTATION_NOTED:
        assert measured.notes == []
        return
    [(columns, reason)] = measured.notes
    assert columns == ["rad.tumour.*"]
    assert reason.startswith(
        f"{100 * dropped / len(voxels):.1f}% of the tumour region's {len(voxels)} voxels "
        f"({dropped}) lie outside the re-segmentation range [-150, 350] HU"
    )
    assert "to 900)" in reason


def test_a_family_mirp_refuses_is_left_out_and_the_others_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))
    real = radiomics.run_mirp

    def refusing_cm(image_path, mask_path, settings):  # type: ignore[no-untyped-def]
        if "cm" in settings["base_feature_families"]:
            raise RadiomicsError("MIRP: no co-occurrence for this region")
        return real(image_path, mask_path, settings)

    monkeypatch.setattr(radiomics, "run_mirp", refusing_cm)

    measured = measure_region(image, mask, FAST, region="tumour")

    assert measured.columns["rad.tumour.stat.mean"] == pytest.approx(100.0, abs=1.0)
    assert not any(c.startswith("rad.tumour.cm.") for c in measured.columns)
    assert measured.problems == [(["rad.tumour.cm.*"], "MIRP: no co-occurrence for this region")]


def test_features_mirp_leaves_undefined_are_named() -> None:
    image, mask = _sphere((1.0, 1.0, 1.0))
    uniform = Volume(np.full_like(image.array, 50.0), image.grid)  # one grey level

    measured = measure_region(uniform, mask, FAST, region="tumour")

    assert measured.complete  # nothing left out ...
    assert measured.undefined  # ... but some texture features have no value for one grey level
    assert all(np.isnan(measured.columns[c]) for c in measured.undefined)
    assert all(c.startswith("rad.tumour.") for c in measured.undefined)
