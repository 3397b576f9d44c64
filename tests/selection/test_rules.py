"""Rules shared by every selector (forced columns, at least one column kept) and the rules of
the simple ones: near-zero variance, ICC, the stability-selection threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hepablate.selection import (
    MRMR,
    Embedded,
    NearZeroVariance,
    Redundancy,
    Reproducible,
    StabilitySelection,
    Univariate,
    Wrapper,
)
from hepablate.selection._base import as_target
from tests.selection.synthetic import DUPLICATES, binary, survival

X, Y = binary()
XS, YS = survival()


def names(selector: Any, X: pd.DataFrame = X, y: Any = Y) -> set[str]:
    return set(selector.fit(X, y).get_feature_names_out())


# --- near-zero variance (caret's nearZeroVar) -------------------------------------------------


def nzv_table() -> pd.DataFrame:
    n = 300
    rng = np.random.default_rng(3)
    rare = np.zeros(n)
    rare[:6] = 1  # 98 % one value: ratio 294 / 6 = 49 > 19, 2 distinct values = 0.7 % of rows
    binary_70 = np.zeros(n)
    binary_70[:90] = 1  # 70 / 30: ratio 2.3
    at_cut = np.zeros(n)
    at_cut[:15] = 1  # 285 / 15 = 19: not above the cut, kept
    return pd.DataFrame(
        {
            "rare": rare,
            "binary_70": binary_70,
            "at_cut": at_cut,
            "constant": np.full(n, 2.5),
            "continuous": rng.normal(size=n),
        }
    )


def test_near_zero_variance_drops_a_dominated_column_and_keeps_a_70_30_column() -> None:
    table = nzv_table()
    selector = NearZeroVariance()
    assert names(selector, table, None) == {"binary_70", "at_cut", "continuous"}
    ratio = pd.Series(selector.freq_ratio_, index=table.columns)
    assert ratio["rare"] == pytest.approx(49.0)
    assert ratio["binary_70"] == pytest.approx(210 / 90)
    assert math.isinf(ratio["constant"])
    assert selector.unique_pct_[0] == pytest.approx(2 / 300 * 100)
    # a rare value among many distinct ones is not near-zero variance (distinct > 10 %)
    many = table.assign(rare=np.where(table["rare"] == 1, np.arange(300.0), 0.0))
    many.loc[:40, "rare"] = np.arange(41.0)  # 41 distinct values: 13.7 %
    assert "rare" in names(NearZeroVariance(), many, None)


def test_near_zero_variance_ignores_y_and_keeps_one_column_of_constants() -> None:
    constants = pd.DataFrame({"a": np.ones(20), "b": np.zeros(20)})
    assert NearZeroVariance().fit(constants, np.arange(20) % 3).get_support().sum() == 1
    assert names(NearZeroVariance(force=("constant",)), nzv_table(), None) >= {"constant"}


# --- reproducibility (ICC) --------------------------------------------------------------------


def test_reproducible_drops_a_column_with_icc_below_the_minimum() -> None:
    icc = {"inf1": 0.5, "noise0": 0.9, "dup0": 0.75, "not_in_x": 0.1, "noise1": float("nan")}
    selector = Reproducible(icc=icc, min_icc=0.75)
    assert names(selector) == set(X.columns) - {"inf1"}
    values = pd.Series(selector.icc_, index=X.columns)
    assert values["inf1"] == 0.5 and values["dup0"] == 0.75
    assert values.drop(["inf1", "noise0", "dup0"]).isna().all()
    assert names(Reproducible(icc=icc, force=("inf1",))) == set(X.columns)
    assert names(Reproducible()) == set(X.columns)  # no ICC known: everything passes


def test_reproducible_needs_column_names_and_keeps_the_most_reproducible_column() -> None:
    with pytest.raises(ValueError, match="column names"):
        Reproducible(icc={"inf0": 0.1}).fit(X.to_numpy())
    two = X[["inf0", "inf1"]]
    assert names(Reproducible(icc={"inf0": 0.3, "inf1": 0.6}), two) == {"inf1"}


# --- forced columns ---------------------------------------------------------------------------

SUPERVISED = [
    Univariate(),
    Embedded(cv=3),
    MRMR(n_features=4),
    StabilitySelection(n_resamples=20),
    Wrapper(cv=3),
]


@pytest.mark.slow
@pytest.mark.parametrize("selector", SUPERVISED, ids=lambda s: type(s).__name__)
def test_force_keeps_a_pure_noise_column(selector: Any) -> None:
    assert "noise3" not in names(selector)
    forced = names(selector.set_params(force=("noise3",)))
    assert "noise3" in forced
    assert {"inf1", "inf2"} <= forced


@pytest.mark.slow
@pytest.mark.parametrize(
    "selector", [Univariate(), Embedded(cv=3), StabilitySelection(n_resamples=10)]
)
def test_force_keeps_a_pure_noise_column_survival(selector: Any) -> None:
    assert "noise3" not in names(selector, XS, YS)
    assert "noise3" in names(selector.set_params(force=("noise3",)), XS, YS)


def test_a_forced_column_represents_its_redundancy_cluster() -> None:
    chosen = names(Redundancy(force=("dup1",)))
    assert chosen & {"inf0", *DUPLICATES} == {"dup1"}


def test_mrmr_counts_forced_columns_first() -> None:
    selector = MRMR(n_features=3, force=("noise3",)).fit(X, Y)
    assert X.columns[selector.order_[0]] == "noise3"
    assert len(selector.get_feature_names_out()) == 3


@pytest.mark.parametrize(
    "selector",
    [NearZeroVariance(), Reproducible(), Univariate(), Redundancy(), MRMR(), Embedded(cv=3)],
    ids=lambda s: type(s).__name__,
)
def test_unknown_forced_names_are_an_error_naming_them(selector: Any) -> None:
    with pytest.raises(ValueError, match=r"clin\.nonexistent"):
        selector.set_params(force=("inf0", "clin.nonexistent")).fit(X, Y)
    with pytest.raises(TypeError, match="tuple"):
        selector.set_params(force="inf0").fit(X, Y)
    # without column names there is nothing to match: force is ignored
    assert selector.set_params(force=("clin.nonexistent",)).fit(X.to_numpy(), Y).n_features_in_


# --- stability selection: threshold and subsamples --------------------------------------------


def test_stability_threshold_from_the_error_bound() -> None:
    default = StabilitySelection(n_resamples=2).fit(X, Y)
    # p = 26, q = round(sqrt(0.8 * 26)) = 5: pi = (1 + 25 / 26) / 2 = 0.98, clipped to 0.9
    assert default.n_selected_ == 5
    assert default.threshold_ == 0.9
    assert default.pfer_bound_ == pytest.approx(25 / (0.8 * 26))
    loose = StabilitySelection(n_resamples=2, pfer=5.0).fit(X, Y)
    assert loose.threshold_ == 0.6  # (1 + 25 / 130) / 2 = 0.596, clipped up
    inside = StabilitySelection(n_resamples=2, n_selected=8, pfer=4.0).fit(X, Y)
    assert inside.threshold_ == pytest.approx((1 + 64 / 104) / 2)
    assert inside.pfer_bound_ == pytest.approx(4.0)
    given = StabilitySelection(n_resamples=2, threshold=0.55).fit(X, Y)
    assert given.threshold_ == 0.55


def test_stability_subsamples_half_of_the_patients_per_event_stratum() -> None:
    groups = np.arange(len(Y)) // 2  # two tumours per patient
    y = Y.copy()
    y[1::2] = y[::2]  # a patient's tumours share the outcome
    target = as_target(y)
    selector = StabilitySelection(sample_fraction=0.5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        rows = selector._subsample(rng, target, groups)
        patients, counts = np.unique(groups[rows], return_counts=True)
        assert (counts == 2).all()  # whole patients only
        with_event = np.unique(groups[y == 1])
        assert len(np.intersect1d(patients, with_event)) == round(len(with_event) / 2)
        assert len(patients) == pytest.approx(75, abs=1)
    rows = selector._subsample(rng, as_target(Y), None)
    assert Y[rows].sum() == round(Y.sum() / 2)


def test_stability_without_any_stable_column_keeps_the_most_frequent() -> None:
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, size=len(X))
    selector = StabilitySelection(n_resamples=10, threshold=1.0).fit(X, y)
    assert selector.get_support().sum() == 1
    assert selector.get_support()[int(np.argmax(selector.frequencies_))]


def test_parameters_are_checked_at_fit() -> None:
    with pytest.raises(ValueError, match="fdr"):
        Univariate(fdr=0).fit(X, Y)
    with pytest.raises(ValueError, match="sample_fraction"):
        StabilitySelection(sample_fraction=1.0).fit(X, Y)
    with pytest.raises(ValueError, match="n_features"):
        MRMR(n_features=0).fit(X, Y)
    with pytest.raises(ValueError, match="requires y"):
        Univariate().fit(X)
    with pytest.raises(ValueError, match="at least 2 patients"):
        Embedded(cv=3).fit(X, Y, groups=np.where(Y == 1, 0, np.arange(len(Y)) + 1))


ALL = [
    NearZeroVariance(),
    Reproducible(),
    Univariate(),
    Redundancy(),
    MRMR(n_features=4),
    Embedded(cv=3),
    Wrapper(n_features=4),
    StabilitySelection(n_resamples=5),
]


@pytest.mark.slow
@pytest.mark.parametrize("survival_y", [False, True], ids=["binary", "survival"])
@pytest.mark.parametrize("selector", ALL, ids=lambda s: type(s).__name__)
def test_a_constant_column_is_harmless(selector: Any, survival_y: bool) -> None:
    data, y = (XS, YS) if survival_y else (X, Y)
    data = data.assign(constant=1.0, constant_int=0)
    chosen = names(selector, data, y)
    if not isinstance(selector, (Reproducible, Redundancy)):  # these two judge no variance
        assert not chosen & {"constant", "constant_int"}
    assert "inf1" in chosen
