"""Preprocessing transforms for a scan and its masks, each a typed, recorded config.

Every step wraps a SimpleITK filter rather than re-writing it; a :class:`Preprocessing` is a list
of steps, validated by pydantic from YAML or JSON (``{"kind": "resample", "spacing_mm": [1, 1,
1]}``), so the exact chain is stored with every run and applied again to a new patient. Steps
act on a :class:`Sample` (one scan and its masks on the scan's grid) and keep the masks aligned:

- ``orient``: reorient to a standard direction (``LPS`` by default) — ``sitk.DICOMOrient``.
- ``resample``: to a target spacing; the scan by linear or B-spline interpolation, masks by
  nearest neighbour or through their signed distance maps (smoother surfaces for thick slices).
- ``window``: clip to an HU window (CT soft tissue: -200..300 HU).
- ``denoise``: curvature anisotropic diffusion (edge-preserving).
- ``enhance``: adaptive histogram equalisation (CLAHE-like) of the windowed intensities.
- ``crop``: a box around a mask's foreground with a margin in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field

from hepablate.imaging.io import Volume

__all__ = [
    "Crop",
    "Denoise",
    "Enhance",
    "Orient",
    "Preprocessing",
    "Resample",
    "Sample",
    "Window",
]


@dataclass
class Sample:
    """A scan and its masks, all on the scan's grid."""

    image: sitk.Image
    masks: dict[str, sitk.Image] = field(default_factory=dict)

    @classmethod
    def from_volumes(cls, image: Volume, masks: dict[str, Volume] | None = None) -> Sample:
        return cls(image.to_sitk(), {k: v.to_sitk() for k, v in (masks or {}).items()})

    def volumes(self) -> tuple[Volume, dict[str, Volume]]:
        return Volume.from_sitk(self.image), {k: Volume.from_sitk(v) for k, v in self.masks.items()}


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Orient(_Step):
    kind: Literal["orient"] = "orient"
    orientation: str = Field(default="LPS", pattern=r"^[LRAPSI]{3}$")

    def __call__(self, sample: Sample) -> Sample:
        def orient(image: sitk.Image) -> sitk.Image:
            return sitk.DICOMOrient(image, self.orientation)

        return Sample(orient(sample.image), {k: orient(v) for k, v in sample.masks.items()})


class Resample(_Step):
    kind: Literal["resample"] = "resample"
    spacing_mm: tuple[float, float, float]
    image_interpolation: Literal["linear", "bspline"] = "linear"
    mask_interpolation: Literal["nearest", "distance_map"] = "nearest"

    def _reference(self, image: sitk.Image) -> sitk.Image:
        size = [
            max(1, round(n * s / t))
            for n, s, t in zip(image.GetSize(), image.GetSpacing(), self.spacing_mm, strict=True)
        ]
        reference = sitk.Image(size, image.GetPixelID())
        reference.SetOrigin(image.GetOrigin())
        reference.SetDirection(image.GetDirection())
        reference.SetSpacing(self.spacing_mm)
        return reference

    def _mask(self, mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
        if self.mask_interpolation == "nearest":
            return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        # Each label through its own signed distance map, interpolated linearly, then cut at 0.
        result = sitk.Image(reference.GetSize(), mask.GetPixelID())
        result.CopyInformation(reference)
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.Execute(sitk.Cast(mask, sitk.sitkUInt32))
        for label in statistics.GetLabels():
            moved = sitk.Resample(
                _midway_distance(mask == label),
                reference,
                sitk.Transform(),
                sitk.sitkLinear,
                -1e6,
            )
            inside = sitk.Cast(moved > 0, mask.GetPixelID())
            result = result + inside * label * sitk.Cast(result == 0, mask.GetPixelID())
        return result

    def __call__(self, sample: Sample) -> Sample:
        reference = self._reference(sample.image)
        interpolator = (
            sitk.sitkBSpline if self.image_interpolation == "bspline" else sitk.sitkLinear
        )
        image = sitk.Resample(sample.image, reference, sitk.Transform(), interpolator, -1024.0)
        return Sample(image, {k: self._mask(v, reference) for k, v in sample.masks.items()})


def _midway_distance(binary: sitk.Image) -> sitk.Image:
    """Signed distance (mm, inside positive) whose zero lies half-way between the object's
    edge voxels and their outside neighbours, along every axis (ITK's own map puts its zero on
    the edge voxels, which shrinks a thick-slice mask when it is resampled)."""

    def distance(image: sitk.Image) -> sitk.Image:
        return sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=True, squaredDistance=False, useImageSpacing=True
        )

    return (distance(binary) - distance(1 - binary)) / 2.0


class Window(_Step):
    kind: Literal["window"] = "window"
    low_hu: float = -200.0
    high_hu: float = 300.0

    def __call__(self, sample: Sample) -> Sample:
        image = sitk.Clamp(
            sitk.Cast(sample.image, sitk.sitkFloat32), sitk.sitkFloat32, self.low_hu, self.high_hu
        )
        return Sample(image, sample.masks)


class Denoise(_Step):
    kind: Literal["denoise"] = "denoise"
    iterations: int = Field(default=5, ge=1)
    conductance: float = Field(default=2.0, gt=0)
    time_step: float = Field(default=0.0625, gt=0)

    def __call__(self, sample: Sample) -> Sample:
        image = sitk.CurvatureAnisotropicDiffusion(
            sitk.Cast(sample.image, sitk.sitkFloat32),
            timeStep=self.time_step,
            conductanceParameter=self.conductance,
            numberOfIterations=self.iterations,
        )
        return Sample(image, sample.masks)


class Enhance(_Step):
    kind: Literal["enhance"] = "enhance"
    alpha: float = Field(default=0.3, ge=0, le=1)  # 0: classical equalisation, 1: unsharp mask
    beta: float = Field(default=0.3, ge=0, le=1)
    radius_voxels: int = Field(default=8, ge=1)

    def __call__(self, sample: Sample) -> Sample:
        image = sitk.AdaptiveHistogramEqualization(
            sitk.Cast(sample.image, sitk.sitkFloat32),
            radius=[self.radius_voxels] * sample.image.GetDimension(),
            alpha=self.alpha,
            beta=self.beta,
        )
        return Sample(image, sample.masks)


class Crop(_Step):
    kind: Literal["crop"] = "crop"
    mask: str
    margin_mm: float = Field(default=20.0, ge=0)
    label: int | None = None  # one label of the mask; every foreground label by default

    def __call__(self, sample: Sample) -> Sample:
        if self.mask not in sample.masks:
            raise KeyError(f"crop needs mask {self.mask!r}; the sample has {sorted(sample.masks)}")
        mask = sample.masks[self.mask]
        foreground = mask == self.label if self.label is not None else mask > 0
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.Execute(foreground)
        if not statistics.HasLabel(1):
            raise ValueError(f"crop: mask {self.mask!r} has no foreground to crop around")
        x, y, z, nx, ny, nz = statistics.GetBoundingBox(1)
        pad = [round(self.margin_mm / s) for s in sample.image.GetSpacing()]
        size = sample.image.GetSize()
        low = [max(0, v - p) for v, p in zip((x, y, z), pad, strict=True)]
        high = [
            min(n, v + w + p) for v, w, p, n in zip((x, y, z), (nx, ny, nz), pad, size, strict=True)
        ]
        extent = [h - lo for lo, h in zip(low, high, strict=True)]

        def crop(image: sitk.Image) -> sitk.Image:
            return sitk.RegionOfInterest(image, extent, low)

        return Sample(crop(sample.image), {k: crop(v) for k, v in sample.masks.items()})


Step = Annotated[Orient | Resample | Window | Denoise | Enhance | Crop, Field(discriminator="kind")]


class Preprocessing(BaseModel):
    """An ordered chain of steps, recorded with the run that used it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[Step] = []

    def __call__(self, sample: Sample) -> Sample:
        for step in self.steps:
            sample = step(sample)
        return sample
