"""Metrics of out-of-fold predictions, with percentile CIs from a bootstrap over patients: the
names of ``binary`` (binary outcomes), ``survival`` (time-to-event outcomes) and ``bootstrap``
(the cluster bootstrap), in one place.

Every function returns plain JSON-ready values: floats, ints, lists, dicts, and None where a
value is undefined (one class only, an empty denominator), never NaN.
"""

from __future__ import annotations

from hepablate.validation.binary import (
    binary_metrics,
    calibration_points,
    decision_curve,
    delong_test,
    roc_points,
)
from hepablate.validation.bootstrap import cluster_bootstrap_indices
from hepablate.validation.survival import risk_groups, risk_tertiles, survival_metrics

__all__ = [
    "binary_metrics",
    "calibration_points",
    "cluster_bootstrap_indices",
    "decision_curve",
    "delong_test",
    "risk_groups",
    "risk_tertiles",
    "roc_points",
    "survival_metrics",
]
