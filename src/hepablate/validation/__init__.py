"""Validation: metrics of out-of-fold predictions with percentile CIs from a bootstrap over
patients (``bootstrap``): for binary outcomes AUC, threshold metrics, Brier, calibration, the
ROC, calibration and decision curves and DeLong's test (``binary``); for time-to-event outcomes
Harrell's and Uno's C, time-dependent AUC, integrated Brier and Kaplan-Meier risk groups with
log-rank (``survival``). ``metrics`` gathers their names. It imports nothing of hepablate.
"""

from hepablate.validation.binary import (
    binary_metrics,
    calibration_points,
    decision_curve,
    delong_test,
    roc_points,
)
from hepablate.validation.bootstrap import cluster_bootstrap_indices
from hepablate.validation.survival import risk_groups, survival_metrics

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
