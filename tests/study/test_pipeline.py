"""The model step of a study: a grid search, or a one-point grid fitted directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from hepablate.study import StudyConfig, StudyConfigError, study_data
from hepablate.study.config import ModelSpec
from hepablate.study.pipeline import Untuned, make_preparation, make_tuned_model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + rng.normal(size=80) > 0).astype(int)
    return X, y


def test_a_one_point_grid_is_fitted_without_inner_folds() -> None:
    X, y = _data()
    spec = ModelSpec(name="m", kind="logistic", grid={"C": [0.5]})
    tuned = make_tuned_model(spec, cv=[], seed=0, survival=False)
    assert isinstance(tuned, Untuned)
    tuned.fit(X, y)
    assert tuned.best_params_ == {"C": 0.5}
    expected = LogisticRegression(C=0.5, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(
        tuned.best_estimator_.predict_proba(X), expected.predict_proba(X), rtol=1e-6
    )


def test_a_grid_of_several_points_is_searched_over_the_inner_folds() -> None:
    X, y = _data()
    folds = [(np.arange(40, 80), np.arange(40)), (np.arange(40), np.arange(40, 80))]
    spec = ModelSpec(name="m", kind="logistic", grid={"C": [0.01, 1.0]})
    tuned = make_tuned_model(spec, cv=folds, seed=0, survival=False)
    assert isinstance(tuned, GridSearchCV)
    tuned.fit(X, y)
    assert len(tuned.cv_results_["params"]) == 2
    assert tuned.best_params_["C"] in (0.01, 1.0)


@pytest.mark.parametrize("kind", ["mlp", "deep_surv", "deep_discrete", "multimodal"])
def test_by_default_a_network_is_fitted_once_per_split_without_inner_folds(kind: str) -> None:
    # An ensemble refitted per inner fold and candidate was most of a study's time (issue 16).
    spec = ModelSpec(name="net", kind=kind)
    tuned = make_tuned_model(spec, cv=[], seed=0, survival=kind != "mlp")
    assert isinstance(tuned, Untuned)
    if kind != "multimodal":
        assert tuned.params == {"embedding": 0}
        assert tuned.estimator.n_threads == 1


def test_a_network_grid_the_user_gives_is_still_searched_over_inner_folds() -> None:
    spec = ModelSpec(name="net", kind="deep_surv", grid={"embedding": [0, 8]})
    folds = [(np.arange(40, 80), np.arange(40)), (np.arange(40), np.arange(40, 80))]
    tuned = make_tuned_model(spec, cv=folds, seed=0, survival=True)
    assert isinstance(tuned, GridSearchCV)
    assert tuned.cv == folds


def test_log_columns_are_log1p_then_imputed_and_standardised() -> None:
    X = pd.DataFrame({"afp": [1.0, 9.0, 99.0, np.nan, 999.0], "age": [50.0, 60, 70, 80, 90]})
    prepared = make_preparation(X, log=["afp"]).fit_transform(X)
    logged = np.log1p(X["afp"])
    filled = logged.fillna(logged.median())
    expected = (filled - filled.mean()) / filled.std(ddof=0)
    np.testing.assert_allclose(prepared["afp"], expected)
    assert sorted(prepared.columns) == ["afp", "age"]


def test_a_log_column_with_negative_values_is_named() -> None:
    table = pd.DataFrame(
        {
            "group": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "clin.afp_ng_ml": [1.0, -2.0, 3.0, 4.0, 5.0, 6.0],
            "clin.age": [50.0, 60, 70, 80, 90, 55],
            "outcome.death": [0, 1, 0, 1, 0, 1],
        }
    )
    config = StudyConfig.model_validate({"endpoint": "death", "features": {"log": ["clin.afp*"]}})
    with pytest.raises(StudyConfigError, match=r"features\.log: clin\.afp_ng_ml has negative"):
        study_data(table, config)
