"""IBSI radiomics of a region, computed by MIRP.

MIRP (Zwanenburg et al., the IBSI's reference implementation) computes the features; this module
decides *what* it computes from one typed :class:`RadiomicsConfig`, hands it a volume cropped to
the region, and names the results ``rad.<region>.<family>.<feature>``. Nothing here re-implements
a feature. Why MIRP and not pyradiomics: ``docs/architecture.md``; how close to the IBSI
reference values it comes: ``docs/ibsi-conformance.md``.

MIRP reads files, so each call writes the cropped image and mask as uncompressed NIfTI to a
temporary folder named by their content (a few milliseconds; the overhead is measured in
``benchmarks/extract.py``).

Why one module of some 560 lines: it is one job, the bridge to MIRP. The config, the MIRP
settings made from it (``mirp_settings``), the grid MIRP resamples to (``resampled_grid``, which
our resampled masks must match voxel for voxel) and the call that hands them over must agree on
every setting (spacing, interpolation, discretisation, re-segmentation); split, a change to one
setting would have to be followed across files.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

from hepablate.cohort.image_checks import MIN_RADIOMICS_VOXELS
from hepablate.imaging.io import Grid, Volume

__all__ = [
    "FAMILIES",
    "MIN_RADIOMICS_VOXELS",
    "RESEGMENTATION_NOTED",
    "RadiomicsConfig",
    "RadiomicsError",
    "RegionMeasurement",
    "ResampledGrid",
    "compute_radiomics",
    "crop_to_mask",
    "measure_region",
    "mirp_settings",
    "resample_image",
    "resample_mask",
    "resampled_grid",
]

# The share of a region's voxels outside the re-segmentation range from which the extraction
# says so (a warning): its intensity and texture features then describe the rest only.
RESEGMENTATION_NOTED = 0.01

# IBSI feature families, by MIRP's feature-name prefix (the IBSI tag prefix).
FAMILIES: dict[str, str] = {
    "morph": "morphology",
    "loc": "local intensity",
    "stat": "intensity statistics",
    "ih": "intensity histogram",
    "ivh": "intensity-volume histogram",
    "cm": "grey level co-occurrence matrix",
    "rlm": "grey level run length matrix",
    "szm": "grey level size zone matrix",
    "dzm": "grey level distance zone matrix",
    "ngt": "neighbourhood grey tone difference matrix",
    "ngl": "neighbouring grey level dependence matrix",
}
_MIRP_FAMILY = {
    "morph": "morph",
    "loc": "li",
    "stat": "stat",
    "ih": "ih",
    "ivh": "ivh",
    "cm": "cm",
    "rlm": "rlm",
    "szm": "szm",
    "dzm": "dzm",
    "ngt": "ngtdm",
    "ngl": "ngldm",
}
Family = Literal["morph", "loc", "stat", "ih", "ivh", "cm", "rlm", "szm", "dzm", "ngt", "ngl"]
SpatialMethod = Literal[
    "2d_average",
    "2d_slice_merge",
    "2.5d_direction_merge",
    "2.5d_volume_merge",
    "3d_average",
    "3d_volume_merge",
]
_ALL_FAMILIES: tuple[Family, ...] = (
    "morph",
    "loc",
    "stat",
    "ih",
    "ivh",
    "cm",
    "rlm",
    "szm",
    "dzm",
    "ngt",
    "ngl",
)


class RadiomicsError(Exception):
    """A region whose features cannot be computed (empty, or MIRP refused it)."""


class RadiomicsConfig(BaseModel):
    """Every setting that changes a radiomic value (IBSI chapter 2's processing steps).

    The defaults are for contrast-enhanced liver CT: isotropic 1 mm resampling (trilinear image,
    mask by partial-volume threshold 0.5), re-segmentation to [-150, 350] HU (liver parenchyma,
    tumour and coagulation necrosis; excludes gas from the ablation track and dense contrast or
    calcification), fixed bin size 25 HU, 3D texture matrices merged over directions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    spacing_mm: float | tuple[float, float, float] | None = Field(
        default=1.0,
        description="resample to this spacing (x, y, z or one value); null keeps the scan's grid",
    )
    by_slice: bool = Field(default=False, description="2D (per-slice) computation, IBSI's 2D")
    interpolation: Literal["nearest", "linear", "cubic"] = "linear"
    mask_threshold: float = Field(default=0.5, gt=0, le=1, description="partial-volume inclusion")
    resegmentation_hu: tuple[float, float] | None = (-150.0, 350.0)
    outlier_sigma: float | None = Field(
        default=None, description="also drop voxels beyond mean ± this many SD (IBSI outlier)"
    )
    discretisation: Literal["fixed_bin_size", "fixed_bin_number"] = "fixed_bin_size"
    bin_width: float = Field(default=25.0, gt=0, description="HU per bin, fixed bin size")
    bin_number: int = Field(default=32, gt=1, description="bins, fixed bin number")
    ivh_discretisation: Literal["none", "fixed_bin_size", "fixed_bin_number"] = "none"
    ivh_bin_width: float | None = None
    ivh_bin_number: int | None = None
    families: tuple[Family, ...] = _ALL_FAMILIES
    texture_methods: tuple[SpatialMethod, ...] = ("3d_volume_merge",)
    crop_margin_mm: float = Field(
        default=10.0, ge=0, description="image kept around the region before MIRP sees it"
    )
    exact_spatial_autocorrelation: bool = Field(
        default=False,
        description="Moran's I and Geary's C from all voxel pairs (time grows with the square of "
        "the voxel count); off: MIRP's Monte Carlo estimate above 1000 voxels, which is biased "
        "(docs/ibsi-conformance.md)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RadiomicsConfig:
        for method in self.texture_methods:
            if self.by_slice and method.startswith("3d"):
                raise ValueError(f"texture method {method} needs by_slice: false")
        if self.resegmentation_hu is not None:
            low, high = self.resegmentation_hu
            if low >= high:
                raise ValueError(f"resegmentation_hu: {low} is not below {high}")
        return self


def mirp_settings(config: RadiomicsConfig, *, modality: str = "CT") -> dict[str, object]:
    """The keyword arguments of ``mirp.extract_features`` that carry out ``config``."""
    spacing = config.spacing_mm
    new_spacing: list[float] | None
    if spacing is None:
        new_spacing = None
    else:
        x, y, z = spacing if isinstance(spacing, tuple) else (spacing, spacing, spacing)
        # MIRP orders spacing z, y, x; in 2D (by slice) only y, x.
        new_spacing = [float(y), float(x)] if config.by_slice else [float(z), float(y), float(x)]
    methods = list(config.texture_methods)
    settings: dict[str, object] = {
        "image_modality": modality,
        "by_slice": config.by_slice,
        "ibsi_compliant": True,
        "new_spacing": new_spacing,
        "spline_order": {"nearest": 0, "linear": 1, "cubic": 3}[config.interpolation],
        "anti_aliasing": False,
        "roi_spline_order": 1,
        "roi_interpolation_mask_inclusion_threshold": config.mask_threshold,
        "resegmentation_intensity_range": (
            None if config.resegmentation_hu is None else list(config.resegmentation_hu)
        ),
        "resegmentation_sigma": config.outlier_sigma,
        "base_feature_families": [_MIRP_FAMILY[f] for f in config.families],
        "base_discretisation_method": config.discretisation,
        "glcm_spatial_method": methods,
        "glrlm_spatial_method": methods,
        "glszm_spatial_method": _zone_methods(methods),
        "gldzm_spatial_method": _zone_methods(methods),
        "ngtdm_spatial_method": _zone_methods(methods),
        "ngldm_spatial_method": _zone_methods(methods),
        "ivh_discretisation_method": config.ivh_discretisation,
    }
    if config.exact_spatial_autocorrelation:
        settings["no_approximation"] = True
    if config.discretisation == "fixed_bin_size":
        settings["base_discretisation_bin_width"] = config.bin_width
    else:
        settings["base_discretisation_n_bins"] = config.bin_number
    if config.ivh_bin_width is not None:
        settings["ivh_discretisation_bin_width"] = config.ivh_bin_width
    if config.ivh_bin_number is not None:
        settings["ivh_discretisation_n_bins"] = config.ivh_bin_number
    return settings


def _zone_methods(methods: Sequence[str]) -> list[str]:
    """Zone and neighbourhood matrices have no directions: 2d, 2.5d or 3d."""
    out = []
    for method in methods:
        name = method.split("_")[0]
        if name not in out:
            out.append(name)
    return out


# MIRP appends the discretisation to the name (e.g. ``_fbs_w25.0``); it is in the config.
_DISCRETISATION_SUFFIX = re.compile(r"_(fbs|fbn|fbsi|fbni)_[wn][0-9.]+$")


def column_name(region: str, mirp_name: str) -> str | None:
    """``rad.<region>.<family>.<feature>`` for a MIRP feature name; None if it is metadata."""
    prefix, _, rest = mirp_name.partition("_")
    if prefix not in FAMILIES or not rest:
        return None
    feature = _DISCRETISATION_SUFFIX.sub("", rest).replace(".", "")
    return f"rad.{region}.{prefix}.{feature}"


def crop_to_mask(image: Volume, mask: np.ndarray, margin_mm: float) -> tuple[Volume, Volume]:
    """The image and mask cut to the mask's bounding box plus ``margin_mm`` on each side."""
    if not mask.any():
        raise RadiomicsError("the region is empty")
    spacing_zyx = np.array(image.grid.spacing_mm[::-1])
    pad = np.ceil(margin_mm / spacing_zyx).astype(int)
    nonzero = np.nonzero(mask)
    lo = [max(0, int(n.min()) - p) for n, p in zip(nonzero, pad, strict=True)]
    hi = [min(s, int(n.max()) + 1 + p) for n, s, p in zip(nonzero, mask.shape, pad, strict=True)]
    region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    start_xyz = np.array([lo[2], lo[1], lo[0]], dtype=float)
    direction = np.array(image.grid.direction, dtype=float).reshape(3, 3)
    origin = np.array(image.grid.origin_mm) + direction @ (start_xyz * spacing_zyx[::-1])
    grid = Grid(
        size=(hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]),
        spacing_mm=image.grid.spacing_mm,
        origin_mm=tuple(float(o) for o in origin),
        direction=image.grid.direction,
    )
    cropped = np.ascontiguousarray(image.array[region])
    return Volume(cropped, grid), Volume(mask[region].astype(np.uint8), grid)


@dataclass(frozen=True)
class ResampledGrid:
    """The IBSI grid a scan is resampled to (reference manual 2.4: grid centres aligned).

    The number of voxels is ceil(n · spacing / new spacing) along each axis and the new grid is
    centred on the old one, exactly as MIRP places it; ``scale`` and ``offset`` give, per axis
    (z, y, x), the old voxel coordinate of each new voxel: ``old = new · scale + offset``.
    """

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    shape: tuple[int, int, int]
    grid: Grid


def resampled_grid(grid: Grid, config: RadiomicsConfig) -> ResampledGrid | None:
    """Where ``config`` resamples a scan on ``grid``; None if it keeps the scan's voxels."""
    if config.spacing_mm is None:
        return None
    old_xyz = np.array(grid.spacing_mm, dtype=float)
    spacing = config.spacing_mm
    new_xyz = np.array(spacing if isinstance(spacing, tuple) else (spacing,) * 3, dtype=float)
    if config.by_slice:
        new_xyz[2] = old_xyz[2]  # 2D: in-plane only
    size_xyz = np.array(grid.size, dtype=float)
    shape_xyz = np.ceil(size_xyz * old_xyz / new_xyz).astype(int)
    scale_xyz = new_xyz / old_xyz
    offset_xyz = 0.5 * (size_xyz - 1.0) - 0.5 * (shape_xyz - 1.0) * scale_xyz
    direction = np.array(grid.direction, dtype=float).reshape(3, 3)
    origin = np.array(grid.origin_mm) + direction @ (offset_xyz * old_xyz)
    new_grid = Grid(
        size=tuple(int(n) for n in shape_xyz),
        spacing_mm=tuple(float(v) for v in new_xyz),
        origin_mm=tuple(float(v) for v in origin),
        direction=grid.direction,
    )
    z, y, x = 2, 1, 0
    return ResampledGrid(
        scale=(float(scale_xyz[z]), float(scale_xyz[y]), float(scale_xyz[x])),
        offset=(float(offset_xyz[z]), float(offset_xyz[y]), float(offset_xyz[x])),
        shape=(int(shape_xyz[z]), int(shape_xyz[y]), int(shape_xyz[x])),
        grid=new_grid,
    )


def resample_image(image: Volume, config: RadiomicsConfig, *, modality: str = "CT") -> Volume:
    """The scan on its IBSI grid: spline interpolation of ``config.interpolation``'s order,
    edges extended (as MIRP does), CT rounded to whole HU (IBSI)."""
    target = resampled_grid(image.grid, config)
    if target is None:
        return image
    order = {"nearest": 0, "linear": 1, "cubic": 3}[config.interpolation]
    values = ndimage.affine_transform(
        image.array.astype(np.float64),
        np.array(target.scale),
        offset=np.array(target.offset),
        output_shape=target.shape,
        order=order,
        mode="nearest",
    )
    if modality.upper() == "CT":
        values = np.round(values)
    return Volume(values.astype(np.float32), target.grid)


def resample_mask(mask: np.ndarray, grid: Grid, config: RadiomicsConfig) -> np.ndarray:
    """A mask on ``grid`` moved to the IBSI grid: trilinear, then the partial-volume threshold."""
    target = resampled_grid(grid, config)
    if target is None:
        return mask
    # Only the new voxels near the mask can be inside: interpolate over its bounding box.
    scale, offset = np.array(target.scale), np.array(target.offset)
    nonzero = np.nonzero(mask)
    if not nonzero[0].size:
        return np.zeros(target.shape, dtype=bool)
    low = np.array([n.min() for n in nonzero]) - 1
    high = np.array([n.max() for n in nonzero]) + 1
    start = np.maximum(np.floor((low - offset) / scale).astype(int), 0)
    stop = np.minimum(np.ceil((high - offset) / scale).astype(int) + 1, target.shape)
    fraction = ndimage.affine_transform(
        mask.astype(np.float64),
        scale,
        offset=offset + start * scale,
        output_shape=tuple(int(n) for n in stop - start),
        order=1,
        mode="constant",
        cval=0.0,
    )
    out = np.zeros(target.shape, dtype=bool)
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    # Rounded to 6 decimals first, as MIRP does: a voxel exactly half inside stays inside.
    out[box] = np.around(fraction, 6) >= np.around(config.mask_threshold, 6)
    return out


def compute_radiomics(
    image: Volume,
    mask: np.ndarray,
    config: RadiomicsConfig,
    *,
    region: str,
    families: tuple[str, ...] | None = None,
    resampled: bool = False,
) -> dict[str, float]:
    """IBSI features of ``mask`` (boolean, on ``image``'s grid) as ``rad.<region>.*`` columns.

    The scan is first resampled to the config's IBSI grid (:func:`resample_image`; with
    ``resampled=True`` the caller has done so, once per scan, and ``mask`` is on that grid),
    then cut to the region plus a margin for MIRP. Resampling before cutting keeps every
    region of a scan on one grid, the grid of the whole scan, so values do not depend on where
    the cut falls. ``families`` narrows ``config.families`` (e.g. no morphology for a
    peritumoral ring, whose shape is the tumour's); the config decides every other setting.
    """
    if mask.shape != image.array.shape:
        raise RadiomicsError(f"mask shape {mask.shape} differs from image {image.array.shape}")
    if not resampled and config.spacing_mm is not None:
        mask = resample_mask(mask, image.grid, config)
        image = resample_image(image, config)
    config = config.model_copy(update={"spacing_mm": None})
    if families is not None:
        config = config.model_copy(
            update={"families": tuple(f for f in config.families if f in families)}
        )
    if not config.families:
        return {}
    cropped, cropped_mask = crop_to_mask(image, mask, config.crop_margin_mm)
    with _region_files(cropped, cropped_mask) as (image_path, mask_path):
        row = run_mirp(image_path, mask_path, mirp_settings(config))
    out: dict[str, float] = {}
    for name, value in row.items():
        column = column_name(region, name)
        if column is not None:
            out[column] = float(value) if isinstance(value, int | float) else float("nan")
    return out


@dataclass
class RegionMeasurement:
    """The features of one region that could be measured, and why the others could not.

    ``problems`` holds, per part left unmeasured, the FeatureTable columns it leaves empty (as
    ``fnmatch`` patterns, ``rad.tumour.cm.*``) and the reason in a sentence; ``undefined`` the
    columns MIRP measured without a value (NaN: undefined for this region, e.g. a texture
    matrix of a region without neighbouring voxels of another grey level); ``notes``, in the
    same form as ``problems``, what the measured values rest on (a region partly outside the
    re-segmentation range) without leaving them empty; ``resegmented_out`` the share of the
    region's voxels outside that range (None without re-segmentation).
    """

    columns: dict[str, float]
    problems: list[tuple[list[str], str]]
    undefined: list[str] = field(default_factory=list)
    notes: list[tuple[list[str], str]] = field(default_factory=list)
    resegmented_out: float | None = None

    @property
    def complete(self) -> bool:
        """True when no family was left out (undefined values aside)."""
        return not self.problems


def _grid_phrase(config: RadiomicsConfig) -> str:
    spacing = config.spacing_mm
    if spacing is None:
        return "the scan's own grid"
    text = (
        f"{spacing:g} mm"
        if not isinstance(spacing, tuple)
        else "x".join(f"{s:g}" for s in spacing) + " mm"
    )
    return f"the {text} radiomics grid (partial-volume threshold {config.mask_threshold:g})"


def measure_region(
    image: Volume,
    mask: np.ndarray,
    config: RadiomicsConfig,
    *,
    region: str,
    families: tuple[str, ...] | None = None,
) -> RegionMeasurement:
    """:func:`compute_radiomics` of a region on the already resampled scan (``mask`` on its
    grid), measuring what can be measured and saying why the rest cannot, instead of raising.

    A region with fewer than :data:`MIN_RADIOMICS_VOXELS` voxels on the radiomics grid, or
    within the re-segmentation range, is left out whole; one with at least
    :data:`RESEGMENTATION_NOTED` of its voxels outside that range is measured on the others,
    and ``notes`` says how many were left out; when MIRP refuses the region, each family is
    tried alone and only those it refuses are left out; features MIRP returns without a value
    (undefined for this region) are named.
    """
    everything = [f"rad.{region}.*"]
    voxels = int(np.count_nonzero(mask))
    if voxels < MIN_RADIOMICS_VOXELS:
        return RegionMeasurement(
            {},
            [
                (
                    everything,
                    f"the {region} region has {voxels} voxel(s) on {_grid_phrase(config)}; "
                    f"radiomics needs at least {MIN_RADIOMICS_VOXELS}",
                )
            ],
        )
    notes: list[tuple[list[str], str]] = []
    outside = None
    if config.resegmentation_hu is not None:
        low, high = config.resegmentation_hu
        values = image.array[mask]
        inside = int(np.count_nonzero((values >= low) & (values <= high)))
        if inside < MIN_RADIOMICS_VOXELS:
            return RegionMeasurement(
                {},
                [
                    (
                        everything,
                        f"{inside} of the {region} region's {voxels} voxels lie within the "
                        f"re-segmentation range [{low:g}, {high:g}] HU (its values run from "
                        f"{float(values.min()):g} to {float(values.max()):g}); radiomics needs "
                        f"at least {MIN_RADIOMICS_VOXELS}",
                    )
                ],
            )
        outside = 1.0 - inside / voxels
        if outside >= RESEGMENTATION_NOTED:
            notes.append(
                (
                    everything,
                    f"{100 * outside:.1f}% of the {region} region's {voxels} voxels "
                    f"({voxels - inside}) lie outside the re-segmentation range [{low:g}, "
                    f"{high:g}] HU (its values run from {float(values.min()):g} to "
                    f"{float(values.max()):g}): its intensity and texture features leave "
                    "them out",
                )
            )
    problems: list[tuple[list[str], str]] = []
    try:
        columns = compute_radiomics(
            image, mask, config, region=region, families=families, resampled=True
        )
    except RadiomicsError:
        columns = {}
        wanted = [f for f in config.families if families is None or f in families]
        for family in wanted:
            try:
                columns.update(
                    compute_radiomics(
                        image, mask, config, region=region, families=(family,), resampled=True
                    )
                )
            except RadiomicsError as exc:
                problems.append(([f"rad.{region}.{family}.*"], str(exc)))
    undefined = sorted(c for c, v in columns.items() if not np.isfinite(v))
    return RegionMeasurement(columns, problems, undefined, notes, outside)


@contextmanager
def _region_files(image: Volume, mask: Volume) -> Iterator[tuple[Path, Path]]:
    """The region as NIfTI files in a folder named by its content, removed afterwards.

    MIRP seeds its Monte Carlo estimate of Moran's I and Geary's C with a hash of the image that
    includes the file's folder; a folder named by the voxels (under the system's temporary
    folder) makes the same region give the same value in every run and every worker. A lock
    keeps two processes that meet the same region from removing each other's files.
    """
    digest = hashlib.sha256()
    for volume in (image, mask):
        digest.update(np.ascontiguousarray(volume.array).tobytes())
        digest.update(repr(volume.grid).encode())
    root = Path(tempfile.gettempdir(), "hepablate-radiomics")
    folder = root / digest.hexdigest()[:24]
    root.mkdir(exist_ok=True)
    # 256 lock files, kept: the same region always takes the same one.
    with (root / f"{digest.hexdigest()[:2]}.lock").open("w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            folder.mkdir(exist_ok=True)
            image_path, mask_path = folder / "image.nii", folder / "mask.nii"
            sitk.WriteImage(image.to_sitk(), str(image_path))
            sitk.WriteImage(mask.to_sitk(), str(mask_path))
            yield image_path, mask_path
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_mirp(image: Path, mask: Path, settings: dict[str, object]) -> dict[str, object]:
    """MIRP's feature row for one image file and one mask file, its log kept quiet."""
    from mirp import extract_features

    for name in ("mirp", "MainProcess"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            # A fixed sample name: it enters the hash that seeds MIRP's Moran's I estimate.
            tables = extract_features(
                image=str(image), mask=str(mask), sample_name="region", **settings
            )
        except Exception as exc:  # MIRP raises plain exceptions for unusable regions
            raise RadiomicsError(f"MIRP: {str(exc).splitlines()[0]}") from exc
        finally:
            logging.disable(previous)
    if not tables or len(tables[0]) != 1:
        raise RadiomicsError("MIRP returned no feature row")
    return {str(k): v for k, v in tables[0].iloc[0].to_dict().items()}
