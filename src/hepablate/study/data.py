"""The rows, predictors and outcome of a study, taken from a FeatureTable.

Rows whose outcome is unknown for the endpoint (e.g. censored before a binary endpoint's
horizon) are left out and counted. Reading a FeatureTable and its row rules live in
:mod:`hepablate.features.table`; extracting a cohort folder for a study, in :mod:`hepablate.app`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hepablate.features.table import coerce_features, one_row_per_patient
from hepablate.study.config import StudyConfig, StudyConfigError

__all__ = ["StudyData", "check_folds", "study_data"]

# Fewer events than this: a warning that the study can hardly estimate anything (ten events
# per candidate predictor is the classic floor; with fewer than ten in all, not even one).
FEW_EVENTS = 10


@dataclass
class StudyData:
    """Everything the validation needs, row-aligned."""

    X: pd.DataFrame  # candidate predictors: float columns and object (category) columns
    y: np.ndarray  # 0/1 ints, or a structured array (event, time) for time-to-event
    groups: np.ndarray  # patient id of each row: folds never split a patient
    centres: np.ndarray
    survival: bool
    endpoint: dict[str, Any]
    clinical: list[str]  # the columns of clinical-only models
    icc: dict[str, float] = field(default_factory=dict)
    excluded_rows: int = 0
    table: pd.DataFrame | None = None  # the analysed rows of the FeatureTable (for table 1)
    # Where the FeatureTable's deep-model crops are (its attrs), for image models; None: none.
    crops: dict[str, Any] | None = None
    log: list[str] = field(default_factory=list)  # columns taken as log(1 + x) (features.log)

    @property
    def events(self) -> np.ndarray:
        return self.y["event"] if self.survival else self.y.astype(bool)


def _matching(columns: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if any(fnmatch.fnmatchcase(c, p) for p in patterns)]


def _endpoint(table: pd.DataFrame, name: str) -> dict[str, Any]:
    declared = {e["name"]: e for e in table.attrs.get("hepablate", {}).get("endpoints", [])}
    if name in declared:
        return dict(declared[name])
    if f"outcome.{name}" in table:
        return {"name": name, "kind": "binary"}
    if f"outcome.{name}.time_months" in table:
        return {"name": name, "kind": "time_to_event"}
    available = sorted(
        {c.split(".")[1] for c in table.columns if c.startswith("outcome.") and "." in c}
    )
    raise StudyConfigError(
        f"endpoint {name!r} is not in the FeatureTable (endpoints: {', '.join(available) or '-'})"
    )


def study_data(table: pd.DataFrame, config: StudyConfig) -> StudyData:
    """Rows with a known outcome, the candidate predictors, groups and centres."""
    endpoint = _endpoint(table, config.endpoint)
    if endpoint.get("table") == "patients":
        table = one_row_per_patient(table)
    survival = endpoint["kind"] == "time_to_event"
    name = config.endpoint
    if survival:
        time = table[f"outcome.{name}.time_months"].astype("Float64")
        event = table[f"outcome.{name}.event"].astype("boolean")
        known = (time.notna() & event.notna()).to_numpy(dtype=bool)
    else:
        label = table[f"outcome.{name}"].astype("Int64")
        known = label.notna().to_numpy(dtype=bool)
    rows = table.loc[known]
    if survival:
        y = np.array(
            list(
                zip(
                    event[known].to_numpy(dtype=bool),
                    time[known].to_numpy(dtype=float),
                    strict=True,
                )
            ),
            dtype=[("event", bool), ("time", float)],
        )
    else:
        y = label[known].to_numpy(dtype=int)
    columns = [str(c) for c in table.columns]
    candidates = [
        c
        for c in _matching(columns, config.features.include)
        if c not in _matching(columns, config.features.exclude)
        and not c.startswith(("outcome.", "qa."))
        and c not in ("group", "centre")
    ]
    if not candidates:
        raise StudyConfigError(
            f"no predictor matches features.include {list(config.features.include)}"
        )
    empty = [c for c in candidates if rows[c].isna().all()]
    candidates = [c for c in candidates if c not in empty]
    X = coerce_features(rows[candidates])
    groups = (
        rows["group"].astype(str).to_numpy()
        if "group" in rows
        else np.asarray([str(i) for i in rows.index])
    )
    centres = (
        rows["centre"].astype(str).to_numpy() if "centre" in rows else np.full(len(rows), "all")
    )
    robustness = table.attrs.get("hepablate", {}).get("robustness") or {}
    events = int(y["event"].sum()) if survival else int(y.sum())
    if events < 2 or events > len(y) - 2:
        raise StudyConfigError(
            f"endpoint {name!r}: {events} events in {len(y)} rows; too few to validate a model"
        )
    return StudyData(
        X=X,
        y=y,
        groups=groups,
        centres=centres,
        survival=survival,
        endpoint={**endpoint, "rows": len(y), "events": events, "dropped_empty": empty},
        clinical=_matching(candidates, config.features.clinical),
        icc={str(k): float(v) for k, v in (robustness.get("icc") or {}).items()},
        excluded_rows=int((~known).sum()),
        table=rows,
        crops=table.attrs.get("hepablate", {}).get("crops"),
        log=_log_columns(X, config.features.log),
    )


def _log_columns(X: pd.DataFrame, patterns: tuple[str, ...]) -> list[str]:
    """The candidate columns of ``features.log``: numeric and never negative, or an error."""
    columns = _matching([str(c) for c in X.columns], patterns)
    for column in columns:
        if not pd.api.types.is_numeric_dtype(X[column]):
            raise StudyConfigError(f"features.log: {column} is not numeric")
        if (X[column].dropna() < 0).any():
            raise StudyConfigError(
                f"features.log: {column} has negative values; log(1 + x) needs x >= 0"
            )
    return columns


def check_folds(data: StudyData, config: StudyConfig) -> list[str]:
    """The validation's folds checked before any fit, on the splits the study will use.

    A ``StudyConfigError`` when a model cannot be fitted or tuned: an outer training set or
    an inner training fold without events (or, binary, without non-events), or, for a
    time-to-event model whose grid is searched, an inner test fold without events (the
    C-index of a fold without events does not exist). Otherwise the warnings, one line each:
    outer test sets on which the headline metric is undefined, inner test folds that cannot
    score a binary model's candidates.
    """
    import warnings

    from sklearn.model_selection import ParameterGrid

    from hepablate.models import DEFAULT_GRIDS
    from hepablate.study.pipeline import inner_splits
    from hepablate.study.run import outer_splits

    name, events = config.endpoint, data.events.astype(bool)
    total = int(events.sum())
    metric = "C-index" if data.survival else "AUC"
    models = config.models_for(data.survival)
    searched = [
        spec.name
        for spec in models
        if len(ParameterGrid(spec.grid if spec.grid is not None else DEFAULT_GRIDS[spec.kind])) > 1
    ]
    # the model of the label-permutation runs (as study.run picks it)
    permuted = ([m for m in models if not m.clinical_only] or list(models))[0].name

    def fittable(labels: np.ndarray, rows: np.ndarray) -> bool:
        found = int(labels[rows].sum())
        return found > 0 and (data.survival or found < len(rows))

    def too_few(
        labels: np.ndarray, where: str, rows: np.ndarray, use: str = "fitted"
    ) -> StudyConfigError:
        found = int(labels[rows].sum())
        return StudyConfigError(
            f"endpoint {name!r}: {where} has {found} events in {len(rows)} rows, and a model "
            f"needs {'events' if data.survival else 'both outcomes'} to be {use}; {total} "
            f"events in {len(events)} rows are too few for validation.folds "
            f"{config.validation.folds} and inner_folds {config.validation.inner_folds}"
            + (
                " with shuffled labels: lower them or validation.permutations"
                if "permutation" in where
                else ": lower them"
            )
            + ", or choose an endpoint with more events"
        )

    undefined_tests, unscored = [], []
    with warnings.catch_warnings():  # "the least populated class has only ...": said below
        warnings.simplefilter("ignore", UserWarning)
        splits = outer_splits(data, config.validation)
        real: list[tuple[str, np.ndarray, np.ndarray | None]] = [
            (s.label, s.train, s.test) for s in splits
        ]
        real.append(("the final refit on all rows", np.arange(len(events)), None))
        runs = [("", events, real, bool(searched))]
        # the permutation runs' labels, shuffled as study.run shuffles them
        rng = np.random.default_rng(config.validation.seed)
        first: list[tuple[str, np.ndarray, np.ndarray | None]] = [
            (s.label, s.train, s.test) for s in splits if s.repeat == 0
        ]
        for k in range(config.validation.permutations):
            shuffled = events[rng.permutation(len(events))]
            runs.append((f"label permutation {k + 1}, ", shuffled, first, permuted in searched))
        for run, labels, parts, tuned in runs:
            for part, train, test in parts:
                label = run + part
                if not fittable(labels, train):
                    where = label if test is None else f"the training rows of {label}"
                    raise too_few(labels, where, train)
                if not run and test is not None and not fittable(labels, test):
                    undefined_tests.append(label)
                if not tuned:
                    continue
                folds = min(config.validation.inner_folds, len(np.unique(data.groups[train])))
                for fit_rows, score_rows in inner_splits(
                    labels[train], data.groups[train], folds, config.validation.seed
                ):
                    if not fittable(labels, train[fit_rows]):
                        raise too_few(labels, f"an inner training fold of {label}", train[fit_rows])
                    if fittable(labels, train[score_rows]):
                        continue
                    if data.survival:
                        raise too_few(
                            labels, f"an inner test fold of {label}", train[score_rows], "scored"
                        )
                    if not run:
                        unscored.append(label)
    problems = []
    if undefined_tests:
        shown = ", ".join(undefined_tests[:5]) + (" ..." if len(undefined_tests) > 5 else "")
        problems.append(
            f"endpoint {name!r}: {len(undefined_tests)} of {len(splits)} test sets have no "
            f"events{'' if data.survival else ' or no non-events'} ({shown}), so their {metric} "
            "is undefined; the pooled out-of-fold metrics use every row, the per-fold means "
            "leave those sets out"
        )
    if unscored:
        unique = list(dict.fromkeys(unscored))
        problems.append(
            f"endpoint {name!r}: in {len(unique)} training sets an inner fold has a single "
            f"outcome, so the {metric} of the grid's candidates is undefined there and the "
            f"grid search of {', '.join(searched)} takes the first candidate; lower "
            "validation.inner_folds"
        )
    if total < FEW_EVENTS:
        problems.append(
            f"endpoint {name!r}: only {total} events in {len(events)} rows; every estimate "
            "will be very uncertain (wide confidence intervals)"
        )
    return problems
