"""``metrics.json``: every number of a validated study (``hepablate.study.results.summarise``).

Two shapes, told apart by ``endpoint.kind``: a binary endpoint (AUC, threshold metrics, ROC,
calibration, decision curves, DeLong, a nomogram) and a time-to-event endpoint (C-indices,
time-dependent AUC, integrated Brier score, Kaplan-Meier risk groups). Undefined values are
null, never NaN. The study config is echoed as run (open: its own model validates it).

Why one module of some 530 lines: it is one set of models, the shape of one file, read top to
bottom as the file nests (estimates, curves, a model's summary, the study's); split, a reader would
follow one ``metrics.json`` across several files, and its JSON Schema is made from them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, JsonValue, Tag, TypeAdapter

from hepablate.schemas._base import (
    Closed,
    Open,
    absent_if_none,
    check_version,
    load_json,
    tag,
    validate,
)

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "BinaryMetrics",
    "BinaryModelSummary",
    "BinaryStudySummary",
    "CohortSummary",
    "EndpointInfo",
    "Estimate",
    "FoldMean",
    "ModelKind",
    "ModelMetrics",
    "ModelTime",
    "StudyEndpoint",
    "StudySummary",
    "SurvivalMetrics",
    "SurvivalModelSummary",
    "SurvivalStudySummary",
    "read_metrics",
]

# 1: the first versioned metrics.json (files written before it are read as 1).
METRICS_SCHEMA_VERSION = 1

ModelKind = Literal[
    # binary endpoints
    "logistic",
    "gradient_boosting",
    "random_forest",
    "multimodal",  # 3D CNN over the tumour's crops fused with the selected features
    "mlp",  # tabular network
    # time-to-event endpoints
    "cox",
    "random_survival_forest",
    "gradient_boosting_survival",
    "deep_surv",  # tabular network, Cox partial likelihood
    "deep_discrete",  # tabular network, logistic hazard per time interval
    "multimodal_surv",  # the multimodal network with a Cox partial-likelihood head
]

Interval = tuple[float, float]


# --- estimates -----------------------------------------------------------------------------


class Estimate(Closed):
    """A point estimate with its percentile bootstrap CI (None: undefined or too few usable
    resamples); ``n_used``: the resamples that could be scored, written when not all could."""

    value: float | None
    ci: Interval | None
    n_used: int | None = absent_if_none()


class Bootstrap(Closed):
    n: int
    method: str
    level: float


class BinaryMetrics(Closed):
    """``validation.metrics.binary_metrics``: positive means p >= ``threshold``."""

    n: int
    n_groups: int
    events: int
    threshold: float
    auc: Estimate
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    accuracy: Estimate
    f1: Estimate
    brier: Estimate
    calibration_intercept: Estimate
    calibration_slope: Estimate
    bootstrap: Bootstrap

    @property
    def headline(self) -> Estimate:
        """The metric models are ranked by: the AUC."""
        return self.auc


class UnoC(Estimate):
    tau: float  # the truncation time, months


class TimeDependentAUC(Closed):
    times: list[float]
    auc: list[float | None]
    mean_auc: Estimate


class SurvivalMetrics(Closed):
    """``validation.metrics.survival_metrics``; ``integrated_brier`` None without curves."""

    n: int
    n_groups: int
    events: int
    harrell_c: Estimate
    uno_c: UnoC
    td_auc: TimeDependentAUC
    integrated_brier: Estimate | None
    bootstrap: Bootstrap

    @property
    def headline(self) -> Estimate:
        """The metric models are ranked by: Harrell's C."""
        return self.harrell_c


def _metrics_kind(value: Any) -> str:
    if isinstance(value, dict):
        return tag("survival" if "harrell_c" in value else "binary")
    return tag("survival" if isinstance(value, SurvivalMetrics) else "binary")


# A model's metrics, of either endpoint (where the file does not say which: a bundle's).
ModelMetrics = Annotated[
    Annotated[BinaryMetrics, Tag(tag("binary"))] | Annotated[SurvivalMetrics, Tag(tag("survival"))],
    Discriminator(_metrics_kind),
]


# --- curves ---------------------------------------------------------------------------------


class RocPoints(Closed):
    fpr: list[float]
    tpr: list[float]


class CalibrationPoints(Closed):
    predicted: list[float]
    observed: list[float]
    n: list[int]


class DecisionCurve(Closed):
    thresholds: list[float]
    model: list[float]
    treat_all: list[float]
    treat_none: list[float]


class KaplanMeier(Closed):
    time: list[float]
    survival: list[float]


class RiskGroup(Closed):
    name: str
    n: int
    events: int
    km: KaplanMeier


class LogRank(Closed):
    chi2: float | None
    df: int
    p_value: float | None


class RiskGroups(Closed):
    cutoffs: list[float]
    cutoff_rule: str
    groups: list[RiskGroup]
    logrank: LogRank | None


# --- per model ------------------------------------------------------------------------------


class FoldMean(Closed):
    """The mean of per-split values with the corrected resampled t-test CI."""

    value: float | None
    ci: Interval | None
    splits: int
    method: str | None = absent_if_none()  # absent with fewer than two splits


class ModelTime(Closed):
    """``models.<name>.time``: what a model cost, in seconds.

    A split's time is the model's tuning (grid search over the inner folds, or the one fit of
    a one-point grid), its fit and the prediction of the test rows; the selection the models
    share is timed apart (``selection.seconds``). Wall-clock time depends on what else runs on
    the machine; CPU time is this process's, all its threads.
    """

    fit_seconds: float  # wall-clock, summed over the outer splits
    fit_cpu_seconds: float  # CPU, summed over the outer splits
    per_split_seconds: list[float]  # wall-clock, one per ``validation.splits``
    per_split_cpu_seconds: list[float]
    mean_split_seconds: float
    refit_seconds: float | None  # the refit on all rows (for the bundle); None without it


class BinaryModelSummary(Closed):
    kind: ModelKind
    clinical_only: bool
    metrics: BinaryMetrics
    roc: RocPoints
    calibration: CalibrationPoints
    decision_curve: DecisionCurve
    fold_mean: FoldMean | None  # k-fold validation only
    per_repeat: list[float | None]  # the headline metric of each repeat
    best_params: list[dict[str, JsonValue]]  # the tuned parameters, per outer split
    # None only in a metrics.json written before the times were recorded.
    time: ModelTime | None = None


class SurvivalModelSummary(Closed):
    kind: ModelKind
    clinical_only: bool
    metrics: SurvivalMetrics
    risk_groups: RiskGroups
    fold_mean: FoldMean | None
    per_repeat: list[float | None]
    best_params: list[dict[str, JsonValue]]
    time: ModelTime | None = None


# --- the study --------------------------------------------------------------------------------


class SelectionStepRecord(Open):
    method: str


class FeaturesRecord(Open):
    include: list[str]
    exclude: list[str]
    clinical: list[str]
    force: list[str]
    log: list[str]


class ValidationRecord(Open):
    scheme: Literal["kfold", "by_centre"]
    folds: int
    repeats: int
    inner_folds: int
    test_centres: list[str]
    seed: int
    bootstrap: int
    threshold: float | None
    horizon_months: float
    permutations: int
    imputation: str


class StudyRecord(Open):
    """The study config as run (``StudyConfig.model_dump``): what the readers use is typed,
    the rest kept as written (``hepablate.study.config`` validates a config)."""

    name: str
    endpoint: str
    features: FeaturesRecord
    selection: list[SelectionStepRecord]
    models: list[dict[str, JsonValue]]
    validation: ValidationRecord


class EndpointInfo(Open):
    """The endpoint as the cohort declares it (name, kind, table, horizon, columns...) and
    as the study found it (its analysed ``rows`` and ``events``): open, the cohort format
    decides the rest."""

    name: str
    kind: str
    horizon_months: float | None = absent_if_none()
    description: str | None = absent_if_none()
    table: str | None = absent_if_none()  # "patients" for a patient-level endpoint


class StudyEndpoint(EndpointInfo):
    """As the study found it: the analysed rows and events, and the predictor columns left
    out for being empty (``study.data.study_data``)."""

    rows: int
    events: int
    dropped_empty: list[str]


class EndpointRecord(StudyEndpoint):
    """With the ``excluded_rows`` left out of the study for an unknown outcome."""

    excluded_rows: int


class BinaryEndpoint(EndpointRecord):
    kind: Literal["binary"]


class SurvivalEndpoint(EndpointRecord):
    kind: Literal["time_to_event"]


class CohortSummary(Closed):
    rows: int
    patients: int
    events: int
    centres: dict[str, int]  # rows per centre
    candidate_columns: int


class UnseenCategory(Closed):
    values: list[str]
    rows: int


class UnseenInSplit(Closed):
    split: str
    columns: dict[str, UnseenCategory]


class ValidationSummary(Closed):
    scheme: Literal["kfold", "by_centre"]
    splits: list[str]
    prediction: str
    threshold: float | None  # None for a time-to-event endpoint
    threshold_source: str
    evaluation_times_months: list[float] | None
    unseen_categories: list[UnseenInSplit]
    unseen_categories_handling: str


class DeLong(Closed):
    auc_1: float | None
    auc_2: float | None
    difference: float | None
    se: float | None
    z: float | None
    p_value: float | None


class DeLongPair(Closed):
    """DeLong's test of the best model against another."""

    model: str
    against: str
    auc_1: float | None
    auc_2: float | None
    difference: float | None
    se: float | None
    z: float | None
    p_value: float | None


class DeepAgainstBaseline(Closed):
    deep: str
    baseline: str
    difference: FoldMean
    delong: DeLong | None  # None for a time-to-event endpoint
    verdict: str  # "<model> wins" or "tie"
    ahead: str


class Comparison(Closed):
    metric: Literal["auc", "harrell_c"]
    ranking: list[str]  # best first
    best: str
    delong: list[DeLongPair] | None
    deep_against_baselines: list[DeepAgainstBaseline]


class Permutation(Closed):
    model: str
    metric: Literal["auc", "harrell_c"]
    folds: str
    runs: list[FoldMean]
    ci_contains_chance: list[bool]


class SelectedFeature(Closed):
    feature: str
    folds_selected: int
    folds: int
    frequency: float


class SelectionSummary(Closed):
    candidates_after_preparation: int
    outer_training_sets: int
    selected_per_set: list[int]
    seconds: float  # preparation and selection, wall-clock, over the outer splits
    per_split_seconds: list[float]
    top: list[SelectedFeature]  # the 30 most often selected


class NomogramFeature(Closed):
    feature: str
    coefficient: float
    odds_ratio: float
    model_value_range: Interval
    points_range: Interval
    risk_rises_with_value: bool


class PointsToProbability(Closed):
    points: list[float]
    probability: list[float]


class Nomogram(Closed):
    model: str
    features: list[NomogramFeature]
    intercept: float
    points_per_logit: float
    points_to_probability: PointsToProbability


class BinaryStudySummary(Closed):
    """``metrics.json`` of a study of a binary endpoint."""

    schema_version: Literal[1]
    hepablate: str  # the version that wrote it
    created: str  # ISO 8601, UTC
    study: StudyRecord
    endpoint: BinaryEndpoint
    cohort: CohortSummary
    validation: ValidationSummary
    models: dict[str, BinaryModelSummary]
    by_centre: dict[str, dict[str, BinaryMetrics]] | None  # per test split, per model
    comparison: Comparison
    permutation: Permutation | None
    selection: SelectionSummary
    nomogram: Nomogram | None  # of the first logistic model that is not clinical-only
    warnings: list[str]  # what the study found wanting in its data, one line each

    @property
    def survival(self) -> bool:
        return False


class SurvivalStudySummary(Closed):
    """``metrics.json`` of a study of a time-to-event endpoint."""

    schema_version: Literal[1]
    hepablate: str
    created: str
    study: StudyRecord
    endpoint: SurvivalEndpoint
    cohort: CohortSummary
    validation: ValidationSummary
    models: dict[str, SurvivalModelSummary]
    by_centre: dict[str, dict[str, SurvivalMetrics]] | None
    comparison: Comparison
    permutation: Permutation | None
    selection: SelectionSummary
    nomogram: None
    warnings: list[str]

    @property
    def survival(self) -> bool:
        return True


_ENDPOINT_TAGS = {"binary": tag("binary"), "time_to_event": tag("survival")}


def _endpoint_kind(value: Any) -> str | None:
    if isinstance(value, BinaryStudySummary | SurvivalStudySummary):
        return tag("survival") if value.survival else tag("binary")
    if isinstance(value, dict):
        endpoint = value.get("endpoint")
        if isinstance(endpoint, dict):
            return _ENDPOINT_TAGS.get(str(endpoint.get("kind")))
    return None


StudySummary = Annotated[
    Annotated[BinaryStudySummary, Tag(tag("binary"))]
    | Annotated[SurvivalStudySummary, Tag(tag("survival"))],
    Discriminator(
        _endpoint_kind,
        custom_error_type="endpoint_kind",
        custom_error_message="endpoint.kind must be 'binary' or 'time_to_event'",
    ),
]
STUDY_SUMMARY: TypeAdapter[BinaryStudySummary | SurvivalStudySummary] = TypeAdapter(StudySummary)


def parse_metrics(
    raw: Any, where: Path | str = "metrics.json"
) -> BinaryStudySummary | SurvivalStudySummary:
    """A parsed ``metrics.json`` object as its typed summary (``OutputFileError`` otherwise)."""
    check_version(where, raw, METRICS_SCHEMA_VERSION)
    return validate(where, raw, STUDY_SUMMARY)


def read_metrics(path: Path | str) -> BinaryStudySummary | SurvivalStudySummary:
    """``metrics.json`` as its typed summary; an ``OutputFileError`` names the file and, per
    problem, the field (``models.logistic.metrics.auc: Field required``)."""
    path = Path(path)
    return parse_metrics(load_json(path), path)
