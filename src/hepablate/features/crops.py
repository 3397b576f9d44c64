"""Fixed physical-size crops around a tumour and its ablation zone, for the deep models.

Each crop is a cube of ``size_mm`` sampled at ``spacing_mm`` on axis-aligned (LPS) axes centred
on the region's centre of mass, so every tumour's crop covers the same physical extent whatever
the scan's voxels. The post-ablation CT is sampled straight from its own grid through the
registration transform (one interpolation, not two). Channels: the CT in HU (linear
interpolation, -1024 outside the scan) and the masks (nearest neighbour) as 0/1.

The default 64 mm at 2 mm (32³ voxels) is what a 3D CNN trains on two CPU cores; 64 mm at 1 mm
is one setting away.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field

from hepablate.imaging.io import Volume

__all__ = ["CHANNELS", "CropConfig", "centre_of_mass_mm", "crop"]

# What each saved crop holds, channel by channel.
CHANNELS: dict[str, tuple[str, ...]] = {
    "pre": ("pre_ct_hu", "tumour", "ablation_zone"),
    "post": ("post_ct_hu", "ablation_zone", "tumour"),
}


class CropConfig(BaseModel):
    """The physical size and sampling of the deep-model crops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    size_mm: float = Field(default=64.0, gt=0)
    spacing_mm: float = Field(default=2.0, gt=0)

    @property
    def voxels(self) -> int:
        return round(self.size_mm / self.spacing_mm)


def centre_of_mass_mm(volume: Volume, mask: np.ndarray) -> tuple[float, float, float]:
    """The physical (x, y, z) centre of a boolean mask on ``volume``'s grid."""
    z, y, x = (float(c.mean()) for c in np.nonzero(mask))
    point = volume.to_sitk().TransformContinuousIndexToPhysicalPoint((x, y, z))
    return (float(point[0]), float(point[1]), float(point[2]))


def _reference(centre_mm: tuple[float, float, float], config: CropConfig) -> sitk.Image:
    n = config.voxels
    reference = sitk.Image(n, n, n, sitk.sitkUInt8)
    reference.SetSpacing((config.spacing_mm,) * 3)
    half = (n - 1) / 2 * config.spacing_mm
    reference.SetOrigin(tuple(c - half for c in centre_mm))
    return reference


def crop(
    volume: Volume,
    centre_mm: tuple[float, float, float],
    config: CropConfig,
    *,
    labels: bool,
    transform: sitk.Transform | None = None,
) -> np.ndarray:
    """The ``config`` cube of ``volume`` around ``centre_mm`` (z, y, x array).

    ``transform`` maps the crop's (pre-ablation) frame into ``volume``'s frame, as the
    registration returns it. Images come back float32 HU, label maps uint8 as they are.
    """
    image = volume.to_sitk()
    if labels:
        resampled = sitk.Resample(
            image,
            _reference(centre_mm, config),
            transform or sitk.Transform(),
            sitk.sitkNearestNeighbor,
            0,
            sitk.sitkUInt8,
        )
        return sitk.GetArrayFromImage(resampled)
    resampled = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32),
        _reference(centre_mm, config),
        transform or sitk.Transform(),
        sitk.sitkLinear,
        -1024.0,
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(resampled)
