"""Selectors in a scikit-learn Pipeline: pandas output and feature names, patient groups routed
to the inner cross-validation, and clean refits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hepablate.selection import Embedded, Redundancy, Univariate, Wrapper, model_based
from tests.selection.synthetic import DUPLICATES, INFORMATIVE, NOISE, binary, survival

X, Y = binary()
GROUPS = np.arange(len(Y)) // 2  # two tumours per patient


def pipeline() -> Pipeline:
    steps = Pipeline(
        [
            ("scale", StandardScaler()),
            ("univariate", Univariate()),
            ("redundancy", Redundancy()),
            ("embedded", Embedded(cv=3)),
        ]
    )
    return steps.set_output(transform="pandas")


@pytest.fixture
def recorded_splits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list[Any]]]:
    """(groups, splits) of every inner cross-validation of the model-based selectors."""
    calls: list[tuple[Any, list[Any]]] = []
    original = model_based.inner_splits

    def spy(target: Any, groups: Any, cv: int, seed: int | None) -> list[Any]:
        splits = original(target, groups, cv, seed)
        calls.append((groups, splits))
        return splits

    monkeypatch.setattr(model_based, "inner_splits", spy)
    return calls


def test_pipeline_keeps_names_and_routes_groups_to_the_inner_folds(
    recorded_splits: list[tuple[Any, list[Any]]],
) -> None:
    fitted = pipeline().fit(X, Y, embedded__groups=GROUPS)
    out = list(fitted.get_feature_names_out())
    assert set(out) <= set(X.columns)
    assert set(INFORMATIVE) <= set(out)
    assert not set(out) & set(DUPLICATES)  # Redundancy kept inf0 for its group
    assert len(set(out) & set(NOISE)) <= 1
    Z = fitted.transform(X)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == out
    np.testing.assert_allclose(Z["inf1"], (X["inf1"] - X["inf1"].mean()) / X["inf1"].std(ddof=0))
    # the groups reached the Embedded step's inner cross-validation, whose folds split patients
    ((groups, splits),) = recorded_splits
    np.testing.assert_array_equal(groups, GROUPS)
    assert len(splits) == 3
    for train, test in splits:
        assert not set(GROUPS[train]) & set(GROUPS[test])


def test_without_groups_the_inner_folds_are_stratified_rows(
    recorded_splits: list[tuple[Any, list[Any]]],
) -> None:
    pipeline().fit(X, Y)
    ((groups, splits),) = recorded_splits
    assert groups is None
    shares = [Y[test].mean() for _, test in splits]
    assert max(shares) - min(shares) < 0.02
    patients_split = sum(bool(set(GROUPS[a]) & set(GROUPS[b])) for a, b in splits)
    assert patients_split == 3  # rows of one patient land on both sides: why groups matter


def test_survival_pipeline() -> None:
    XS, YS = survival()
    fitted = pipeline().fit(XS, YS, embedded__groups=GROUPS)
    out = set(fitted.get_feature_names_out())
    assert set(INFORMATIVE) <= out <= set(XS.columns)
    assert not out & set(NOISE)


def test_a_clone_refitted_on_other_rows_selects_afresh() -> None:
    first = pipeline().fit(X.iloc[:200], Y[:200])
    before = list(first.get_feature_names_out())
    # another outcome, driven by two noise columns, on the other rows
    rng = np.random.default_rng(11)
    rows = np.arange(100, 300)
    logit = 2.0 * X["noise4"].to_numpy()[rows] - 2.0 * X["noise5"].to_numpy()[rows]
    other = (rng.uniform(size=len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)
    second = clone(first).fit(X.iloc[rows], other)
    after = set(second.get_feature_names_out())
    assert {"noise4", "noise5"} <= after
    assert not after & set(INFORMATIVE)
    # identical to a never-fitted pipeline; the original is untouched
    assert after == set(pipeline().fit(X.iloc[rows], other).get_feature_names_out())
    assert list(first.get_feature_names_out()) == before
    # refitting the same object gives the same as fresh: no state carried between fits
    first.fit(X.iloc[rows], other)
    assert set(first.get_feature_names_out()) == after
    embedded = first.named_steps["embedded"]
    assert embedded.coef_.shape == (embedded.n_features_in_,)


@pytest.mark.slow
def test_a_refit_with_other_settings_leaves_nothing_of_the_first_fit() -> None:
    wrapper = Wrapper(cv=3).fit(X, Y)
    assert hasattr(wrapper, "cv_scores_")
    wrapper.set_params(n_features=2).fit(X[["inf0", "inf1", "noise0"]], Y)
    assert not hasattr(wrapper, "cv_scores_")
    assert list(wrapper.get_feature_names_out()) == ["inf0", "inf1"]
    wrapper.fit(X[["inf0", "inf1", "noise0"]].to_numpy(), Y)
    assert not hasattr(wrapper, "feature_names_in_")
