"""Preprocessing steps on small explicit volumes: geometry and values after each step."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepablate.imaging.preprocess import Crop, Preprocessing, Sample


def _sample() -> Sample:
    """A 60 x 50 x 20 CT (0.8 x 0.8 x 2.5 mm) with a sphere of radius 8 mm labelled 1."""
    z, y, x = np.meshgrid(
        np.arange(20) * 2.5, np.arange(50) * 0.8, np.arange(60) * 0.8, indexing="ij"
    )
    sphere = (x - 24) ** 2 + (y - 20) ** 2 + (z - 25) ** 2 <= 8.0**2
    rng = np.random.default_rng(0)
    ct = np.where(sphere, 60.0, 110.0) + rng.normal(0, 15, sphere.shape)
    ct[:, :, :5] = -1000.0  # air at one side
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((-10.0, 5.0, 3.0))
    mask = sitk.GetImageFromArray(sphere.astype(np.uint8))
    mask.CopyInformation(image)
    return Sample(image, {"tumour": mask})


def _volume_ml(mask: sitk.Image) -> float:
    return float(sitk.GetArrayFromImage(mask).astype(bool).sum()) * np.prod(mask.GetSpacing()) / 1e3


def test_chain_from_json_config_resamples_windows_and_crops() -> None:
    chain = Preprocessing.model_validate(
        {
            "steps": [
                {"kind": "orient", "orientation": "RAS"},
                {
                    "kind": "resample",
                    "spacing_mm": [1.0, 1.0, 1.0],
                    "mask_interpolation": "distance_map",
                },
                {"kind": "window", "low_hu": -200, "high_hu": 300},
                {"kind": "crop", "mask": "tumour", "margin_mm": 5.0},
            ]
        }
    )

    out = chain(_sample())

    assert out.image.GetSpacing() == (1.0, 1.0, 1.0)
    assert out.image.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    values = sitk.GetArrayFromImage(out.image)
    assert values.min() >= -200 and values.max() <= 300
    # Cropped to the sphere (16 mm across) plus 5 mm each side: 26 voxels of 1 mm.
    assert all(24 <= n <= 28 for n in out.image.GetSize())
    assert out.masks["tumour"].GetSize() == out.image.GetSize()
    assert _volume_ml(out.masks["tumour"]) == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.06)


@pytest.mark.parametrize("mode", ["nearest", "distance_map"])
def test_mask_resampling_keeps_the_volume(mode: str) -> None:
    chain = Preprocessing.model_validate(
        {"steps": [{"kind": "resample", "spacing_mm": [0.5, 0.5, 0.5], "mask_interpolation": mode}]}
    )

    out = chain(_sample())

    assert _volume_ml(out.masks["tumour"]) == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.08)


@pytest.mark.slow
def test_denoise_lowers_noise_and_enhance_keeps_the_grid() -> None:
    sample = _sample()
    chain = Preprocessing.model_validate(
        {"steps": [{"kind": "denoise", "iterations": 5}, {"kind": "enhance"}]}
    )
    denoised = Preprocessing.model_validate({"steps": [{"kind": "denoise"}]})(sample)

    before = sitk.GetArrayFromImage(sample.image)[5:15, 35:45, 40:55].std()
    after = sitk.GetArrayFromImage(denoised.image)[5:15, 35:45, 40:55].std()
    out = chain(sample)

    assert after < 0.6 * before
    assert out.image.GetSize() == sample.image.GetSize()


def test_bad_configs_and_missing_masks_are_refused() -> None:
    with pytest.raises(ValueError, match="orientation"):
        Preprocessing.model_validate({"steps": [{"kind": "orient", "orientation": "XYZ"}]})
    with pytest.raises(ValueError, match="kind"):
        Preprocessing.model_validate({"steps": [{"kind": "sharpen"}]})
    with pytest.raises(KeyError, match="crop needs mask 'liver'"):
        Crop(mask="liver")(_sample())
