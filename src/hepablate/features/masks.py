"""Where a patient's masks come from: the cohort's own (``manual``) or a segmenter's (``auto``).

Features never load a segmentation bundle: ``hepablate.app`` segments the patients that need
it and hands :func:`hepablate.features.extract.extract` the masks it drew as
:class:`AutoMasks` (files in the cohort format, per patient and mask role). Here are the rules
that both sides follow: which masks a segmenter can draw (:data:`AUTO_ROLES`), which patient
needs which (:func:`needs_auto`), the images one patient is then measured from
(:func:`patient_images`) and what its rows record of it (:func:`mask_source_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepablate.features.config import ImageNames, MaskMode, SegmenterRef

__all__ = [
    "AUTO_ROLES",
    "MASK_SOURCE",
    "AutoMasks",
    "mask_source_columns",
    "needs_auto",
    "patient_images",
]

# The masks a segmenter draws (fields of ImageNames): tumours and liver on the pre CT, the
# ablation zone and the liver on the post CT. Vessels are always the cohort's.
AUTO_ROLES: tuple[str, ...] = ("tumours", "liver", "ablation", "post_liver")
MASK_SOURCE = "qa.mask_source"


@dataclass(frozen=True)
class AutoMasks:
    """Masks a segmenter drew, for an extraction with ``masks: auto | manual_else_auto``.

    ``paths[patient][role]`` is a mask file in the cohort format (``role`` one of
    :data:`AUTO_ROLES`); ``segmenter`` the bundle with its id (part of each such patient's
    cache key); ``warnings`` the segmentation's findings (a scan it could not segment), in the
    FeatureTable's warning format.
    """

    mode: MaskMode
    segmenter: SegmenterRef
    paths: Mapping[str, Mapping[str, Path]]
    warnings: list[dict[str, Any]] = field(default_factory=list)


def _role_names(names: ImageNames) -> dict[str, str]:
    return {role: getattr(names, role) for role in AUTO_ROLES}


def needs_auto(mode: MaskMode, images: Mapping[str, Path], names: ImageNames, role: str) -> bool:
    """Whether the patient (its cohort ``images``) is to get the segmenter's mask ``role``."""
    if mode == "manual":
        return False
    return mode == "auto" or getattr(names, role) not in images


def patient_images(
    mode: MaskMode, images: Mapping[str, Path], names: ImageNames, auto: Mapping[str, Path]
) -> dict[str, Path]:
    """The images one patient is measured from (image name -> file): the cohort's, where
    ``auto`` (role -> file) holds the masks it is to get from the segmenter. With
    ``masks: auto`` none of the cohort's own masks of :data:`AUTO_ROLES` is used, even where
    the segmenter drew nothing (that mask is then missing, and the extraction says so)."""
    roles = _role_names(names)
    paths = dict(images)
    if mode == "auto":
        for name in roles.values():
            paths.pop(name, None)
    for role, path in auto.items():
        if needs_auto(mode, images, names, role):
            paths[roles[role]] = path
    return paths


def mask_source_columns(
    images: Mapping[str, Path], names: ImageNames, auto: Mapping[str, Path], mode: MaskMode
) -> dict[str, str | None]:
    """The ``qa.mask_source*`` columns of a patient's rows: per mask role (``manual``, ``auto``
    or None when the patient has no such mask) and ``qa.mask_source`` over its masks
    (``manual``, ``auto``, ``mixed``; None without any mask)."""
    used = patient_images(mode, images, names, auto)
    columns: dict[str, str | None] = {}
    for role, name in _role_names(names).items():
        if name not in used:
            columns[f"{MASK_SOURCE}.{role}"] = None
        else:
            columns[f"{MASK_SOURCE}.{role}"] = (
                "auto" if role in auto and needs_auto(mode, images, names, role) else "manual"
            )
    found = {v for v in columns.values() if v is not None}
    summary = None if not found else found.pop() if len(found) == 1 else "mixed"
    return {MASK_SOURCE: summary, **columns}
