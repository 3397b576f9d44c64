"""Does an image look like what ``cohort.yaml`` (or a DICOM series) says it is?

A mask exported as a DICOM image series, a label map saved under the CT's name, or a CT stored
without its rescale intercept all read as valid volumes on the right grid; only their values
give them away. These rules are shared by ``hepablate validate`` (``images.implausible_ct``,
``images.implausible_mask``) and ``hepablate import-dicom`` (which tells mask series from
scans by them).

The thresholds are loose on purpose: they were checked to pass on every real CT at hand (the
IBSI CT phantom, TotalSegmentator's two examples, dcmqi's three abdominal slices with their
-3024 HU padding) and on the example and virtual cohorts, and to fail on a 0/255 mask, a 0/1
mask and a TotalSegmentator label map declared as CT. A false alarm here would block a real
cohort, so only what no CT of a body can be is refused.
"""

from __future__ import annotations

import numpy as np

from hepablate.cohort.problems import ValidationReport
from hepablate.imaging.io import Volume

__all__ = [
    "BODY_DARK_BELOW_HU",
    "HU_RANGE",
    "MAX_MASK_LABELS",
    "MIN_FRACTION_DARK",
    "MIN_FRACTION_IN_HU_RANGE",
    "MIN_FRACTION_SOFT_TISSUE",
    "SOFT_TISSUE_HU",
    "binary_values",
    "mask_problem",
    "report_implausible_mask",
    "report_implausible_scan",
    "scan_problem",
]

# The values a 12-bit CT stores, in HU: 4096 levels from air (-1024).
HU_RANGE = (-1024.0, 3071.0)
# Scanners fill the corners outside the round field of view with -2048 or -3024 HU: 21.5% of a
# square slice for a circle inscribed in it (dcmqi's CT has 21.3%), more for a small field. Half
# the voxels inside the range leaves room for that and still refuses unscaled or unknown units.
MIN_FRACTION_IN_HU_RANGE = 0.5
# Air, lung or fat: below -100 HU. A CT of a body holds some, even cropped to the abdomen (the
# virtual cohort's crops: over 60%); a mask, a label map or a CT stored without its rescale
# intercept (air at 0) holds none.
BODY_DARK_BELOW_HU = -100.0
MIN_FRACTION_DARK = 0.001
# Soft tissue, blood and enhanced parenchyma; at least 1% of the voxels of a body CT (a scan of
# air alone, or of padding, is not a patient).
SOFT_TISSUE_HU = (-100.0, 300.0)
MIN_FRACTION_SOFT_TISSUE = 0.01
# A label map stored as uint8 holds at most 255 labels besides background; a mask with more
# distinct values is an intensity image (a scan saved under a mask's name).
MAX_MASK_LABELS = 255
# Fractions and distinct values are computed on an evenly strided sample of this many voxels at
# most: the rules are about most voxels, and a full np.unique of a 512x512x600 CT takes seconds.
_SAMPLE = 2_000_000


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.ravel()
    return flat[:: max(1, flat.size // _SAMPLE)]


def binary_values(values: np.ndarray) -> list[float] | None:
    """The one or two distinct values of a binary (mask-like) image, or None for any other."""
    seen = np.unique(_sample(values))
    if seen.size > 2:
        return None
    # Exact, since the sample may have missed a rare value (a small tumour); comparing is much
    # faster than np.unique, which is needed only when the sample did miss one.
    inside = values == seen[0]
    if seen.size == 2:
        inside |= values == seen[1]
    if not bool(inside.all()):
        seen = np.unique(values)
        if seen.size > 2:
            return None
    return [float(v) for v in seen]


def _values_text(values: list[float]) -> str:
    return ("the values " if len(values) > 1 else "the value ") + " and ".join(
        f"{v:g}" for v in values
    )


def scan_problem(values: np.ndarray, modality: str) -> str | None:
    """Why ``values`` cannot be a scan of ``modality`` (``"CT"`` or ``"MR"``), or None."""
    binary = binary_values(values)
    if binary is not None and len(binary) == 1:
        return f"every voxel is {binary[0]:g}: it shows no anatomy"
    if binary is not None:
        return f"it holds only {_values_text(binary)}: a mask, not a {modality}"
    if modality != "CT":
        return None
    sample = _sample(values).astype(np.float64)
    low, high = HU_RANGE
    inside = float(np.mean((sample >= low) & (sample <= high)))
    if inside < MIN_FRACTION_IN_HU_RANGE:
        return (
            f"{1 - inside:.0%} of its voxels are outside {low:g}..{high:g} HU (values "
            f"{np.nanmin(sample):g} to {np.nanmax(sample):g}): not a CT in Hounsfield units"
        )
    dark = float(np.mean(sample < BODY_DARK_BELOW_HU))
    soft_low, soft_high = SOFT_TISSUE_HU
    soft = float(np.mean((sample >= soft_low) & (sample <= soft_high)))
    if dark < MIN_FRACTION_DARK or soft < MIN_FRACTION_SOFT_TISSUE:
        missing = "no air or fat (below -100 HU)" if dark < MIN_FRACTION_DARK else "no soft tissue"
        return (
            f"{missing} as in a CT of a body (values {np.nanmin(sample):g} to "
            f"{np.nanmax(sample):g}): a label map, or values stored without their rescale "
            "intercept?"
        )
    return None


def mask_problem(values: np.ndarray) -> str | None:
    """Why ``values`` cannot be a mask (labels), or None; label rules are checked elsewhere."""
    distinct = np.unique(_sample(values)).size
    if distinct > MAX_MASK_LABELS + 1:
        return (
            f"it holds at least {distinct} distinct values (values {np.nanmin(values):g} to "
            f"{np.nanmax(values):g}): an intensity image (a scan?), not a mask of labels"
        )
    return None


def report_implausible_scan(
    volume: Volume, modality: str, report: ValidationReport, *, patient: str, file: str, field: str
) -> bool:
    """Report ``images.implausible_ct`` when the scan ``field`` does not look like its modality;
    True when it was reported."""
    problem = scan_problem(volume.array, modality)
    if problem is None:
        return False
    report.error(
        "images.implausible_ct",
        f"declared as the {modality} {field!r}, but {problem}",
        patient=patient,
        file=file,
        field=field,
    )
    return True


def report_implausible_mask(
    volume: Volume, report: ValidationReport, *, patient: str, file: str, field: str
) -> bool:
    """Report ``images.implausible_mask``; True when the mask is not worth checking further."""
    problem = mask_problem(volume.array)
    if problem is None:
        return False
    report.error(
        "images.implausible_mask",
        f"declared as the mask {field!r}, but {problem}",
        patient=patient,
        file=file,
        field=field,
    )
    return True
