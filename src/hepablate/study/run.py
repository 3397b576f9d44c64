"""Leakage-proof validation of every model of a study, on the same folds.

Outer splits are grouped by patient (a patient's tumours are never split) and stratified by the
event: repeated K-fold, or by centre (train on some centres, test on the others). Inside each
outer training set the selection pipeline is fitted once (preparation, then the selectors, with
inner folds grouped by patient where a selector tunes), and each model is tuned by a grid search
over inner grouped folds. Every model sees the same outer folds and the same selected features,
so the comparison between models is paired. The test rows of a fold are only ever predicted.

A label-permutation run repeats the first repeat's folds with shuffled outcomes: its AUC (or
C-index) should be 0.5 within its CI, or something leaks.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from hepablate.parallel import run_tasks
from hepablate.study.config import ModelSpec, StudyConfig, StudyConfigError, ValidationScheme
from hepablate.study.data import StudyData
from hepablate.study.pipeline import (
    fit_selection,
    inner_splits,
    make_preparation,
    make_selection,
    make_tuned_model,
    unknown_categories_quiet,
)

__all__ = [
    "ModelRun",
    "PermutationRun",
    "Split",
    "StudyResult",
    "outer_splits",
    "run_study",
    "study_workers",
]


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray
    label: str


@dataclass
class ModelRun:
    spec: ModelSpec
    # Out-of-fold prediction per repeat and row (probability, or risk score for survival);
    # NaN where the row was not in a test set of that repeat (only with by-centre splits).
    oof: np.ndarray
    # Survival: predicted survival at ``StudyResult.times`` (repeats x rows x times).
    survival: np.ndarray | None
    best_params: list[dict[str, Any]] = field(default_factory=list)
    # Per outer split, the seconds of tuning (inner folds), fitting and predicting the test rows:
    # wall-clock and CPU (this process, all its threads) time.
    fit_seconds: list[float] = field(default_factory=list)
    fit_cpu_seconds: list[float] = field(default_factory=list)
    # The refit on all rows (``run_study(refit=True)``), wall-clock seconds.
    refit_seconds: float | None = None


@dataclass
class PermutationRun:
    """The first model validated on the first repeat's folds with shuffled outcomes ``y``."""

    model: str
    y: np.ndarray
    run: ModelRun


@dataclass
class StudyResult:
    config: StudyConfig
    data: StudyData
    splits: list[Split]
    models: dict[str, ModelRun]
    selected: list[list[str]]  # the features selected in each outer training set
    candidates: list[str]  # the features after preparation (before selection)
    times: np.ndarray | None  # survival: the evaluation times (months)
    permutations: list[PermutationRun]
    final: dict[str, Pipeline]  # every model refitted on all rows (for the bundle)
    # Per outer split, categorical values of its test rows that its training rows lack
    # (one-hot encoded as all zeros).
    unseen: list[dict[str, Any]] = field(default_factory=list)
    # Per outer split, the wall-clock seconds of preparation and selection (shared by the
    # models that see the selected features).
    selection_seconds: list[float] = field(default_factory=list)


def outer_splits(data: StudyData, scheme: ValidationScheme) -> list[Split]:
    """The outer splits: repeated grouped stratified K-fold, or train/test by centre."""
    events = data.events.astype(int)
    zeros = np.zeros(len(events))
    if scheme.scheme == "kfold":
        patients = len(np.unique(data.groups))
        if patients < scheme.folds:
            raise StudyConfigError(f"{patients} patients cannot make {scheme.folds} folds")
        splits = []
        for repeat in range(scheme.repeats):
            splitter = StratifiedGroupKFold(
                n_splits=scheme.folds, shuffle=True, random_state=scheme.seed + repeat
            )
            for fold, (train, test) in enumerate(splitter.split(zeros, events, data.groups)):
                splits.append(
                    Split(repeat, fold, train, test, f"repeat {repeat + 1} fold {fold + 1}")
                )
        return splits
    centres = sorted(set(data.centres))
    if len(centres) < 2:
        raise StudyConfigError("validation by centre needs at least two centres in the data")
    unknown = sorted(set(scheme.test_centres) - set(centres))
    if unknown:
        raise StudyConfigError(
            f"test_centres {', '.join(unknown)} not in the data (centres: {', '.join(centres)})"
        )
    tests = [list(scheme.test_centres)] if scheme.test_centres else [[c] for c in centres]
    splits = []
    for fold, test_centres in enumerate(tests):
        is_test = np.isin(data.centres, test_centres)
        splits.append(
            Split(
                0,
                fold,
                np.flatnonzero(~is_test),
                np.flatnonzero(is_test),
                "test centre " + ", ".join(test_centres),
            )
        )
    return splits


def _evaluation_times(data: StudyData) -> np.ndarray:
    times = data.y["time"][data.y["event"]]
    grid = np.unique(np.round(np.quantile(times, np.linspace(0.1, 0.8, 10)), 2))
    return grid[grid > 0]


def _survival_at(estimator: Any, Z: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    functions = estimator.predict_survival_function(Z)
    rows = []
    for function in functions:
        low, high = function.domain
        rows.append(function(np.clip(times, low, high)))
    return np.asarray(rows, dtype=float)


def _fit_predict(
    spec: ModelSpec,
    train_Z: pd.DataFrame,
    test_Z: pd.DataFrame,
    y_train: np.ndarray,
    events_train: np.ndarray,
    groups_train: np.ndarray,
    data: StudyData,
    config: StudyConfig,
    times: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any], Any]:
    validation = config.validation
    folds = min(validation.inner_folds, len(np.unique(groups_train)))
    cv = inner_splits(events_train, groups_train, folds, validation.seed)
    search = make_tuned_model(spec, cv=cv, seed=validation.seed, survival=data.survival)
    if "crops" in search.estimator.get_params():  # an image model reads the table's crops
        if data.crops is None:
            raise StudyConfigError(
                f"model {spec.name!r} needs the deep-model crops: extract the cohort with a "
                "cache and crops enabled (hepablate extract --cache DIR)"
            )
        search.estimator.set_params(crops=data.crops)
    search.fit(train_Z, y_train)
    model = search.best_estimator_
    if data.survival:
        risk = np.asarray(model.predict(test_Z), dtype=float)
        assert times is not None
        return risk, _survival_at(model, test_Z, times), search.best_params_, model
    probability = np.asarray(model.predict_proba(test_Z)[:, 1], dtype=float)
    return probability, None, search.best_params_, model


def _prepare(data: StudyData, config: StudyConfig, clinical: bool) -> Pipeline:
    X = data.X[data.clinical] if clinical else data.X
    if clinical:
        preparation = make_preparation(X, config.validation.imputation, data.log)
        pipeline = Pipeline([("prepare", preparation)])
        pipeline.set_output(transform="pandas")
        return pipeline
    return make_selection(
        X,
        config.selection,
        icc=data.icc,
        force=config.features.force,
        imputation=config.validation.imputation,
        log=data.log,
    )


def unseen_categories(X: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Per categorical column, the values of the ``test`` rows that no ``train`` row has, and
    how many test rows have them."""
    found: dict[str, Any] = {}
    for column in X.columns:
        if pd.api.types.is_numeric_dtype(X[column]):
            continue
        known = set(X[column].iloc[train].dropna().astype(str))
        values = X[column].iloc[test].dropna().astype(str)
        new = values[~values.isin(known)]
        if len(new):
            found[str(column)] = {"values": sorted(set(new)), "rows": len(new)}
    return found


@dataclass
class _SplitOutcome:
    """What one outer split gives: per model its test predictions, survival curves, tuned
    parameters and seconds (wall, CPU); the selected columns and the selection's seconds."""

    fits: dict[str, tuple[np.ndarray, np.ndarray | None, dict[str, Any], float, float]]
    selected: list[str] | None
    candidates: list[str]
    selection_seconds: float
    unseen: dict[str, Any]
    # The warnings the split raised (category, message, file, line), raised again by the
    # caller's process, where a worker's would otherwise be lost.
    warnings: list[tuple[type[Warning], str, str, int]] = field(default_factory=list)


def _one_split(
    data: StudyData,
    y: np.ndarray,
    config: StudyConfig,
    models: tuple[ModelSpec, ...],
    split: Split,
    times: np.ndarray | None,
) -> _SplitOutcome:
    """Selection fitted on the split's training rows, then every model tuned, fitted and
    predicted on its test rows; the same in this process or a worker."""
    train, test = split.train, split.test
    events = y["event"] if data.survival else y.astype(bool)
    need_clinical = any(m.clinical_only for m in models)
    need_selected = any(not m.clinical_only for m in models)
    inputs: dict[bool, tuple[pd.DataFrame, pd.DataFrame]] = {}
    selected: list[str] | None = None
    candidates: list[str] = []
    started = time.perf_counter()
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for clinical, needed in ((False, need_selected), (True, need_clinical)):
            if not needed:
                continue
            if clinical and not data.clinical:
                raise StudyConfigError(
                    "a clinical-only model needs clinical columns (features.clinical)"
                )
            pipeline = _prepare(data, config, clinical)
            X = data.X[data.clinical] if clinical else data.X
            fit_selection(pipeline, X.iloc[train], y[train], data.groups[train])
            with unknown_categories_quiet():  # recorded per split in StudyResult.unseen
                tested = pipeline.transform(X.iloc[test])
            inputs[clinical] = (pipeline.transform(X.iloc[train]), tested)
            if not clinical:
                selected = [str(c) for c in inputs[clinical][0].columns]
                candidates = [str(c) for c in pipeline[0].get_feature_names_out()]
        selection_seconds = time.perf_counter() - started
        fits = {}
        for spec in models:
            train_Z, test_Z = inputs[spec.clinical_only]
            wall, cpu = time.perf_counter(), time.process_time()
            prediction, survival, params, _ = _fit_predict(
                spec,
                train_Z,
                test_Z,
                y[train],
                events[train],
                data.groups[train],
                data,
                config,
                times,
            )
            fits[spec.name] = (
                prediction,
                survival,
                params,
                time.perf_counter() - wall,
                time.process_time() - cpu,
            )
    return _SplitOutcome(
        fits,
        selected,
        candidates,
        selection_seconds,
        unseen_categories(data.X, train, test),
        [(w.category, str(w.message), w.filename, w.lineno) for w in caught],
    )


def study_workers(config: StudyConfig, tasks: int) -> int:
    """Worker processes for the outer splits: ``config.workers``, 0 for all cores; never more
    than there are tasks."""
    return max(1, min(config.workers or os.cpu_count() or 1, tasks))


def _map_splits(
    data: StudyData,
    y: np.ndarray,
    config: StudyConfig,
    models: tuple[ModelSpec, ...],
    splits: list[Split],
    times: np.ndarray | None,
    step: Callable[[], None],
) -> list[_SplitOutcome]:
    """Every split's outcome, in split order; with several workers, the splits run in worker
    processes (:func:`hepablate.parallel.run_tasks`: loky's pool, started once and reused by
    later studies of this process) and ``step`` is called as each one finishes. Each split is
    seeded by the config alone, so the outcomes do not depend on the number of workers."""
    workers = study_workers(config, len(splits))
    shipped = replace(data, table=None) if workers > 1 else data  # the report's rows stay here
    results: dict[int, _SplitOutcome] = {}
    work = partial(_split_task, shipped, y, config, models, times)
    for i, outcome in run_tasks(work, splits, workers=workers):
        results[i] = outcome
        step()
    return [results[i] for i in range(len(splits))]


def _split_task(
    data: StudyData,
    y: np.ndarray,
    config: StudyConfig,
    models: tuple[ModelSpec, ...],
    times: np.ndarray | None,
    split: Split,
) -> _SplitOutcome:
    return _one_split(data, y, config, models, split, times)


def _validate(
    data: StudyData,
    y: np.ndarray,
    config: StudyConfig,
    models: tuple[ModelSpec, ...],
    splits: list[Split],
    times: np.ndarray | None,
    step: Callable[[], None],
    unseen: list[dict[str, Any]] | None = None,
    selection_seconds: list[float] | None = None,
) -> tuple[dict[str, ModelRun], list[list[str]], list[str]]:
    repeats = max(s.repeat for s in splits) + 1
    n = len(y)
    runs = {
        m.name: ModelRun(
            m,
            np.full((repeats, n), np.nan),
            None if times is None else np.full((repeats, n, len(times)), np.nan),
        )
        for m in models
    }
    selected: list[list[str]] = []
    candidates: list[str] = []
    outcomes = _map_splits(data, y, config, models, splits, times, step)
    registry: dict[Any, Any] = {}  # "default" filters then show a warning once per study
    for split, outcome in zip(splits, outcomes, strict=True):
        for category, message, filename, lineno in outcome.warnings:
            warnings.warn_explicit(message, category, filename, lineno, registry=registry)
        if unseen is not None and outcome.unseen:
            unseen.append({"split": split.label, "columns": outcome.unseen})
        if outcome.selected is not None:
            selected.append(outcome.selected)
            candidates = candidates or outcome.candidates
        if selection_seconds is not None:
            selection_seconds.append(outcome.selection_seconds)
        for name, (prediction, survival, params, wall, cpu) in outcome.fits.items():
            run = runs[name]
            run.fit_seconds.append(wall)
            run.fit_cpu_seconds.append(cpu)
            run.oof[split.repeat, split.test] = prediction
            if survival is not None and run.survival is not None:
                run.survival[split.repeat, split.test] = survival
            run.best_params.append(params)
    return runs, selected, candidates


def _final_models(
    data: StudyData, config: StudyConfig, runs: dict[str, ModelRun], times: np.ndarray | None
) -> dict[str, Pipeline]:
    """Every model refitted on all rows: selection, then the tuned model (the seconds of each
    go into its run's ``refit_seconds``)."""
    final = {}
    for name, run in runs.items():
        spec = run.spec
        started = time.perf_counter()
        pipeline = _prepare(data, config, spec.clinical_only)
        X = data.X[data.clinical] if spec.clinical_only else data.X
        fit_selection(pipeline, X, data.y, data.groups)
        Z = pipeline.transform(X)
        _, _, _, model = _fit_predict(
            spec, Z, Z.iloc[:1], data.y, data.events, data.groups, data, config, times
        )
        final[name] = Pipeline([*pipeline.steps, ("model", model)])
        run.refit_seconds = time.perf_counter() - started
    return final


def run_study(
    data: StudyData,
    config: StudyConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    refit: bool = True,
) -> StudyResult:
    """Validate every model of ``config`` on ``data``; refit each on all rows (``refit``)."""
    models = config.models_for(data.survival)
    splits = outer_splits(data, config.validation)
    times = _evaluation_times(data) if data.survival else None
    first_repeat = sum(1 for s in splits if s.repeat == 0)
    total = len(splits) + config.validation.permutations * first_repeat + int(refit)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    # Small tables: one BLAS/OpenMP thread per fit is faster, and gradient boosting's OpenMP
    # threads slowed a fit 36x on a busy machine (5.8 s against 0.16 s, measured on 130 rows).
    with threadpool_limits(limits=1):
        return _run(data, config, models, splits, times, step, refit)


def _run(
    data: StudyData,
    config: StudyConfig,
    models: tuple[ModelSpec, ...],
    splits: list[Split],
    times: np.ndarray | None,
    step: Callable[[], None],
    refit: bool,
) -> StudyResult:
    first_repeat = [s for s in splits if s.repeat == 0]
    permuted = [m for m in models if not m.clinical_only][:1] or list(models[:1])
    unseen: list[dict[str, Any]] = []
    selection_seconds: list[float] = []
    runs, selected, candidates = _validate(
        data, data.y, config, models, splits, times, step, unseen, selection_seconds
    )
    permutations = []
    rng = np.random.default_rng(config.validation.seed)
    for _ in range(config.validation.permutations):
        shuffled = data.y[rng.permutation(len(data.y))]
        permuted_runs, _, _ = _validate(
            data, shuffled, config, tuple(permuted), first_repeat, times, step
        )
        permutations.append(
            PermutationRun(permuted[0].name, shuffled, permuted_runs[permuted[0].name])
        )
    final = _final_models(data, config, runs, times) if refit else {}
    if refit:
        step()
    return StudyResult(
        config,
        data,
        splits,
        runs,
        selected,
        candidates,
        times,
        permutations,
        final,
        unseen,
        selection_seconds,
    )
