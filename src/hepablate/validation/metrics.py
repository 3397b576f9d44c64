"""Metrics of out-of-fold predictions, with 95% CIs from a bootstrap over patients.

Rows may be tumours, several per patient; a resample draws patients with replacement and takes
all their rows (cluster bootstrap), so the CIs account for tumours of one patient being alike.
Every function returns plain JSON-ready values: floats, lists, dicts, and None where a value is
undefined (one class only, an empty denominator), never NaN.

Methods: DeLong, DeLong & Clarke-Pearson, Biometrics 1988, with the midrank algorithm of Sun &
Xu, IEEE Signal Process Lett 2014; net benefit, Vickers & Elkin, Med Decis Making 2006;
calibration intercept and slope, Van Calster et al., J Clin Epidemiol 2016; Uno's C, Uno et al.,
Stat Med 2011; time-dependent AUC and integrated Brier score as in scikit-survival.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

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

Statistic = Callable[[np.ndarray], float | None]


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def cluster_bootstrap_indices(groups: Any, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of each resample: groups drawn with replacement, all rows of each."""
    groups = np.asarray(groups)
    _, codes = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        drawn = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[g] for g in drawn])


def _with_cis(
    statistic: Callable[[np.ndarray], dict[str, float | None]],
    groups: np.ndarray,
    n_bootstrap: int,
    seed: int,
    level: float,
) -> dict[str, dict[str, Any]]:
    """Point estimates on all rows and percentile CIs over cluster resamples, for several
    statistics computed together; a resample where one is undefined is skipped for that one."""
    values = {k: _float(v) for k, v in statistic(np.arange(len(groups))).items()}
    draws: dict[str, list[float]] = {k: [] for k in values}
    for rows in cluster_bootstrap_indices(groups, n_bootstrap, seed):
        for name, drawn in statistic(rows).items():
            drawn = _float(drawn)
            if drawn is not None:
                draws[name].append(drawn)
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        result: dict[str, Any] = {"value": value, "ci": None}
        if value is not None and len(draws[name]) >= max(20, n_bootstrap // 2):
            low, high = np.percentile(draws[name], [tail, 100 - tail])
            result["ci"] = [float(low), float(high)]
        if len(draws[name]) < n_bootstrap:
            result["n_used"] = len(draws[name])
        out[name] = result
    return out


def _with_ci(
    statistic: Statistic, groups: np.ndarray, n_bootstrap: int, seed: int, level: float
) -> dict[str, Any]:
    return _with_cis(lambda rows: {"x": statistic(rows)}, groups, n_bootstrap, seed, level)["x"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _calibration(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """Calibration-in-the-large (intercept with logit(p) as offset) and slope."""
    import statsmodels.api as sm

    if len(np.unique(y)) < 2:
        return None, None
    lp = _logit(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            intercept = sm.GLM(
                y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp
            ).fit()
            slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
        except (ValueError, np.linalg.LinAlgError):
            return None, None
    return _float(intercept.params[0]), _float(slope.params[1])


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    positive = p >= threshold
    tp = int(np.sum(positive & (y == 1)))
    fp = int(np.sum(positive & (y == 0)))
    fn = int(np.sum(~positive & (y == 1)))
    tn = int(np.sum(~positive & (y == 0)))

    def ratio(a: int, b: int) -> float | None:
        return None if b == 0 else a / b

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def binary_metrics(
    y: Any,
    p: Any,
    groups: Any,
    *,
    threshold: float,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """AUC, sensitivity, specificity, PPV, NPV (positive: p >= threshold), Brier score,
    calibration intercept and slope, each with its bootstrap CI over ``groups``."""
    y, p, groups = np.asarray(y, dtype=int), np.asarray(p, dtype=float), np.asarray(groups)

    def statistic(rows: np.ndarray) -> dict[str, float | None]:
        yy, pp = y[rows], p[rows]
        both = len(np.unique(yy)) == 2
        intercept, slope = _calibration(yy, pp)
        return {
            "auc": float(roc_auc_score(yy, pp)) if both else None,
            **_confusion(yy, pp, threshold),
            "brier": float(brier_score_loss(yy, pp, labels=[0, 1])),
            "calibration_intercept": intercept,
            "calibration_slope": slope,
        }

    result: dict[str, Any] = {
        "n": len(y),
        "n_groups": len(np.unique(groups)),
        "events": int(y.sum()),
        "threshold": float(threshold),
        **_with_cis(statistic, groups, n_bootstrap, seed, level),
    }
    result["bootstrap"] = {
        "n": n_bootstrap,
        "method": "percentile, resampling groups (patients)",
        "level": level,
    }
    return result


def roc_points(y: Any, p: Any, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve, thinned to at most ``max_points`` points for plotting."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(y, p)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def calibration_points(
    y: Any, p: Any, n_bins: int = 10, strategy: str = "quantile"
) -> dict[str, list[float]]:
    """Mean prediction and observed event rate per bin (quantile or uniform bins)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    else:
        edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    predicted, observed, counts = [], [], []
    for b in range(max(len(edges) - 1, 1)):
        rows = bins == b
        if rows.any():
            predicted.append(float(p[rows].mean()))
            observed.append(float(y[rows].mean()))
            counts.append(int(rows.sum()))
    return {"predicted": predicted, "observed": observed, "n": counts}


def decision_curve(y: Any, p: Any, thresholds: Any = None) -> dict[str, list[float]]:
    """Net benefit TP/n - FP/n * t/(1-t) of the model, of treating all and of treating none."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if thresholds is None:
        thresholds = np.round(np.arange(0.01, 0.61, 0.01), 2)
    thresholds = np.asarray(thresholds, dtype=float)
    n, prevalence = len(y), float(y.mean())
    model, treat_all = [], []
    for t in thresholds:
        odds = t / (1 - t)
        positive = p >= t
        tp = np.sum(positive & (y == 1)) / n
        fp = np.sum(positive & (y == 0)) / n
        model.append(float(tp - fp * odds))
        treat_all.append(float(prevalence - (1 - prevalence) * odds))
    return {
        "thresholds": [float(t) for t in thresholds],
        "model": model,
        "treat_all": treat_all,
        "treat_none": [0.0] * len(thresholds),
    }


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based) of ``x``, as in Sun & Xu 2014."""
    return np.asarray(stats.rankdata(x, method="average"), dtype=float)


def _structural_components(
    y: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong's V10 (per positive) and V01 (per negative) components, per model."""
    positive, negative = scores[:, y == 1], scores[:, y == 0]
    m, n = positive.shape[1], negative.shape[1]
    aucs, v10, v01 = [], [], []
    for k in range(scores.shape[0]):
        tx, ty = _midrank(positive[k]), _midrank(negative[k])
        tz = _midrank(np.concatenate([positive[k], negative[k]]))
        aucs.append((tz[:m].sum() / m - (m + 1) / 2) / n)
        v10.append((tz[:m] - tx) / n)
        v01.append(1 - (tz[m:] - ty) / m)
    return np.asarray(aucs), np.asarray(v10), np.asarray(v01)


def delong_test(y: Any, p1: Any, p2: Any) -> dict[str, float | None]:
    """DeLong's test of two correlated AUCs on the same rows (two-sided)."""
    y = np.asarray(y, dtype=int)
    scores = np.vstack([np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)])
    if len(np.unique(y)) < 2:
        return dict.fromkeys(("auc_1", "auc_2", "difference", "se", "z", "p_value"))
    aucs, v10, v01 = _structural_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    covariance = np.cov(v10) / m + np.cov(v01) / n
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ covariance @ contrast)
    difference = float(aucs[0] - aucs[1])
    if variance <= 1e-15:
        return {
            "auc_1": float(aucs[0]),
            "auc_2": float(aucs[1]),
            "difference": difference,
            "se": 0.0,
            "z": None,
            "p_value": 1.0 if abs(difference) < 1e-12 else 0.0,
        }
    se = math.sqrt(variance)
    z = difference / se
    return {
        "auc_1": float(aucs[0]),
        "auc_2": float(aucs[1]),
        "difference": difference,
        "se": se,
        "z": z,
        "p_value": float(2 * stats.norm.sf(abs(z))),
    }


def _survival_array(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    return np.array(
        list(zip(event.astype(bool), time.astype(float), strict=True)),
        dtype=[("event", bool), ("time", float)],
    )


def _default_times(time: np.ndarray, event: np.ndarray, limit: float) -> np.ndarray:
    observed = time[event]
    if len(observed) == 0:
        return np.array([])
    grid = np.unique(np.quantile(observed, np.linspace(0.1, 0.8, 10)))
    return grid[(grid > 0) & (grid < limit)]


def survival_metrics(
    time: Any,
    event: Any,
    risk: Any,
    groups: Any,
    *,
    horizon: float,
    times: Any = None,
    survival: Any = None,
    train_time: Any = None,
    train_event: Any = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Harrell's and Uno's C (truncated at ``horizon``), time-dependent AUC at ``times`` and
    its mean, integrated Brier score (when predicted ``survival`` at ``times`` is given), each
    with a bootstrap CI over ``groups``. The censoring distribution of Uno's C, the
    time-dependent AUC and the Brier score comes from ``train_time``/``train_event``."""
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    groups = np.asarray(groups)
    train = _survival_array(
        np.asarray(event if train_event is None else train_event, dtype=bool),
        np.asarray(time if train_time is None else train_time, dtype=float),
    )
    limit = min(float(time.max()), float(train["time"].max()))
    grid = _default_times(time, event, limit) if times is None else np.asarray(times, dtype=float)
    keep = grid < limit
    grid = grid[keep]
    predicted = None if survival is None else np.asarray(survival, dtype=float)[:, keep]

    def harrell(rows: np.ndarray) -> float | None:
        if not event[rows].any():
            return None
        return float(concordance_index_censored(event[rows], time[rows], risk[rows])[0])

    def uno(rows: np.ndarray) -> float | None:
        try:
            test = _survival_array(event[rows], time[rows])
            return float(concordance_index_ipcw(train, test, risk[rows], tau=horizon)[0])
        except (ValueError, ZeroDivisionError):
            return None

    def td_auc(rows: np.ndarray) -> tuple[np.ndarray, float] | None:
        inside = grid[(grid < time[rows].max()) & (grid >= time[rows].min())]
        if len(inside) == 0 or not event[rows].any():
            return None
        try:
            test = _survival_array(event[rows], time[rows])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values, mean = cumulative_dynamic_auc(train, test, risk[rows], inside)
        except (ValueError, ZeroDivisionError):
            return None
        return np.asarray(values), float(mean)

    def ibs(rows: np.ndarray) -> float | None:
        if predicted is None or len(grid) < 2:
            return None
        inside = (grid < time[rows].max()) & (grid >= time[rows].min())
        if inside.sum() < 2:
            return None
        try:
            test = _survival_array(event[rows], time[rows])
            return float(
                integrated_brier_score(train, test, predicted[rows][:, inside], grid[inside])
            )
        except (ValueError, ZeroDivisionError):
            return None

    def mean_auc(rows: np.ndarray) -> float | None:
        scored = td_auc(rows)
        return None if scored is None else scored[1]

    full = td_auc(np.arange(len(time)))
    result: dict[str, Any] = {
        "n": len(time),
        "n_groups": len(np.unique(groups)),
        "events": int(event.sum()),
        "harrell_c": _with_ci(harrell, groups, n_bootstrap, seed, level),
        "uno_c": {**_with_ci(uno, groups, n_bootstrap, seed, level), "tau": float(horizon)},
        "td_auc": {
            "times": [] if full is None else [float(t) for t in grid if t < time.max()],
            "auc": [] if full is None else [_float(v) for v in full[0]],
            "mean_auc": _with_ci(mean_auc, groups, n_bootstrap, seed, level),
        },
        "integrated_brier": (
            None if predicted is None else _with_ci(ibs, groups, n_bootstrap, seed, level)
        ),
        "bootstrap": {
            "n": n_bootstrap,
            "method": "percentile, resampling groups (patients)",
            "level": level,
        },
    }
    return result


def risk_groups(time: Any, event: Any, risk: Any, cutoffs: Any) -> dict[str, Any]:
    """Kaplan-Meier curve of each risk group (split at ``cutoffs``) and the log-rank test."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    cutoffs = sorted(float(c) for c in cutoffs)
    labels = np.searchsorted(np.asarray(cutoffs), risk, side="right")
    count = len(cutoffs) + 1
    names = (
        ["low", "intermediate", "high"]
        if count == 3
        else ["low", "high"]
        if count == 2
        else [f"group {i + 1}" for i in range(count)]
    )
    groups = []
    for index, name in enumerate(names):
        rows = labels == index
        if not rows.any():
            groups.append({"name": name, "n": 0, "events": 0, "km": {"time": [], "survival": []}})
            continue
        km_time, km_survival = kaplan_meier_estimator(event[rows], time[rows])
        groups.append(
            {
                "name": name,
                "n": int(rows.sum()),
                "events": int(event[rows].sum()),
                "km": {
                    "time": [0.0, *(float(t) for t in km_time)],
                    "survival": [1.0, *(float(s) for s in km_survival)],
                },
            }
        )
    present = np.unique(labels)
    logrank = None
    if len(present) >= 2:
        chi2, p_value = compare_survival(_survival_array(event, time), labels)
        logrank = {"chi2": float(chi2), "df": len(present) - 1, "p_value": float(p_value)}
    return {"groups": groups, "logrank": logrank}
