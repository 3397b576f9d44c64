"""Segmentation metrics on masks of one grid: overlap and surface distances (MONAI), lesion
detection by matching connected components (scipy), and summaries over patients with
bootstrap CIs (scipy).

Arrays are (z, y, x), spacings (z, y, x) in mm. Each metric is MONAI's: Dice
(``compute_dice``), the 95th-percentile Hausdorff distance (``compute_hausdorff_distance``,
``percentile=95``, symmetric: the larger of the two directed 95th percentiles) and the mean
surface distance (``compute_average_surface_distance``, symmetric: the mean over both
surfaces' edge voxels), between the masks' edge voxels (a mask voxel with a face on the
background) at the scan's spacing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics.hausdorff_distance import compute_hausdorff_distance
from monai.metrics.meandice import compute_dice
from monai.metrics.surface_distance import compute_average_surface_distance
from scipy import ndimage, stats

from hepablate.schemas.segmentation import LesionRecord, SizeBin, SizeBinName, Summary

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "DETECTION_DICE",
    "DETECTION_RULE",
    "SIZE_BINS",
    "LesionMatch",
    "SurfaceScores",
    "dice",
    "equivalent_diameter_mm",
    "lesion_instances",
    "lesion_records",
    "match_lesions",
    "recall_by_size",
    "size_bin",
    "summarise",
    "surface_scores",
]

# A manual lesion is detected when a predicted lesion's Dice with it exceeds this: a loose
# overlap criterion, so that a small lesion drawn a voxel larger or smaller still counts, while
# a predicted blob many times a lesion's size (Dice below 0.1) is a miss and a false positive.
DETECTION_DICE = 0.1
DETECTION_RULE = (
    f"a manual lesion is detected when a predicted lesion (a connected component, "
    f"26-connectivity) has a Dice with it above {DETECTION_DICE:g}; a predicted lesion with no "
    f"such manual lesion is a false positive; a predicted lesion may detect several manual ones"
)
SIZE_BINS: tuple[SizeBinName, ...] = ("<10 mm", "10-20 mm", ">20 mm")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0

_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


def _tensor(mask: np.ndarray) -> torch.Tensor:
    """A binary mask as MONAI's (batch, class, z, y, x) one-class tensor."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]


def _value(result: torch.Tensor) -> float | None:
    value = float(result.reshape(-1)[0])
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class SurfaceScores:
    """Dice and the symmetric surface distances (mm); None where undefined (an empty mask)."""

    dice: float | None
    hd95_mm: float | None
    asd_mm: float | None


def dice(predicted: np.ndarray, manual: np.ndarray) -> float | None:
    """MONAI's Dice of two binary masks; None when the manual mask is empty (undefined)."""
    if not manual.any():
        return None
    return _value(compute_dice(_tensor(predicted), _tensor(manual), include_background=True))


def surface_scores(
    predicted: np.ndarray, manual: np.ndarray, spacing_mm: Sequence[float]
) -> SurfaceScores:
    """Dice, HD95 and mean surface distance of two binary masks (MONAI); the distances are
    None when either mask is empty."""
    overlap = dice(predicted, manual)
    if not (predicted.any() and manual.any()):
        return SurfaceScores(overlap, None, None)
    a, b = _tensor(predicted), _tensor(manual)
    spacing = [float(s) for s in spacing_mm]
    with warnings.catch_warnings():
        # MONAI's own call of a deprecated argument of its get_mask_edges (MONAI 1.5-1.6).
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        hd95 = compute_hausdorff_distance(
            a, b, include_background=True, percentile=95, spacing=spacing
        )
        asd = compute_average_surface_distance(
            a, b, include_background=True, symmetric=True, spacing=spacing
        )
    return SurfaceScores(overlap, _value(hd95), _value(asd))


def lesion_instances(labels: np.ndarray) -> np.ndarray:
    """Predicted lesions numbered 1..n: the connected components (26-connectivity) of each
    label, so a binary mask is split into its lesions and ``segment predict``'s labels (one
    component each) are kept as lesions."""
    out = np.zeros(labels.shape, dtype=np.int32)
    count = 0
    for value in np.unique(labels[labels > 0]):
        components, n = ndimage.label(labels == value, structure=_CONNECTIVITY)
        out[components > 0] = components[components > 0] + count
        count += n
    return out


def equivalent_diameter_mm(volume_mm3: float) -> float:
    """The diameter of the sphere of this volume."""
    return float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0))


def size_bin(diameter_mm: float) -> SizeBinName:
    """The size class of a lesion: below 10 mm, 10 to 20 mm (both included), above 20 mm."""
    if diameter_mm < 10.0:
        return SIZE_BINS[0]
    return SIZE_BINS[1] if diameter_mm <= 20.0 else SIZE_BINS[2]


@dataclass(frozen=True)
class LesionMatch:
    """The manual lesions (labels of the manual mask) against the predicted ones: per manual
    lesion its voxels, the best-matching predicted lesion (0: none overlaps) and their Dice
    (None: no overlap), whether that counts as detected; the predicted lesions detecting
    none (the false positives)."""

    manual_voxels: dict[int, int]
    best: dict[int, int]
    best_dice: dict[int, float | None]
    detected: dict[int, bool]
    predicted: int
    false_positives: list[int]


def match_lesions(manual: np.ndarray, predicted: np.ndarray) -> LesionMatch:
    """Match the lesions of two label maps by the Dice of every overlapping pair (from the
    voxel counts of their overlap table; ``DETECTION_RULE``)."""
    manual_ids, manual_counts = np.unique(manual[manual > 0], return_counts=True)
    predicted_ids, predicted_counts = np.unique(predicted[predicted > 0], return_counts=True)
    manual_size = dict(zip(manual_ids.tolist(), manual_counts.tolist(), strict=True))
    predicted_size = dict(zip(predicted_ids.tolist(), predicted_counts.tolist(), strict=True))
    both = (manual > 0) & (predicted > 0)
    pairs, overlaps = np.unique(
        np.stack([manual[both], predicted[both]]).astype(np.int64), axis=1, return_counts=True
    )
    best: dict[int, int] = dict.fromkeys(manual_size, 0)
    best_dice: dict[int, float | None] = dict.fromkeys(manual_size)
    true_positives: set[int] = set()
    for (m, p), overlap in zip(pairs.T.tolist(), overlaps.tolist(), strict=True):
        pair_dice = 2.0 * overlap / (manual_size[m] + predicted_size[p])
        current = best_dice[m]
        if current is None or pair_dice > current:
            best[m], best_dice[m] = p, pair_dice
        if pair_dice > DETECTION_DICE:
            true_positives.add(p)
    detected = {m: d is not None and d > DETECTION_DICE for m, d in best_dice.items()}
    return LesionMatch(
        manual_voxels=manual_size,
        best=best,
        best_dice=best_dice,
        detected=detected,
        predicted=len(predicted_size),
        false_positives=sorted(set(predicted_size) - true_positives),
    )


def lesion_records(patient: str, match: LesionMatch, voxel_mm3: float) -> list[LesionRecord]:
    """The manual lesions of one case with their size and whether they were detected."""
    records = []
    for lesion, voxels in match.manual_voxels.items():
        diameter = equivalent_diameter_mm(voxels * voxel_mm3)
        records.append(
            LesionRecord(
                patient=patient,
                lesion=lesion,
                volume_ml=voxels * voxel_mm3 / 1000.0,
                diameter_mm=diameter,
                size=size_bin(diameter),
                detected=match.detected[lesion],
                dice=match.best_dice[lesion],
            )
        )
    return records


def recall_by_size(records: Sequence[LesionRecord]) -> list[SizeBin]:
    """The share of manual lesions detected in each size class (None: no lesion of it)."""
    bins = []
    for size in SIZE_BINS:
        in_bin = [r for r in records if r.size == size]
        found = sum(r.detected for r in in_bin)
        bins.append(
            SizeBin(
                size=size,
                lesions=len(in_bin),
                detected=found,
                recall=found / len(in_bin) if in_bin else None,
            )
        )
    return bins


def _ci(values: np.ndarray, statistic: str) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    function = np.mean if statistic == "mean" else np.median
    with warnings.catch_warnings():
        # All values equal: the interval is that value (scipy warns that it is degenerate).
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,),
            function,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return (float(low), float(high))


def summarise(values: Sequence[float | None]) -> Summary:
    """Mean and median of the defined values with percentile-bootstrap 95% CIs (resampling
    patients, or tumours: one value each), and the quartiles."""
    kept = np.asarray([v for v in values if v is not None], dtype=float)
    if len(kept) == 0:
        return Summary(n=0, mean=None, mean_ci=None, median=None, median_ci=None, q1=None, q3=None)
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return Summary(
        n=len(kept),
        mean=float(kept.mean()),
        mean_ci=_ci(kept, "mean"),
        median=float(median),
        median_ci=_ci(kept, "median"),
        q1=float(q1),
        q3=float(q3),
    )
