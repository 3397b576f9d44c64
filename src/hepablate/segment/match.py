"""Found lesions matched to the tumours they belong to, on the tumours' grid.

The cohort format labels the ablation zone that treats tumour *n* with *n*
(docs/cohort-format.md). Prediction finds zones as connected components numbered by volume;
:func:`match_lesions` gives each component the id of a tumour: the one whose voxels it covers
the largest share of; on a tie (a zone over two tumours) or without any overlap, the tumour
whose centroid is nearest, if the two are close enough (below); otherwise the component is
unmatched, and is not written as any tumour's zone. Components matched to one tumour are one
zone (a zone split by a vessel in two pieces treats one tumour). The same rule renumbers
predicted tumours to the ids of manual ones on the same grid.

**How close is close enough.** With both the component and the tumour taken as spheres of
their volumes (radii r_c, r_t), a component matches by distance when its centroid lies within
r_c + r_t + ``max_gap_mm`` of the tumour's: the spheres would come within ``max_gap_mm`` of
each other. The default, 10 mm, is the ablative margin a treatment aims for (5-10 mm around the
tumour, so a zone's edge lies up to that far from its tumour's) and also bounds a rigid liver
registration's residual error (a few mm); a component further away than that from every tumour
treats none of them that anyone could tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = ["MAX_GAP_MM", "Matched", "Matching", "Unmatched", "match_lesions"]

MAX_GAP_MM = 10.0
# Shares closer than this are a tie (two tumours both covered whole, or in the same part).
_TIE = 1e-9


@dataclass(frozen=True)
class Matched:
    """The components (labels of the found map) that are tumour ``tumour``'s lesion."""

    tumour: int
    components: tuple[int, ...]
    overlap_share: float  # of the tumour's voxels inside these components
    matched_by: Literal["overlap", "nearest_centroid"]
    distance_mm: float  # the components' centroid to the tumour's


@dataclass(frozen=True)
class Unmatched:
    component: int
    reason: str


@dataclass(frozen=True)
class Matching:
    matched: list[Matched]  # by tumour id
    unmatched: list[Unmatched]  # by component label

    def relabel(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``found`` (components 1..k, on any grid) as tumour ids, and its unmatched
        components numbered 1..m in the order of ``unmatched``."""
        size = int(found.max(initial=0)) + 1
        to_tumour = np.zeros(size, dtype=np.int64)
        for match in self.matched:
            to_tumour[list(match.components)] = match.tumour
        to_unmatched = np.zeros(size, dtype=np.int64)
        for number, item in enumerate(self.unmatched, start=1):
            if item.component < size:
                to_unmatched[item.component] = number
        dtype = found.dtype
        return to_tumour[found].astype(dtype), to_unmatched[found].astype(dtype)


def _radius_mm(voxels: float, voxel_mm3: float) -> float:
    return float((3.0 * voxels * voxel_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0))


def match_lesions(
    found: np.ndarray,
    count: int,
    tumours: np.ndarray,
    spacing_mm: tuple[float, ...],
    *,
    max_gap_mm: float = MAX_GAP_MM,
) -> Matching:
    """Match the components 1..``count`` of ``found`` to the tumours of ``tumours``.

    Both label maps are (z, y, x) on one grid of spacing ``spacing_mm`` (x, y, z); ``count``
    is the number of components before they were moved onto this grid (one with no voxel left
    is unmatched, saying so). The rule and its distance are the module's.
    """
    if found.shape != tumours.shape:
        raise ValueError(f"found {found.shape} and tumours {tumours.shape} differ in shape")
    sampling = np.asarray(tuple(reversed(spacing_mm)), dtype=float)
    voxel_mm3 = float(np.prod(sampling))
    ids = [int(t) for t in np.unique(tumours) if t > 0]
    size = max(ids, default=0) + 1
    inside = found > 0
    # overlap[c, t]: voxels of component c in tumour t (the joint histogram of the two maps).
    joint = np.bincount(
        found[inside].astype(np.int64) * size + tumours[inside].astype(np.int64),
        minlength=(count + 1) * size,
    )
    overlap = joint[: (count + 1) * size].reshape(count + 1, size)
    tumour_voxels = np.bincount(tumours.ravel().astype(np.int64), minlength=size)
    component_voxels = overlap.sum(axis=1)
    present = [c for c in range(1, count + 1) if component_voxels[c] > 0]
    found_centres = dict(
        zip(
            present,
            np.asarray(ndimage.center_of_mass(inside, found, present)).reshape(-1, 3),
            strict=True,
        )
    )
    tumour_centres = dict(
        zip(
            ids,
            np.asarray(ndimage.center_of_mass(tumours > 0, tumours, ids)).reshape(-1, 3),
            strict=True,
        )
    )

    def distance(c: int, t: int) -> float:
        return float(np.linalg.norm((found_centres[c] - tumour_centres[t]) * sampling))

    chosen: dict[int, list[int]] = {}
    by_overlap: set[int] = set()  # tumours one of whose components overlaps them most
    unmatched: list[Unmatched] = []
    for c in range(1, count + 1):
        if component_voxels[c] == 0:
            unmatched.append(Unmatched(c, "no voxel left on the tumours' grid"))
            continue
        if not ids:
            unmatched.append(Unmatched(c, "there is no tumour to match"))
            continue
        shares = {t: overlap[c, t] / tumour_voxels[t] for t in ids}
        best = max(shares.values())
        tied = [t for t in ids if best > 0 and shares[t] >= best - _TIE]
        if len(tied) == 1:
            chosen.setdefault(tied[0], []).append(c)
            by_overlap.add(tied[0])
            continue
        r_c = _radius_mm(component_voxels[c], voxel_mm3)
        near = [
            t
            for t in tied or ids
            if distance(c, t) <= r_c + _radius_mm(tumour_voxels[t], voxel_mm3) + max_gap_mm
        ]
        if not near:
            nearest = min(ids, key=lambda t: distance(c, t))
            unmatched.append(
                Unmatched(
                    c,
                    f"overlaps no tumour; the nearest, tumour {nearest}, is "
                    f"{distance(c, nearest):.1f} mm away centre to centre, more than "
                    f"{max_gap_mm:g} mm beyond the two's equivalent-sphere radii",
                )
            )
            continue
        t = min(near, key=lambda t: (distance(c, t), t))
        chosen.setdefault(t, []).append(c)
    matched = []
    for t in sorted(chosen):
        members = tuple(chosen[t])
        zone = np.isin(found, members)
        share = float((zone & (tumours == t)).sum()) / float(tumour_voxels[t])
        centre = np.asarray(ndimage.center_of_mass(zone))
        gap = centre - tumour_centres[t]
        matched.append(
            Matched(
                tumour=t,
                components=members,
                overlap_share=round(share, 4),
                matched_by="overlap" if t in by_overlap else "nearest_centroid",
                distance_mm=round(float(np.linalg.norm(gap * sampling)), 2),
            )
        )
    return Matching(matched, unmatched)
