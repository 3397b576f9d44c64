"""The scikit-learn pipelines of a study: preparation, selection and each model.

``prepare`` imputes (median, or iterative) and scales numbers and one-hot encodes categories;
then the configured selectors run in order; then the model, tuned by a grid search over inner
folds grouped by patient. Every part is fitted on the rows it is given and nothing else, so the
validation fits all of it inside each outer training set: no selection, scaling, imputation or
tuning ever sees a test row.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers the class)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from hepablate import selection
from hepablate.models.registry import DEFAULT_GRIDS, make_model
from hepablate.study.config import ModelSpec, SelectionStep

__all__ = [
    "Untuned",
    "fit_selection",
    "inner_splits",
    "make_preparation",
    "make_selection",
    "make_tuned_model",
    "selector_names",
    "unknown_categories_quiet",
]


def make_preparation(
    X: pd.DataFrame, imputation: str = "median", log: list[str] | tuple[str, ...] = ()
) -> ColumnTransformer:
    """Impute and scale numeric columns (``log`` ones as log(1 + x) first), impute and one-hot
    encode the others."""
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    logged = [c for c in X.columns if c in set(log) and c not in categorical]
    numeric = [c for c in X.columns if c not in categorical and c not in logged]

    def imputer() -> BaseEstimator:
        if imputation == "iterative":
            return IterativeImputer(max_iter=10, random_state=0, keep_empty_features=True)
        return SimpleImputer(strategy="median", keep_empty_features=True)

    steps = []
    if numeric:
        steps.append(
            ("num", Pipeline([("impute", imputer()), ("scale", StandardScaler())]), numeric)
        )
    if logged:
        log1p = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
        steps.append(
            (
                "log",
                Pipeline([("log", log1p), ("impute", imputer()), ("scale", StandardScaler())]),
                logged,
            )
        )
    if categorical:
        steps.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "encode",
                            OneHotEncoder(
                                handle_unknown="ignore", drop="if_binary", sparse_output=False
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    transformer = ColumnTransformer(steps, verbose_feature_names_out=False)
    transformer.set_output(transform="pandas")
    return transformer


@contextmanager
def unknown_categories_quiet() -> Iterator[None]:
    """Silence the one-hot encoder's "Found unknown categories" warning (it names column
    positions, not names): callers report unseen categories themselves, by name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Found unknown categories", UserWarning)
        yield


def make_selector(step: SelectionStep, icc: dict[str, float], force: tuple[str, ...]) -> Any:
    """The selector of a config step (``hepablate.selection.SELECTORS``)."""
    return selection.make_selector(step.method, step.params, icc=icc, force=force)


def selector_names(steps: tuple[SelectionStep, ...]) -> list[str]:
    return [f"select{i}_{s.method}" for i, s in enumerate(steps)]


def make_selection(
    X: pd.DataFrame,
    steps: tuple[SelectionStep, ...],
    *,
    icc: dict[str, float],
    force: tuple[str, ...],
    imputation: str,
    log: list[str] | tuple[str, ...] = (),
) -> Pipeline:
    """``prepare`` followed by the selectors (fit with ``fit_selection``)."""
    parts: list[tuple[str, Any]] = [("prepare", make_preparation(X, imputation, log))]
    names = selector_names(steps)
    parts += [(n, make_selector(s, icc, force)) for n, s in zip(names, steps, strict=True)]
    pipeline = Pipeline(parts)
    pipeline.set_output(transform="pandas")
    return pipeline


def fit_selection(
    pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray
) -> Pipeline:
    """Fit, handing the patient groups to every selector (for their inner folds)."""
    params = {f"{name}__groups": groups for name, _ in pipeline.steps[1:]}
    return pipeline.fit(X, y, **params)


def inner_splits(
    events: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds grouped by patient and stratified by the event (binary or survival)."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(events)), events.astype(int), groups))


class Untuned(BaseEstimator):  # type: ignore[misc]
    """A grid of one point: the model fitted as it is, without inner folds.

    Same attributes as a fitted ``GridSearchCV`` (``best_estimator_``, ``best_params_``), so the
    validation treats both alike; it spares a deep model the inner refits that would only score
    the one candidate.
    """

    def __init__(self, estimator: BaseEstimator, params: dict[str, Any]) -> None:
        self.estimator = estimator
        self.params = params

    def fit(self, X: Any, y: Any) -> Untuned:
        self.best_params_ = dict(self.params)
        self.best_estimator_ = clone(self.estimator).set_params(**self.params).fit(X, y)
        return self


def make_tuned_model(
    spec: ModelSpec, *, cv: list[tuple[np.ndarray, np.ndarray]], seed: int, survival: bool
) -> GridSearchCV | Untuned:
    """The model in a grid search over the given inner folds (see ``inner_splits``); a grid
    with a single combination is fitted directly (``Untuned``)."""
    grid = dict(spec.grid if spec.grid is not None else DEFAULT_GRIDS[spec.kind])
    combinations = list(ParameterGrid(grid))
    if len(combinations) == 1:
        return Untuned(make_model(spec.kind, seed), combinations[0])
    return GridSearchCV(
        make_model(spec.kind, seed),
        grid,
        cv=cv,
        scoring=None if survival else "roc_auc",
        refit=True,
        n_jobs=1,
        error_score="raise",
    )
