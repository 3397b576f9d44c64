"""Validation: metrics of out-of-fold predictions with confidence intervals."""

from hepablate.validation.metrics import (
    binary_metrics,
    calibration_points,
    cluster_bootstrap_indices,
    decision_curve,
    delong_test,
    risk_groups,
    roc_points,
    survival_metrics,
)

__all__ = [
    "binary_metrics",
    "calibration_points",
    "cluster_bootstrap_indices",
    "decision_curve",
    "delong_test",
    "risk_groups",
    "roc_points",
    "survival_metrics",
]
