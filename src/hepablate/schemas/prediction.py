"""``prediction.json``: what ``hepablate predict`` (``bundle.predict.predict_table``) gives for
a new patient, per tumour (or per patient for a patient-level endpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Tag, TypeAdapter

from hepablate.schemas._base import (
    Closed,
    Open,
    absent_if_none,
    check_version,
    load_json,
    tag,
    validate,
)
from hepablate.schemas.metrics import CohortSummary, Estimate, ModelKind, StudyEndpoint

__all__ = [
    "PREDICTION_SCHEMA_VERSION",
    "BinaryPrediction",
    "MaskSources",
    "Prediction",
    "SegmenterInfo",
    "SurvivalPrediction",
    "parse_prediction",
    "read_prediction",
]

# 1: the first versioned prediction.json (files written before it are read as 1).
# 2: where the masks came from, per row (``masks``), and the segmenter that drew automatic ones.
PREDICTION_SCHEMA_VERSION = 2

Scalar = bool | int | float | str | None


class TrustRecord(Closed):
    """How the bundle was accepted (``bundle.signing.Trust``)."""

    accepted_by: Literal["signature", "pinned"]
    description: str
    signer: str | None
    signed_at: str | None
    key_id: str | None
    key_name: str | None
    pinned_by: str | None


class BundleInfo(Closed):
    id: str  # SHA-256 of the bundle's manifest.json
    path: str
    model: str
    kind: ModelKind
    created: str | None  # when it was signed; None when accepted by its pinned id unsigned
    versions: dict[str, str | None]
    trust: TrustRecord


class ValidationInfo(Closed):
    """The model's cross-validated headline metric, from the bundle's metrics."""

    metric: Literal["auc", "harrell_c"]
    value: float | None
    ci: tuple[float, float] | None
    cohort: CohortSummary
    scheme: Literal["kfold", "by_centre"]

    @property
    def estimate(self) -> Estimate:
        return Estimate(value=self.value, ci=self.ci)


class RiskGroupCuts(Closed):
    labels: tuple[str, str, str]
    cuts: tuple[float, float]
    source: str


class SurvivalCurve(Closed):
    months: list[float]
    probability: list[float]
    source: str


class ShapleyContribution(Closed):
    """A FeatureTable column's Shapley value against the reference patient."""

    feature: str
    value: Scalar
    reference: Scalar
    contribution: float


class GradientContribution(Closed):
    """A network input's integrated gradient (no reference: the baseline is the mean)."""

    feature: str
    value: Scalar
    contribution: float


def _by_key(key: str, present: type[BaseModel], yes: str, no: str) -> Discriminator:
    """Tell two members of a union apart by whether a JSON object has ``key`` (or whether a
    built object is a ``present``)."""

    def choose(value: Any) -> str:
        if isinstance(value, dict):
            return tag(yes if key in value else no)
        return tag(yes if isinstance(value, present) else no)

    return Discriminator(choose)


Contribution = Annotated[
    Annotated[ShapleyContribution, Tag(tag("shapley"))]
    | Annotated[GradientContribution, Tag(tag("gradient"))],
    _by_key("reference", ShapleyContribution, "shapley", "gradient"),
]


class WhatIf(Closed):
    available: Literal[True]
    feature: str
    model_uses_it: bool
    margin_mm: list[float]
    risk: list[float]
    achieved_margin_mm: float | None
    note: str


class WhatIfUnavailable(Closed):
    available: Literal[False]
    reason: str


def _available(value: Any) -> str:
    available = value.get("available") if isinstance(value, dict) else isinstance(value, WhatIf)
    return tag("available" if available is True else "unavailable")


WhatIfMargin = Annotated[
    Annotated[WhatIf, Tag(tag("available"))]
    | Annotated[WhatIfUnavailable, Tag(tag("unavailable"))],
    Discriminator(_available),
]


class InputCheck(Closed):
    feature: str
    value: Scalar
    check: Literal["missing", "out_of_range", "unseen_category", "extraction_warning"]
    message: str
    reason: str | None = absent_if_none()  # why a missing input is missing


MaskOrigin = Literal["manual", "auto"]


class MaskSources(Closed):
    """Where the masks a row was measured from came from (the FeatureTable's
    ``qa.mask_source*``): the cohort's own (``manual``) or a segmenter's (``auto``), per mask
    (None: the patient has no such mask), and over them (``mixed``: some of each)."""

    source: Literal["manual", "auto", "mixed"]
    tumours: MaskOrigin | None
    ablation: MaskOrigin | None
    liver: MaskOrigin | None
    post_liver: MaskOrigin | None


class SegmenterInfo(Closed):
    """The segmentation bundle that drew the automatic masks."""

    bundle: str
    id: str  # SHA-256 of its manifest.json


class BinaryPrediction(Closed):
    patient_id: str
    tumour_id: int | None
    probability: float
    survival: None
    uncertainty: float | None  # the deep ensemble's spread
    uncertainty_method: str
    risk_group: str
    contributions: list[Contribution]  # largest first
    contribution_method: str
    what_if_margin: WhatIfMargin
    input_checks: list[InputCheck]
    # None: not measured from masks (no images), or a version 1 file (whose were manual).
    masks: MaskSources | None = None

    @property
    def value(self) -> float:
        return self.probability


class SurvivalPrediction(Closed):
    patient_id: str
    tumour_id: int | None
    risk_score: float
    survival: SurvivalCurve | None
    uncertainty: float | None
    uncertainty_method: str
    risk_group: str
    contributions: list[Contribution]
    contribution_method: str
    what_if_margin: WhatIfMargin
    input_checks: list[InputCheck]
    masks: MaskSources | None = None  # as BinaryPrediction's

    @property
    def value(self) -> float:
        return self.risk_score


PredictionRow = Annotated[
    Annotated[BinaryPrediction, Tag(tag("binary"))]
    | Annotated[SurvivalPrediction, Tag(tag("survival"))],
    _by_key("risk_score", SurvivalPrediction, "survival", "binary"),
]


class ExtractionWarning(Open):
    """A FeatureTable warning about the patient (``features.extract``)."""

    patient: str | None
    tumour: int | None = None
    step: str
    reason: str


class Prediction(Closed):
    """``prediction.json``."""

    schema_version: Literal[1, 2]
    bundle: BundleInfo
    endpoint: StudyEndpoint
    validation: ValidationInfo
    risk_groups: RiskGroupCuts
    threshold: float | None
    predictions: list[PredictionRow]  # per tumour (per patient: a patient-level endpoint)
    warnings: list[ExtractionWarning]  # everything the extraction noted about the patient
    # The bundle that drew the automatic masks (None: every mask was the cohort's own).
    segmenter: SegmenterInfo | None = None


def parse_prediction(raw: Any, where: Path | str = "prediction.json") -> Prediction:
    """A parsed ``prediction.json`` object as a ``Prediction`` (``OutputFileError`` otherwise)."""
    check_version(where, raw, PREDICTION_SCHEMA_VERSION)
    return validate(where, raw, TypeAdapter(Prediction))


def read_prediction(path: Path | str) -> Prediction:
    """``prediction.json`` as a ``Prediction``; an ``OutputFileError`` names file and field."""
    path = Path(path)
    return parse_prediction(load_json(path), path)
