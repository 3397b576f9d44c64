"""Shared parts of the selectors: the target (binary or survival), forced features, relevance,
univariate Cox tests and grouped inner folds.

References: Harrell et al. 1982 (concordance index); Cox 1972 and Breslow 1974 (partial
likelihood, Breslow ties); Rao 1948 (score test: for one covariate the log-rank-type test).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils import ClassifierTags
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

__all__ = ["Target", "relevance"]

Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Target:
    """The outcome of the training rows.

    ``event`` is the binary label (binary y) or the event indicator (survival y); ``time`` is
    None for binary y. ``y`` is what the models get: the 0/1 labels, or a structured array with
    fields ``event`` and ``time`` (scikit-survival's convention).
    """

    event: np.ndarray
    time: np.ndarray | None

    @property
    def survival(self) -> bool:
        return self.time is not None

    @property
    def y(self) -> np.ndarray:
        if self.time is None:
            return self.event.astype(int)
        out = np.empty(len(self.event), dtype=[("event", bool), ("time", float)])
        out["event"], out["time"] = self.event, self.time
        return out

    def rows(self, index: np.ndarray) -> Target:
        return Target(self.event[index], None if self.time is None else self.time[index])


def as_target(y: Any) -> Target:
    """Binary y (any two labels; the larger is the positive class) or a structured array whose
    first field is the event indicator and second the time (as scikit-survival reads it)."""
    if y is None:
        raise ValueError("this selector requires y to be passed, but the target y is None")
    array = np.asarray(y)
    names = array.dtype.names
    if names is not None:
        if len(names) != 2 or array.ndim != 1:
            raise ValueError(f"survival y needs exactly two fields (event, time), got {names}")
        event = np.asarray(array[names[0]])
        time = np.asarray(array[names[1]], dtype=float)
        if event.dtype != bool:
            raise ValueError(f"the event field {names[0]!r} of survival y must be boolean")
        if not np.all(np.isfinite(time)):
            raise ValueError("survival times must be finite")
        return Target(event.copy(), time.copy())
    if array.ndim == 2 and array.shape[1] == 1:
        warnings.warn("y is a column vector; it is flattened", stacklevel=3)
        array = array.ravel()
    if array.ndim != 1:
        raise ValueError(f"y should be a 1d array, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError("y contains NaN or infinity")
    labels = np.unique(array)
    if len(labels) != 2:
        raise ValueError(
            f"binary y must have exactly 2 classes, got {len(labels)} class"
            f"{'es' if len(labels) != 1 else ''}: {labels[:5].tolist()}"
        )
    return Target((array == labels[1]).copy(), None)


def relevance(X: Any, y: Any) -> np.ndarray:
    """Relevance of each column of X alone: |AUC - 0.5| (binary y) or |Harrell's C - 0.5|
    (survival y); 0 for a constant column."""
    target = y if isinstance(y, Target) else as_target(y)
    return column_relevance(np.asarray(X, dtype=float), target)


def column_relevance(X: np.ndarray, target: Target) -> np.ndarray:
    """``relevance`` of an already checked matrix and target."""
    out = np.zeros(X.shape[1])
    if target.time is None:
        for j in range(X.shape[1]):
            if np.ptp(X[:, j]) > 0:
                out[j] = abs(roc_auc_score(target.event, X[:, j]) - 0.5)
        return out
    from sksurv.metrics import concordance_index_censored

    if not target.event.any():
        return out
    for j in range(X.shape[1]):
        if np.ptp(X[:, j]) > 0:
            c_index = concordance_index_censored(target.event, target.time, X[:, j])[0]
            out[j] = abs(c_index - 0.5)
    return out


def _risk_sets(target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Row order by decreasing time, and for each row of that order the last row of its risk
    set (all rows with time >= its time, so ties share a risk set: Breslow)."""
    assert target.time is not None
    order = np.argsort(-target.time, kind="stable")
    times = target.time[order]
    last = np.searchsorted(-times, -times, side="right") - 1
    return order, last


def cox_score_test(X: np.ndarray, target: Target) -> np.ndarray:
    """Chi-square (1 df) of the univariate Cox score test of each column at beta = 0, Breslow
    ties: U^2 / I with U = sum over events of (x_i - mean of the risk set) and I the sum of the
    risk sets' variances. Defined without fitting (also under monotone likelihood); 0 for a
    column without variance in its risk sets."""
    order, last = _risk_sets(target)
    Xs = X[order] - X.mean(axis=0)
    events = target.event[order]
    n_risk = np.arange(1, len(Xs) + 1, dtype=float)[last][events]
    mean = np.cumsum(Xs, axis=0)[last][events] / n_risk[:, None]
    second = np.cumsum(Xs**2, axis=0)[last][events] / n_risk[:, None]
    score = (Xs[events] - mean).sum(axis=0)
    information = np.clip(second - mean**2, 0.0, None).sum(axis=0)
    chi2 = np.zeros(X.shape[1])
    positive = information > 1e-12 * max(1.0, float(events.sum()))
    chi2[positive] = score[positive] ** 2 / information[positive]
    return chi2


def cox_wald_test(
    X: np.ndarray, target: Target, max_iter: int = 50, tol: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """(beta, Wald chi-square) of a univariate Cox model per column (Breslow ties), all columns
    at once by Newton-Raphson with step halving. Under monotone likelihood (a column that
    separates events) beta grows until the iteration limit and the Wald test loses power
    (Hauck-Donner); ``cox_score_test`` has no such problem."""
    order, last = _risk_sets(target)
    Xs = X[order] - X.mean(axis=0)
    events = target.event[order]
    p = X.shape[1]

    def parts(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eta = Xs * beta
        shift = eta.max(axis=0)  # cancels in the risk-set ratios; avoids overflow
        weight = np.exp(eta - shift)
        s0 = np.cumsum(weight, axis=0)[last][events]
        s1 = np.cumsum(weight * Xs, axis=0)[last][events] / s0
        s2 = np.cumsum(weight * Xs**2, axis=0)[last][events] / s0
        loglik = (eta[events] - shift - np.log(s0)).sum(axis=0)
        return loglik, (Xs[events] - s1).sum(axis=0), np.clip(s2 - s1**2, 0, None).sum(axis=0)

    beta = np.zeros(p)
    loglik, score, information = parts(beta)
    active = information > 1e-12
    for _ in range(max_iter):
        step = np.where(active, score / np.where(active, information, 1.0), 0.0)
        for _halving in range(30):
            new_loglik, new_score, new_information = parts(beta + step)
            worse = new_loglik < loglik - 1e-12
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        beta = beta + step
        converged = np.abs(new_loglik - loglik) <= tol * (np.abs(loglik) + tol)
        loglik, score, information = new_loglik, new_score, new_information
        if converged.all():
            break
    wald = np.where(information > 1e-12, beta**2 * information, 0.0)
    return beta, wald


def inner_splits(target: Target, groups: Any, cv: int, seed: int | None) -> Splits:
    """Inner folds stratified by the event: ``StratifiedGroupKFold`` over patients when
    ``groups`` are given, else ``StratifiedKFold``; fewer folds than ``cv`` when a class has
    fewer rows (patients) than ``cv``."""
    events = target.event.astype(int)
    n = len(events)
    if groups is not None:
        groups = np.asarray(groups)
        check_consistent_length(events, groups)
        per_group = {g: int(events[groups == g].max()) for g in np.unique(groups)}
        counts = np.bincount(list(per_group.values()), minlength=2)
    else:
        counts = np.bincount(events, minlength=2)
    folds = min(cv, int(counts.min()))
    if folds < 2:
        unit = "patients" if groups is not None else "rows"
        raise ValueError(
            f"inner cross-validation needs at least 2 {unit} of each outcome, got {counts.tolist()}"
        )
    if groups is not None:
        splitter: Any = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), events, groups))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n), events))


class BaseSelector(SelectorMixin, BaseEstimator):  # type: ignore[misc]
    """A selector: ``fit(X, y, groups=None)`` sets ``support_``; forced features and at least
    one feature are always kept. Subclasses implement ``_select``."""

    force: tuple[str, ...]
    _needs_y = True

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(columns to keep, scores: higher = more relevant, the best kept if nothing is)."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, groups: Any = None) -> BaseSelector:
        """Learn which columns to keep from these rows; ``groups`` (patient ids, aligned with the
        rows) group any inner cross-validation."""
        if isinstance(self.force, str):
            raise TypeError(f"force must be a tuple of feature names, not {self.force!r}")
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)  # a refit starts clean: nothing of an earlier fit remains
        Xv = np.asarray(validate_data(self, X, reset=True, dtype="numeric"), dtype=float)
        target = None
        if self._needs_y:
            target = as_target(y)
            check_consistent_length(Xv, target.event)
        if groups is not None:
            check_consistent_length(Xv, np.asarray(groups))
        forced = self._forced_mask()
        keep, scores = self._select(Xv, target, groups, forced)
        keep = np.asarray(keep, dtype=bool) | forced
        if not keep.any():
            keep[int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))] = True
        self.support_ = keep
        return self

    def _forced_mask(self) -> np.ndarray:
        """Columns named in ``force`` (ignored when X has no column names)."""
        mask = np.zeros(self.n_features_in_, dtype=bool)
        names = getattr(self, "feature_names_in_", None)
        if not self.force or names is None:
            return mask
        index = {str(name): j for j, name in enumerate(names)}
        unknown = [name for name in self.force if name not in index]
        if unknown:
            raise ValueError(f"forced features not in the data: {', '.join(unknown)}")
        mask[[index[name] for name in self.force]] = True
        return mask

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return np.asarray(self.support_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._needs_y
        # Binary (or survival) targets only: the checks then give a two-class y.
        tags.classifier_tags = ClassifierTags(multi_class=False) if self._needs_y else None
        return tags
