"""The baselines every deep model is compared with, on the same folds.

Binary endpoints: logistic regression (shown as a nomogram), gradient boosting, random forest.
Time-to-event endpoints: Cox proportional hazards, random survival forest and gradient-boosted
Cox (scikit-survival). Each comes with a small hyperparameter grid that the validation searches
by inner grouped cross-validation; a clinical-only model is any of them on the clinical columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxPHSurvivalAnalysis

__all__ = ["DEFAULT_GRIDS", "make_model", "nomogram"]

DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "logistic": {"C": [0.01, 0.1, 1.0, 10.0]},
    "gradient_boosting": {"learning_rate": [0.03, 0.1], "max_depth": [2, 3]},
    "random_forest": {"min_samples_leaf": [3, 10]},
    "cox": {"alpha": [0.1, 1.0, 10.0, 100.0]},
    "random_survival_forest": {"min_samples_leaf": [5, 15]},
    "gradient_boosting_survival": {"learning_rate": [0.03, 0.1]},
    # One point for every network, so no inner folds: an ensemble refitted over 3 inner folds
    # for each of 2 candidates is 7 ensembles per outer split instead of 1, which made
    # deep_surv most of a study's time (87% of a 227-patient study) for no gain. Early
    # stopping on held-out patients tunes the training length, weight decay and dropout
    # regularise. The tabular networks without numeric embeddings: they did not help on ~200
    # virtual patients and moved the C-index by -0.005 to +0.016 (within the CIs) on the
    # DeepSurv data sets of 1300 to 7000 rows; a grid `embedding: [0, 8]` tunes them by inner
    # CV (docs/benchmarks.md, "Time of a study").
    "multimodal": {"weight_decay": [1e-4]},
    "mlp": {"embedding": [0]},
    "deep_surv": {"embedding": [0]},
    "deep_discrete": {"embedding": [0]},
    "multimodal_surv": {"weight_decay": [1e-4]},
}


def make_model(kind: str, seed: int = 0) -> BaseEstimator:
    """An unfitted baseline of ``kind`` (see ``DEFAULT_GRIDS`` for what gets tuned)."""
    if kind == "logistic":
        # random_state seeds the saga and liblinear solvers' shuffling (lbfgs ignores it);
        # without it saga drew from numpy's global generator and a study did not repeat.
        return LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=3, early_stopping=False, random_state=seed
        )
    if kind == "random_forest":
        return RandomForestClassifier(
            n_estimators=300, min_samples_leaf=5, max_features="sqrt", random_state=seed, n_jobs=1
        )
    if kind == "multimodal":
        from hepablate.models.multimodal import MultimodalClassifier

        return MultimodalClassifier(seed=seed)
    if kind == "multimodal_surv":
        from hepablate.models.multimodal import MultimodalSurvival

        return MultimodalSurvival(seed=seed)
    if kind in ("mlp", "deep_surv", "deep_discrete"):
        from hepablate.models import tabular

        network = {
            "mlp": tabular.MLPClassifier,
            "deep_surv": tabular.DeepSurv,
            "deep_discrete": tabular.DeepDiscreteTime,
        }[kind]
        return network(seed=seed)
    if kind == "cox":
        return CoxPHSurvivalAnalysis(alpha=1.0, ties="efron")
    if kind == "random_survival_forest":
        return RandomSurvivalForest(
            n_estimators=200, min_samples_leaf=10, max_features="sqrt", random_state=seed, n_jobs=1
        )
    if kind == "gradient_boosting_survival":
        return GradientBoostingSurvivalAnalysis(
            n_estimators=150, learning_rate=0.05, max_depth=2, subsample=0.8, random_state=seed
        )
    raise ValueError(f"unknown model kind {kind!r}")


def nomogram(model: LogisticRegression, features: list[str], X: np.ndarray) -> dict[str, Any]:
    """A logistic model as a nomogram: per feature its coefficient, odds ratio and points.

    Points are linear in the feature's contribution ``coef * x`` (x as the model sees it,
    i.e. after imputation and scaling), 0 at the least risky value seen in ``X`` and 100 for
    the feature with the widest contribution range; a patient's total points map to a
    probability through ``points_to_probability``.
    """
    coef = np.asarray(model.coef_, dtype=float).ravel()
    low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    contribution = np.stack([coef * low, coef * high])
    least, most = contribution.min(axis=0), contribution.max(axis=0)
    widest = float((most - least).max()) or 1.0
    scale = 100.0 / widest
    rows = [
        {
            "feature": name,
            "coefficient": float(c),
            "odds_ratio": float(np.exp(c)),
            "model_value_range": [float(lo), float(hi)],
            "points_range": [0.0, float((mx - mn) * scale)],
            "risk_rises_with_value": bool(c > 0),
        }
        for name, c, lo, hi, mn, mx in zip(features, coef, low, high, least, most, strict=True)
    ]
    rows.sort(key=lambda r: -r["points_range"][1])
    intercept = float(np.asarray(model.intercept_).ravel()[0]) + float(least.sum())
    max_points = float(((most - least) * scale).sum())
    grid = np.linspace(0.0, max_points, 11)
    probability = 1.0 / (1.0 + np.exp(-(intercept + grid / scale)))
    return {
        "features": rows,
        "intercept": float(np.asarray(model.intercept_).ravel()[0]),
        "points_per_logit": scale,
        "points_to_probability": {
            "points": [float(g) for g in grid],
            "probability": [float(p) for p in probability],
        },
    }
