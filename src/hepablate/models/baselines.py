"""The baselines every deep model is compared with, on the same folds.

Binary endpoints: logistic regression (shown as a nomogram), gradient boosting, random forest.
Time-to-event endpoints: Cox proportional hazards, random survival forest and gradient-boosted
Cox (scikit-survival). Their settings and the small hyperparameter grids that the validation
searches by inner grouped cross-validation are their entries in ``hepablate.models.registry``; a
clinical-only model is any of them on the clinical columns. Here: the logistic model as a
nomogram.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

__all__ = ["nomogram"]


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
