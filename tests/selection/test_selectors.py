"""The selectors: scikit-learn's common checks, and each finds the signal on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

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

LIGHT = [
    NearZeroVariance(),
    Reproducible(),
    Univariate(),
    Redundancy(),
    MRMR(n_features=3),
    Embedded(cv=3, Cs=4),
    Wrapper(n_features=2),
    StabilitySelection(n_resamples=5),
]


@parametrize_with_checks(LIGHT)
def test_sklearn_common_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


INFORMATIVE = ["x0", "x1", "x2"]


def _problem(survival: bool = False, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 300
    signal = rng.normal(size=(n, 3))
    noise = rng.normal(size=(n, 20))
    copies = signal[:, [0]] + rng.normal(scale=0.1, size=(n, 3))  # near-duplicates of x0
    X = pd.DataFrame(
        np.hstack([signal, noise, copies]),
        columns=INFORMATIVE + [f"noise{i}" for i in range(20)] + ["x0a", "x0b", "x0c"],
    )
    lp = signal @ np.array([1.2, -1.0, 0.9])
    if survival:
        time = rng.exponential(np.exp(-lp) * 10)
        censor = rng.exponential(25, size=n)
        y = np.array(
            list(zip(time <= censor, np.minimum(time, censor), strict=True)),
            dtype=[("event", bool), ("time", float)],
        )
        assert 0.2 < 1 - y["event"].mean() < 0.5
        return X, y
    return X, (rng.uniform(size=n) < 1 / (1 + np.exp(-(lp - 0.5)))).astype(int)


def _names(selector, X, y, **fit) -> set[str]:  # type: ignore[no-untyped-def]
    fitted = clone(selector).fit(X, y, **fit)
    return set(fitted.get_feature_names_out())


def _noise(names: set[str]) -> int:
    return sum(n.startswith("noise") for n in names)


@pytest.mark.parametrize("survival", [False, True])
@pytest.mark.parametrize(
    "selector",
    [
        Univariate(fdr=0.05),
        Embedded(cv=3),
        MRMR(n_features=5),
        StabilitySelection(n_resamples=30),
        Wrapper(n_features=5),
    ],
    ids=lambda s: type(s).__name__,
)
def test_each_selector_finds_the_informative_features(selector, survival: bool) -> None:  # type: ignore[no-untyped-def]
    X, y = _problem(survival)
    X = X.drop(columns=["x0a", "x0b", "x0c"])  # duplicates are Redundancy's job
    names = _names(selector, X, y)
    assert set(INFORMATIVE) <= names, names
    assert _noise(names) <= (3 if isinstance(selector, (Embedded, MRMR, Wrapper)) else 1), names


@pytest.mark.parametrize("survival", [False, True])
def test_redundancy_keeps_one_of_each_correlated_group(survival: bool) -> None:
    X, y = _problem(survival)
    names = _names(Redundancy(max_correlation=0.8), X, y)
    assert len(names & {"x0", "x0a", "x0b", "x0c"}) == 1
    assert {"x1", "x2"} <= names and len(names) == 25
    forced = _names(Redundancy(max_correlation=0.8, force=("x0c",)), X, y)
    assert forced & {"x0", "x0a", "x0b", "x0c"} == {"x0c"}


def test_near_zero_variance_and_reproducibility() -> None:
    rng = np.random.default_rng(1)
    n = 200
    X = pd.DataFrame(
        {
            "rare": (rng.uniform(size=n) < 0.02).astype(float),  # 98% one value
            "binary": (rng.uniform(size=n) < 0.3).astype(float),
            "constant": np.ones(n),
            "rad.a": rng.normal(size=n),
            "rad.b": rng.normal(size=n),
        }
    )
    y = (rng.uniform(size=n) < 0.3).astype(int)
    assert _names(NearZeroVariance(), X, y) == {"binary", "rad.a", "rad.b"}
    icc = {"rad.a": 0.5, "rad.b": 0.9}
    assert _names(Reproducible(icc=icc, min_icc=0.75), X, y) == {
        "rare",
        "binary",
        "constant",
        "rad.b",
    }
    with_force = _names(Reproducible(icc=icc, force=("rad.a",)), X, y)
    assert "rad.a" in with_force
    with pytest.raises(ValueError, match="not in the data: nope"):
        Reproducible(icc=icc, force=("nope",)).fit(X, y)


def test_forced_noise_is_kept_and_a_pipeline_keeps_names_and_routes_groups() -> None:
    X, y = _problem()
    groups = np.repeat(np.arange(150), 2)
    assert "noise7" in _names(Univariate(fdr=0.05, force=("noise7",)), X, y)
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("univariate", Univariate(fdr=0.1)),
            ("redundancy", Redundancy()),
            ("embedded", Embedded(cv=3)),
        ]
    ).set_output(transform="pandas")
    pipeline.fit(X, y, embedded__groups=groups)
    out = list(pipeline.get_feature_names_out())
    assert set(out) <= set(X.columns) and {"x1", "x2"} <= set(out)
    # a refit on other rows is a fresh selection: nothing of the first fit remains
    first = clone(pipeline).fit(X.iloc[:150], y[:150])
    noise_only = X[[c for c in X.columns if c.startswith("noise")]]
    second = clone(pipeline).fit(noise_only, y)
    assert set(second.get_feature_names_out()) <= set(noise_only.columns)
    assert set(first.get_feature_names_out()) <= set(X.columns)


def test_stability_threshold_follows_the_error_bound() -> None:
    X, y = _problem()
    fitted = StabilitySelection(n_resamples=10, n_selected=5, pfer=1.0).fit(X, y)
    p = X.shape[1]
    assert fitted.threshold_ == pytest.approx(np.clip((25 / p + 1) / 2, 0.6, 0.9))
    assert fitted.frequencies_.shape == (p,)
    assert set(fitted.get_feature_names_out()) == set(
        X.columns[fitted.frequencies_ >= fitted.threshold_]
    )
