"""Metrics with CIs: values against libraries, hand examples and closed forms."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored

from hepablate.validation import metrics as m


def _sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.8, n)
    return (rng.uniform(size=n) < p).astype(int), p


def test_auc_and_its_ci_narrow_with_more_patients() -> None:
    y, p = _sample(400)
    small = m.binary_metrics(y[:100], p[:100], np.arange(100), threshold=0.3, n_bootstrap=300)
    large = m.binary_metrics(y, p, np.arange(400), threshold=0.3, n_bootstrap=300)
    assert large["auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    for result in (small, large):
        low, high = result["auc"]["ci"]
        assert low <= result["auc"]["value"] <= high
    assert np.diff(large["auc"]["ci"])[0] < np.diff(small["auc"]["ci"])[0]


def test_the_cluster_bootstrap_resamples_whole_patients_and_widens_the_ci() -> None:
    groups = np.repeat(np.arange(50), 3)
    for rows in m.cluster_bootstrap_indices(groups, 20, seed=1):
        drawn = groups[rows]
        _values, counts = np.unique(drawn, return_counts=True)
        assert (counts % 3 == 0).all() and len(rows) == 150
    y, p = _sample(50, seed=2)
    y3, p3 = np.repeat(y, 3), np.repeat(p, 3)  # each patient's rows are identical
    clustered = m.binary_metrics(y3, p3, groups, threshold=0.3, n_bootstrap=400)
    naive = m.binary_metrics(y3, p3, np.arange(150), threshold=0.3, n_bootstrap=400)
    assert np.diff(clustered["auc"]["ci"])[0] > 1.3 * np.diff(naive["auc"]["ci"])[0]


def test_threshold_metrics_on_a_hand_made_table() -> None:
    # 4 true positives, 1 false negative, 2 false positives, 3 true negatives at t = 0.5
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.7, 0.6, 0.3, 0.2, 0.1])
    result = m.binary_metrics(y, p, np.arange(10), threshold=0.5, n_bootstrap=100)
    assert result["sensitivity"]["value"] == pytest.approx(4 / 5)
    assert result["specificity"]["value"] == pytest.approx(3 / 5)
    assert result["ppv"]["value"] == pytest.approx(4 / 6)
    assert result["npv"]["value"] == pytest.approx(3 / 4)
    assert result["brier"]["value"] == pytest.approx(np.mean((p - y) ** 2))


def test_calibration_intercept_and_slope() -> None:
    y, p = _sample(5000, seed=3)
    good = m.binary_metrics(y, p, np.arange(5000), threshold=0.3, n_bootstrap=100)
    assert abs(good["calibration_intercept"]["value"]) < 0.15
    assert good["calibration_slope"]["value"] == pytest.approx(1.0, abs=0.15)
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))
    bad = m.binary_metrics(y, overconfident, np.arange(5000), threshold=0.3, n_bootstrap=100)
    assert bad["calibration_slope"]["value"] == pytest.approx(0.5, abs=0.08)


def test_decision_curve() -> None:
    y, p = _sample(500, seed=4)
    curve = m.decision_curve(y, p)
    prevalence = y.mean()
    for t, treat_all in zip(curve["thresholds"], curve["treat_all"], strict=True):
        assert treat_all == pytest.approx(prevalence - (1 - prevalence) * t / (1 - t))
    perfect = m.decision_curve(y, y.astype(float) * 0.99 + 0.005)
    assert perfect["model"][10] == pytest.approx(prevalence)
    assert curve["treat_none"] == [0.0] * len(curve["thresholds"])


def _delong_brute_force(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Variance of AUC(a) - AUC(b) from the O(n^2) structural components of DeLong 1988."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else 0.5 if x == z else 0.0

    components = []
    for s in (a, b):
        v10 = np.array([np.mean([psi(s[i], s[j]) for j in neg]) for i in pos])
        v01 = np.array([np.mean([psi(s[i], s[j]) for i in pos]) for j in neg])
        components.append((v10, v01))
    s10 = np.cov(np.vstack([components[0][0], components[1][0]]))
    s01 = np.cov(np.vstack([components[0][1], components[1][1]]))
    c = np.array([1.0, -1.0])
    return float(c @ (s10 / len(pos) + s01 / len(neg)) @ c)


def test_delong_against_the_brute_force_components() -> None:
    rng = np.random.default_rng(5)
    y = (rng.uniform(size=60) < 0.4).astype(int)
    a = np.round(y + rng.normal(size=60), 1)  # rounding makes ties
    b = np.round(y * 0.5 + rng.normal(size=60), 1)
    result = m.delong_test(y, a, b)
    assert result["auc_1"] == pytest.approx(roc_auc_score(y, a))
    assert result["auc_2"] == pytest.approx(roc_auc_score(y, b))
    assert result["se"] ** 2 == pytest.approx(_delong_brute_force(y, a, b))
    same = m.delong_test(y, a, a)
    assert same["p_value"] == 1.0 and same["difference"] == 0.0


def test_survival_metrics_and_risk_groups() -> None:
    rng = np.random.default_rng(6)
    n = 300
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk) * 20)
    censor = rng.uniform(5, 60, n)
    event, observed = time <= censor, np.minimum(time, censor)
    groups = np.arange(n)
    result = m.survival_metrics(observed, event, risk, groups, horizon=24, n_bootstrap=200)
    expected = concordance_index_censored(event, observed, risk)[0]
    assert result["harrell_c"]["value"] == pytest.approx(expected)
    low, high = result["harrell_c"]["ci"]
    assert low < expected < high and expected > 0.6
    assert result["uno_c"]["value"] > 0.6 and result["td_auc"]["times"]
    perfect = m.survival_metrics(
        observed[event], event[event], -observed[event], groups[event], horizon=24, n_bootstrap=50
    )
    assert perfect["harrell_c"]["value"] == pytest.approx(1.0)

    cutoffs = list(np.quantile(risk, [1 / 3, 2 / 3]))
    split = m.risk_groups(observed, event, risk, cutoffs)
    assert [g["name"] for g in split["groups"]] == ["low", "intermediate", "high"]
    assert sum(g["n"] for g in split["groups"]) == n
    assert all(g["km"]["survival"][0] == 1.0 for g in split["groups"])
    assert split["logrank"]["p_value"] < 0.001 and split["logrank"]["df"] == 2


def test_outputs_are_json_without_nan_even_when_undefined() -> None:
    y = np.zeros(20, dtype=int)
    p = np.linspace(0.1, 0.9, 20)
    result = m.binary_metrics(y, p, np.arange(20), threshold=0.5, n_bootstrap=50)
    assert result["auc"]["value"] is None and result["sensitivity"]["value"] is None
    json.dumps(result, allow_nan=False)
    json.dumps(m.delong_test(y, p, p), allow_nan=False)
    json.dumps(m.decision_curve(y, p), allow_nan=False)
    for a, b in product([0, 1], repeat=2):
        assert json.dumps(m.roc_points([a, b], [0.2, 0.3]), allow_nan=False)
