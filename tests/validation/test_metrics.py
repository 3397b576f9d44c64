"""Metrics with CIs: values against libraries, hand examples and closed forms."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from hepablate.validation import metrics as m


def _sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.8, n)
    return (rng.uniform(size=n) < p).astype(int), p


@pytest.mark.slow
def test_auc_and_its_ci_narrow_with_more_patients() -> None:
    y, p = _sample(400)
    small = m.binary_metrics(y[:100], p[:100], np.arange(100), threshold=0.3, n_bootstrap=300)
    large = m.binary_metrics(y, p, np.arange(400), threshold=0.3, n_bootstrap=300)
    assert large["auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    for result in (small, large):
        low, high = result["auc"]["ci"]
        assert low <= result["auc"]["value"] <= high
    assert np.diff(large["auc"]["ci"])[0] < np.diff(small["auc"]["ci"])[0]


@pytest.mark.slow
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


def test_cluster_bootstrap_accepts_any_labels_and_is_reproducible() -> None:
    groups = np.array(["b", "a", "b", "c", "a", "a"])
    first = list(m.cluster_bootstrap_indices(groups, 5, seed=3))
    again = list(m.cluster_bootstrap_indices(groups, 5, seed=3))
    assert all((x == y).all() for x, y in zip(first, again, strict=True))
    sizes = {"a": 3, "b": 2, "c": 1}
    for rows in first:
        labels, counts = np.unique(groups[rows], return_counts=True)
        assert all(c % sizes[str(g)] == 0 for g, c in zip(labels, counts, strict=True))


@pytest.mark.slow
def test_resamples_where_a_metric_is_undefined_are_skipped_and_counted() -> None:
    y = np.zeros(30, dtype=int)
    y[0] = 1  # a resample misses the only event with probability (29/30)^30 = 0.36
    p = np.linspace(0.05, 0.6, 30)[::-1]
    result = m.binary_metrics(y, p, np.arange(30), threshold=0.5, n_bootstrap=200, seed=1)
    auc = result["auc"]
    assert auc["value"] == pytest.approx(1.0)
    assert 0.5 * 200 <= auc["n_used"] < 0.8 * 200
    assert auc["ci"] is not None and auc["ci"][1] == pytest.approx(1.0)
    assert "n_used" not in result["brier"] and "n_used" not in result["specificity"]
    assert result["bootstrap"] == {
        "n": 200,
        "method": "percentile, resampling groups (patients)",
        "level": 0.95,
    }
    assert (result["n"], result["n_groups"], result["events"]) == (30, 30, 1)


def test_threshold_metrics_on_a_hand_made_table() -> None:
    # 4 true positives, 1 false negative, 2 false positives, 3 true negatives at t = 0.5
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.7, 0.6, 0.3, 0.2, 0.1])
    result = m.binary_metrics(y, p, np.arange(10), threshold=0.5, n_bootstrap=100)
    assert result["sensitivity"]["value"] == pytest.approx(4 / 5)
    assert result["specificity"]["value"] == pytest.approx(3 / 5)
    assert result["ppv"]["value"] == pytest.approx(4 / 6)
    assert result["npv"]["value"] == pytest.approx(3 / 4)
    assert result["accuracy"]["value"] == pytest.approx(7 / 10)
    assert result["f1"]["value"] == pytest.approx(2 * 4 / (2 * 4 + 2 + 1))
    assert result["brier"]["value"] == pytest.approx(np.mean((p - y) ** 2))


@pytest.mark.slow
def test_calibration_intercept_and_slope() -> None:
    y, p = _sample(5000, seed=3)
    good = m.binary_metrics(y, p, np.arange(5000), threshold=0.3, n_bootstrap=100)
    assert abs(good["calibration_intercept"]["value"]) < 0.15
    assert good["calibration_slope"]["value"] == pytest.approx(1.0, abs=0.15)
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))
    bad = m.binary_metrics(y, overconfident, np.arange(5000), threshold=0.3, n_bootstrap=100)
    assert bad["calibration_slope"]["value"] == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_fits_equal_statsmodels_glm(seed: int) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    p = rng.beta(1, 4, 150)
    y = (rng.uniform(size=150) < np.clip(1.4 * p, 0, 1)).astype(int)
    lp = np.log(p / (1 - p))
    binomial = sm.families.Binomial()
    intercept = sm.GLM(y, np.ones((150, 1)), family=binomial, offset=lp).fit().params[0]
    slope = sm.GLM(y, sm.add_constant(lp), family=binomial).fit().params[1]
    got = m.binary_metrics(y, p, np.arange(150), threshold=0.3, n_bootstrap=0)
    assert got["calibration_intercept"]["value"] == pytest.approx(intercept, abs=1e-7)
    assert got["calibration_slope"]["value"] == pytest.approx(slope, abs=1e-7)
    assert got["auc"]["value"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["brier"]["value"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)


def test_calibration_with_extreme_predictions_converges_or_is_undefined() -> None:
    # p of exactly 0 and 1 (clipped to 1e-6) on the wrong side: the intercept still exists;
    # the classes overlapping at one tied score (quasi-separation) leave no finite slope.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.0, 0.1, 0.6, 0.6, 0.6, 0.6, 1.0, 1.0])
    got = m.binary_metrics(y, p, np.arange(8), threshold=0.5, n_bootstrap=0)
    assert got["calibration_intercept"]["value"] is not None
    assert abs(got["calibration_intercept"]["value"]) < 20
    tied = m.binary_metrics(
        np.array([0, 0, 1, 0, 1, 1]),
        np.array([0.1, 0.2, 0.4, 0.4, 0.7, 0.8]),
        np.arange(6),
        threshold=0.5,
        n_bootstrap=0,
    )
    assert tied["calibration_slope"]["value"] is None
    assert tied["calibration_intercept"]["value"] is not None


def test_calibration_slope_is_undefined_when_the_prediction_separates_the_classes() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    result = m.binary_metrics(y, p, np.arange(6), threshold=0.5, n_bootstrap=20)
    assert result["calibration_slope"]["value"] is None
    # calibration-in-the-large stays defined: mean outcome 0.5, near the mean prediction
    assert result["calibration_intercept"]["value"] == pytest.approx(0.0, abs=0.3)
    json.dumps(result, allow_nan=False)


def test_decision_curve() -> None:
    y, p = _sample(500, seed=4)
    curve = m.decision_curve(y, p)
    prevalence = y.mean()
    for t, treat_all in zip(curve["thresholds"], curve["treat_all"], strict=True):
        assert treat_all == pytest.approx(prevalence - (1 - prevalence) * t / (1 - t))
    perfect = m.decision_curve(y, y.astype(float) * 0.99 + 0.005)
    assert perfect["model"] == pytest.approx([prevalence] * 60)
    assert curve["thresholds"][0] == 0.01 and curve["thresholds"][-1] == 0.6
    t = curve["thresholds"][19]  # 0.20, by hand
    tp, fp = np.sum((p >= t) & (y == 1)), np.sum((p >= t) & (y == 0))
    assert curve["model"][19] == pytest.approx(tp / 500 - fp / 500 * 0.2 / 0.8)
    with pytest.raises(ValueError):
        m.decision_curve(y, p, thresholds=[0.5, 1.0])
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


def test_delong_variance_of_one_auc_on_a_hand_example() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.1. AUC = 3/4. Structural components:
    # V10 = (1, 1/2) per positive, V01 = (1/2, 1) per negative (share of positives above it),
    # var = s2(V10)/m + s2(V01)/n = 0.125/2 + 0.125/2 = 0.125.
    # A constant score has AUC 1/2 and constant components, so var(difference) = var(AUC 1).
    y = np.array([1, 1, 0, 0])
    result = m.delong_test(y, [0.9, 0.4, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3])
    assert result["auc_1"] == pytest.approx(0.75) and result["auc_2"] == pytest.approx(0.5)
    assert result["difference"] == pytest.approx(0.25)
    assert result["se"] == pytest.approx(np.sqrt(0.125))
    assert result["z"] == pytest.approx(0.25 / np.sqrt(0.125))
    assert result["p_value"] == pytest.approx(0.4795, abs=1e-4)  # 2 * (1 - Phi(0.7071))
    swapped = m.delong_test(y, [0.3] * 4, [0.9, 0.4, 0.5, 0.1])
    assert swapped["difference"] == pytest.approx(-0.25)
    assert swapped["p_value"] == pytest.approx(result["p_value"])


@pytest.mark.slow
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
    y = Surv.from_arrays(event, observed)
    uno = concordance_index_ipcw(y, y, risk, tau=24)[0]
    assert result["uno_c"]["value"] == pytest.approx(uno) and result["uno_c"]["tau"] == 24
    times = np.asarray(result["td_auc"]["times"])
    assert len(times) == 10 and np.allclose(np.diff(times), np.diff(times)[0])
    assert times[0] == pytest.approx(np.percentile(observed[event], 10))
    assert times[-1] == pytest.approx(np.percentile(observed[event], 80))
    auc, mean_auc = cumulative_dynamic_auc(y, y, risk, times)
    assert result["td_auc"]["auc"] == pytest.approx(list(auc))
    assert result["td_auc"]["mean_auc"]["value"] == pytest.approx(mean_auc)
    assert result["integrated_brier"] is None
    assert (result["n"], result["n_groups"], result["events"]) == (n, n, int(event.sum()))
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
    high = risk >= cutoffs[1]
    km_time, km_survival = kaplan_meier_estimator(event[high], observed[high])
    assert split["groups"][2]["km"]["time"][1:] == pytest.approx(list(km_time))
    assert split["groups"][2]["km"]["survival"][1:] == pytest.approx(list(km_survival))
    assert split["groups"][0]["km"]["survival"][-1] > split["groups"][2]["km"]["survival"][-1]
    two = m.risk_groups(observed, event, risk, [0.0])
    assert [g["name"] for g in two["groups"]] == ["low", "high"]
    assert two["groups"][1]["n"] == int(np.sum(risk >= 0)) and two["logrank"]["df"] == 1


@pytest.mark.slow
def test_integrated_brier_score_and_times_outside_the_follow_up() -> None:
    rng = np.random.default_rng(7)
    n = 200
    scale = np.exp(-rng.normal(size=n)) * 20
    time = rng.exponential(scale)
    censor = rng.uniform(5, 60, n)
    event, observed = time <= censor, np.minimum(time, censor)
    times = np.array([2.0, 5.0, 10.0, 15.0, 1000.0])  # the last is beyond the follow-up
    survival = np.exp(-times[None, :] / scale[:, None])
    groups = np.repeat(np.arange(n // 2), 2)
    result = m.survival_metrics(
        observed,
        event,
        1 / scale,
        groups,
        horizon=12,
        times=times,
        survival=survival,
        n_bootstrap=100,
    )
    y = Surv.from_arrays(event, observed)
    expected = integrated_brier_score(y, y, survival[:, :4], times[:4])
    assert result["td_auc"]["times"] == [2.0, 5.0, 10.0, 15.0]
    assert result["integrated_brier"]["value"] == pytest.approx(expected)
    low, high = result["integrated_brier"]["ci"]
    assert low < expected < high
    assert result["n_groups"] == n // 2
    json.dumps(result, allow_nan=False)
    with pytest.raises(ValueError):
        m.survival_metrics(
            observed, event, 1 / scale, groups, horizon=12, times=times, survival=survival[:, :3]
        )


def test_outputs_are_json_without_nan_even_when_undefined() -> None:
    y = np.zeros(20, dtype=int)
    p = np.linspace(0.1, 0.9, 20)
    result = m.binary_metrics(y, p, np.arange(20), threshold=0.5, n_bootstrap=50)
    assert result["auc"]["value"] is None and result["sensitivity"]["value"] is None
    json.dumps(result, allow_nan=False)
    json.dumps(m.delong_test(y, p, p), allow_nan=False)
    json.dumps(m.decision_curve(y, p), allow_nan=False)
    json.dumps(m.calibration_points(y, p), allow_nan=False)
    for a, b in product([0, 1], repeat=2):
        assert json.dumps(m.roc_points([a, b], [0.2, 0.3]), allow_nan=False)
    time, no_event = np.arange(1.0, 21.0), np.zeros(20, dtype=bool)
    survival = m.survival_metrics(time, no_event, p, np.arange(20), horizon=5, n_bootstrap=20)
    assert survival["harrell_c"]["value"] is None and survival["td_auc"]["times"] == []
    json.dumps(survival, allow_nan=False)
    split = m.risk_groups(time, no_event, p, [2.0])  # every row in "low"
    assert split["logrank"] is None and split["groups"][1]["n"] == 0
    json.dumps(split, allow_nan=False)
    with pytest.raises(ValueError):
        m.binary_metrics([0, 2], [0.1, 0.2], [0, 1], threshold=0.5)


def test_roc_and_calibration_points() -> None:
    y, p = _sample(3000, seed=8)
    roc = m.roc_points(y, p, max_points=50)
    assert len(roc["fpr"]) <= 50 and len(roc["fpr"]) == len(roc["tpr"])
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    cal = m.calibration_points(y, p, n_bins=10)
    assert sum(cal["n"]) == 3000 and all(280 <= k <= 320 for k in cal["n"])
    # y ~ Bernoulli(p): each bin's event rate is near its mean prediction
    assert np.allclose(cal["observed"], cal["predicted"], atol=0.1)
    uniform = m.calibration_points(y, p, n_bins=5, strategy="uniform")
    assert uniform["n"][0] == int(np.sum(p < 0.2)) and len(uniform["n"]) == 4  # p < 0.8


def test_risk_tertiles_cut_the_scored_risks_in_three_equal_groups() -> None:
    risk = np.array([np.nan, 9.0, 1.0, 5.0, 3.0, 7.0, np.nan, 2.0, 8.0, 4.0, 6.0])
    cuts = m.risk_tertiles(risk)
    assert cuts == pytest.approx([11 / 3, 19 / 3])  # numpy's linear quantiles of 1..9
    labels = np.searchsorted(cuts, risk[~np.isnan(risk)], side="right")
    assert np.bincount(labels).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="no scored risk"):
        m.risk_tertiles([np.nan, np.nan])
