"""``evaluation.json``: what ``hepablate segment evaluate`` measures of a segmentation bundle's
masks against a cohort's manual masks (``hepablate.segment.evaluate``; docs/segmentation.md).

Distances are in millimetres, volumes in millilitres; a value that is undefined (a Dice with
no manual voxel, a surface distance to an empty mask, a summary of no value) is null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter

from hepablate.schemas._base import Closed, check_version, load_json, validate

__all__ = [
    "SEGMENT_EVALUATION_SCHEMA_VERSION",
    "CaseEvaluation",
    "LesionEvaluation",
    "LesionRecord",
    "MarginEvaluation",
    "MarginRecord",
    "OrganEvaluation",
    "SegmentEvaluation",
    "SizeBin",
    "SizeBinName",
    "Summary",
    "TaskEvaluation",
    "read_segment_evaluation",
]

# 1: the first evaluation.json.
SEGMENT_EVALUATION_SCHEMA_VERSION = 1

SizeBinName = Literal["<10 mm", "10-20 mm", ">20 mm"]


class Summary(Closed):
    """A metric over patients (or tumours): how many values, their mean with a bootstrap 95%
    CI, their median with one, and the quartiles (the IQR is ``q1`` to ``q3``)."""

    n: int
    mean: float | None
    mean_ci: tuple[float, float] | None
    median: float | None
    median_ci: tuple[float, float] | None
    q1: float | None
    q3: float | None


class CaseEvaluation(Closed):
    """One patient's scan of one task: the liver's overlap and surface distances, the lesions'
    Dice (all lesions as one mask) and detection counts, and the voxel counts the cohort's
    pooled (global) Dice adds up."""

    patient: str
    liver_dice: float | None
    liver_hd95_mm: float | None
    liver_asd_mm: float | None
    lesion_dice: float | None
    manual_lesions: int
    predicted_lesions: int
    detected: int
    false_positives: int
    lesion_voxels_manual: int
    lesion_voxels_predicted: int
    lesion_voxels_both: int


class OrganEvaluation(Closed):
    """The liver of one task over its patients (``CaseEvaluation`` holds each one's)."""

    dice: Summary
    hd95_mm: Summary
    asd_mm: Summary


class LesionRecord(Closed):
    """A manual lesion (a label of the manual mask) and the predicted lesion matched to it."""

    patient: str
    lesion: int
    volume_ml: float
    diameter_mm: float  # of the sphere of its volume
    size: SizeBinName
    detected: bool
    dice: float | None  # with the best-matching predicted lesion; null when nothing overlaps


class SizeBin(Closed):
    size: SizeBinName
    lesions: int
    detected: int
    recall: float | None


class LesionEvaluation(Closed):
    """The lesions (tumours or zones) of one task."""

    detection_rule: str
    global_dice: float | None  # every patient's voxels pooled
    dice: Summary  # per case
    recall: float | None
    recall_by_size: list[SizeBin]
    false_positives_per_case: float | None
    detected_dice: Summary  # per detected lesion
    lesions: list[LesionRecord]


class TaskEvaluation(Closed):
    task: str
    scan: str
    liver_mask: str | None
    lesion_mask: str
    lesion_name: str
    cases: list[CaseEvaluation]
    liver: OrganEvaluation | None
    lesions: LesionEvaluation


class MarginRecord(Closed):
    """A manual tumour's minimal ablative margin from the manual masks and from the automatic
    ones (the matched predicted tumour and zone, on the same registration). ``automatic_mm``
    null with ``manual_mm`` set: missed (``note`` says why); both null: not measured."""

    patient: str
    tumour: int
    manual_mm: float | None
    automatic_mm: float | None
    error_mm: float | None  # automatic - manual
    note: str | None


class MarginEvaluation(Closed):
    zone_rule: str
    measured: int  # tumours with both margins
    missed: int  # a manual margin and none from the automatic masks
    not_measured: int  # no manual margin (failed registration or fit, no zone on the pre grid)
    absolute_error_mm: Summary
    signed_error_mm: Summary
    tumours: list[MarginRecord]


class BootstrapSettings(Closed):
    resamples: int
    confidence: float
    seed: int
    method: str


class SegmentEvaluation(Closed):
    """``evaluation.json`` of ``hepablate segment evaluate``."""

    schema_version: int = SEGMENT_EVALUATION_SCHEMA_VERSION
    kind: Literal["segment-evaluation"] = "segment-evaluation"
    bundle_id: str
    bundle: str
    cohort: str
    predicted: str | None  # the folder of predicted masks read instead of segmenting
    bootstrap: BootstrapSettings
    tasks: dict[str, TaskEvaluation]
    skipped: dict[str, str]  # task -> why it was not evaluated
    margins: MarginEvaluation | None


SEGMENT_EVALUATION: TypeAdapter[SegmentEvaluation] = TypeAdapter(SegmentEvaluation)


def read_segment_evaluation(path: Path) -> SegmentEvaluation:
    """``evaluation.json`` as its typed object; an ``OutputFileError`` names the file and the
    field."""
    raw = load_json(path)
    check_version(path, raw, SEGMENT_EVALUATION_SCHEMA_VERSION)
    return validate(path, raw, SEGMENT_EVALUATION)
