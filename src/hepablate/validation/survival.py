"""Metrics of a time-to-event outcome's out-of-fold risks: Harrell's and Uno's C,
time-dependent AUC and integrated Brier score (with CIs), Kaplan-Meier risk groups and log-rank.

Methods: Harrell's C, Harrell et al., Stat Med 1996; Uno's C, Uno et al., Stat Med 2011;
cumulative/dynamic AUC, Uno et al., JASA 2007 and Hung & Chiang, Biometrics 2010; integrated
Brier score, Graf et al., Stat Med 1999 (all four as implemented in scikit-survival).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np

from hepablate.validation.bootstrap import bootstrap_info, check_level, finite_or_none, with_cis

__all__ = ["risk_groups", "risk_tertiles", "survival_metrics"]

# What scikit-survival raises on data it cannot score (times out of range, no comparable pairs).
SKSURV_ERRORS = (ValueError, ZeroDivisionError)


def _survival_array(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    out = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    out["event"], out["time"] = event.astype(bool), time.astype(float)
    return out


def _default_times(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """10 evenly spaced times from the 10th to the 80th percentile of observed event times."""
    observed = time[event]
    if len(observed) == 0:
        return np.array([], dtype=float)
    low, high = np.percentile(observed, [10, 80])
    return np.asarray(np.unique(np.linspace(low, high, 10)), dtype=float)


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
    """Harrell's C, Uno's C truncated at ``horizon``, cumulative/dynamic AUC at ``times`` and
    its mean, and the integrated Brier score (only when ``survival``, predicted survival at
    ``times`` of shape rows x times, is given), each with a percentile CI from resampling
    ``groups`` (patients). ``risk``: higher means earlier events.

    The censoring distribution of Uno's C, the AUC and the Brier score is estimated from
    ``train_time``/``train_event`` (default: these rows). ``times`` default: 10 evenly spaced
    times from the 10th to the 80th percentile of observed event times. Times outside what
    scikit-survival accepts (at least the shortest and below the longest follow-up of these
    rows, below the longest of the censoring data) are dropped; ``td_auc.times`` lists those
    used. A resample on which scikit-survival raises, or that does not cover all used times,
    is skipped for the metric concerned.
    """
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    check_level(level, n_bootstrap)
    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event, dtype=bool).ravel()
    risk = np.asarray(risk, dtype=float).ravel()
    groups = np.asarray(groups).ravel()
    if not len(time) == len(event) == len(risk) == len(groups):
        raise ValueError("time, event, risk and groups must have the same number of rows")
    if len(time) == 0:
        raise ValueError("no rows")
    train = _survival_array(
        np.asarray(event if train_event is None else train_event, dtype=bool).ravel(),
        np.asarray(time if train_time is None else train_time, dtype=float).ravel(),
    )
    grid = _default_times(time, event) if times is None else np.asarray(times, dtype=float).ravel()
    predicted = None
    if survival is not None:
        if times is None:
            raise ValueError("survival needs the times at which it was predicted")
        predicted = np.asarray(survival, dtype=float)
        if predicted.shape != (len(time), len(grid)):
            raise ValueError(f"survival has shape {predicted.shape}, expected (rows, times)")
    limit = min(float(time.max()), float(train["time"].max()))
    keep = (grid >= time.min()) & (grid < limit)
    grid = grid[keep]
    if predicted is not None:
        predicted = predicted[:, keep]

    def covers(rows: np.ndarray) -> bool:
        return len(grid) > 0 and grid.min() >= time[rows].min() and grid.max() < time[rows].max()

    def td_auc(rows: np.ndarray) -> tuple[np.ndarray, float] | None:
        if not covers(rows) or not event[rows].any():
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                test = _survival_array(event[rows], time[rows])
                values, mean = cumulative_dynamic_auc(train, test, risk[rows], grid)
        except SKSURV_ERRORS:
            return None
        return np.asarray(values, dtype=float), float(mean)

    def statistics(rows: np.ndarray) -> dict[str, float | None]:
        test = _survival_array(event[rows], time[rows])
        out: dict[str, float | None] = dict.fromkeys(
            ("harrell_c", "uno_c", "mean_auc", "integrated_brier")
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if event[rows].any():
                with contextlib.suppress(*SKSURV_ERRORS):
                    out["harrell_c"] = concordance_index_censored(
                        event[rows], time[rows], risk[rows]
                    )[0]
                with contextlib.suppress(*SKSURV_ERRORS):
                    out["uno_c"] = concordance_index_ipcw(train, test, risk[rows], tau=horizon)[0]
            scored = td_auc(rows)
            out["mean_auc"] = None if scored is None else scored[1]
            if predicted is not None and len(grid) >= 2 and covers(rows):
                with contextlib.suppress(*SKSURV_ERRORS):
                    out["integrated_brier"] = integrated_brier_score(
                        train, test, predicted[rows], grid
                    )
        return out

    scored = with_cis(statistics, groups, n_bootstrap, seed, level)
    full = td_auc(np.arange(len(time)))
    return {
        "n": len(time),
        "n_groups": len(np.unique(groups)),
        "events": int(event.sum()),
        "harrell_c": scored["harrell_c"],
        "uno_c": {**scored["uno_c"], "tau": float(horizon)},
        "td_auc": {
            "times": [] if full is None else [float(t) for t in grid],
            "auc": [] if full is None else [finite_or_none(v) for v in full[0]],
            "mean_auc": scored["mean_auc"],
        },
        "integrated_brier": None if predicted is None else scored["integrated_brier"],
        "bootstrap": bootstrap_info(n_bootstrap, level),
    }


def _group_names(count: int) -> list[str]:
    if count == 3:
        return ["low", "intermediate", "high"]
    if count == 2:
        return ["low", "high"]
    return [f"group {i + 1}" for i in range(count)]


def risk_tertiles(risk: Any) -> list[float]:
    """The two cut-offs of the low, middle and high risk groups: the tertiles of the scored
    (non-NaN) risks. The one rule of the study's risk groups and of a bundle's."""
    values = np.asarray(risk, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("no scored risk to split into tertiles")
    return [float(q) for q in np.quantile(values, [1 / 3, 2 / 3])]


def risk_groups(time: Any, event: Any, risk: Any, cutoffs: Any) -> dict[str, Any]:
    """Kaplan-Meier curve (starting at time 0, survival 1) of each risk group and the log-rank
    test across the non-empty groups (None with fewer than two). Groups split ``risk`` at the
    sorted ``cutoffs``; a risk equal to a cutoff goes to the higher group."""
    from sksurv.compare import compare_survival
    from sksurv.nonparametric import kaplan_meier_estimator

    time = np.asarray(time, dtype=float).ravel()
    event = np.asarray(event, dtype=bool).ravel()
    risk = np.asarray(risk, dtype=float).ravel()
    if not len(time) == len(event) == len(risk):
        raise ValueError("time, event and risk must have the same number of rows")
    edges = np.sort(np.asarray(cutoffs, dtype=float).ravel())
    labels = np.searchsorted(edges, risk, side="right")
    groups = []
    for index, name in enumerate(_group_names(len(edges) + 1)):
        rows = labels == index
        km: dict[str, list[float]] = {"time": [], "survival": []}
        if rows.any():
            km_time, km_survival = kaplan_meier_estimator(event[rows], time[rows])
            km = {
                "time": [0.0, *(float(t) for t in km_time)],
                "survival": [1.0, *(float(s) for s in km_survival)],
            }
        groups.append(
            {"name": name, "n": int(rows.sum()), "events": int(event[rows].sum()), "km": km}
        )
    present = np.unique(labels)
    logrank = None
    if len(present) >= 2:
        chi2, p_value = compare_survival(_survival_array(event, time), labels)
        logrank = {
            "chi2": finite_or_none(chi2),
            "df": len(present) - 1,
            "p_value": finite_or_none(p_value),
        }
    return {"groups": groups, "logrank": logrank}
