"""Model-based selectors: penalised models (embedded), recursive feature elimination (wrapper)
and stability selection.

Boruta (Kursa & Rudnicki 2010) is not offered: its PyPI package (``Boruta``, BorutaPy) has had
one release since 2019 (0.4.3, 2024), supports tree ensembles for classification and regression
only (no survival), and RFE and stability selection cover the same need here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import RFE, RFECV
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.svm import l1_min_c

from hepablate.selection._base import (
    BaseSelector,
    Splits,
    Target,
    column_relevance,
    inner_splits,
)

__all__ = ["Embedded", "StabilitySelection", "Wrapper"]

_ZERO = 1e-10  # |coefficient| at or below this is zero


def _l1_ratio(penalty: str, l1_ratio: float) -> float:
    if penalty == "l1":
        return 1.0
    if penalty == "elasticnet":
        if not 0 < l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in (0, 1] for the elastic net, got {l1_ratio}")
        return float(l1_ratio)
    raise ValueError(f"penalty must be 'l1' or 'elasticnet', got {penalty!r}")


def _coxnet(l1_ratio: float, n_alphas: int, alphas: Any = None) -> Any:
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    return CoxnetSurvivalAnalysis(
        l1_ratio=l1_ratio,
        n_alphas=n_alphas,
        alphas=alphas,
        alpha_min_ratio=0.01,
        fit_baseline_model=False,
        max_iter=100_000,
    )


class Embedded(BaseSelector):
    """Keep the non-zero coefficients of a penalised model whose penalty is chosen by inner
    cross-validation over patients (``groups``): L1 (Tibshirani 1996, JRSS B 58:267) or elastic
    net (Zou & Hastie 2005, JRSS B 67:301; ``penalty="elasticnet"``, mixing ``l1_ratio``).

    Binary y: ``LogisticRegressionCV`` (liblinear for L1, saga for the elastic net;
    ``class_weight="balanced"``; ROC AUC) over ``Cs``; an int ``Cs`` is a log grid over three
    decades from ``l1_ratio * l1_min_c`` (below it every coefficient is zero); then a refit on
    all rows at the chosen C. Survival y: ``CoxnetSurvivalAnalysis`` (Simon et al. 2011,
    J Stat Softw 39(5)): the alpha path (``Cs`` values down to 1 % of the largest) is fitted
    once on all rows, then once per inner fold on the same alphas (warm starts along the path)
    and each alpha scored by Harrell's C on the fold's test rows: the grid search over the
    alpha list, with one path fit per fold instead of one fit per alpha.

    ``rule="1se"`` (default) takes the strongest penalty whose mean inner score is within one
    standard error of the best (Hastie, Tibshirani & Friedman 2009, sec. 7.10; glmnet's
    ``lambda.1se``): the penalty with the best score selects many noise features (Meinshausen &
    Bühlmann 2006, Ann Stat 34:1436): 7 of 20 noise columns against 1 on this package's
    synthetic test. ``rule="best"`` takes the best score. Ties go to the stronger penalty.

    Fitted: ``coef_``, ``chosen_penalty_`` (C for the logistic, alpha for Coxnet),
    ``penalties_`` (the grid) and ``cv_scores_`` (mean inner score per penalty).
    """

    def __init__(
        self,
        penalty: str = "l1",
        l1_ratio: float = 1.0,
        cv: int = 5,
        Cs: int | Sequence[float] = 10,
        rule: str = "1se",
        force: tuple[str, ...] = (),
        random_state: int | None = 0,
    ) -> None:
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.Cs = Cs
        self.rule = rule
        self.force = force
        self.random_state = random_state

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        ratio = _l1_ratio(self.penalty, self.l1_ratio)
        if self.rule not in ("1se", "best"):
            raise ValueError(f"rule must be '1se' or 'best', got {self.rule!r}")
        splits = inner_splits(target, groups, int(self.cv), _seed(self.random_state))
        if target.survival:
            coef = self._coxnet(X, target, splits, ratio)
        else:
            coef = self._logistic(X, target, splits, ratio)
        self.coef_ = coef
        return np.abs(coef) > _ZERO, np.abs(coef) + 1e-9 * column_relevance(X, target)

    def _choose(self, scores: np.ndarray) -> int:
        """Index of the chosen penalty; ``scores`` is folds x penalties, strongest first."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a penalty without any fold
            mean = np.nanmean(scores, axis=0)
            counts = np.sum(~np.isnan(scores), axis=0)
            se = np.nanstd(scores, axis=0, ddof=1) / np.sqrt(np.maximum(counts, 1))
        mean = np.nan_to_num(mean, nan=-np.inf)
        self.cv_scores_ = mean
        best = int(np.argmax(mean))
        if self.rule == "best" or not np.isfinite(se[best]):
            return best
        return int(np.flatnonzero(mean >= mean[best] - se[best])[0])

    def _logistic(self, X: np.ndarray, target: Target, splits: Splits, ratio: float) -> np.ndarray:
        y = target.event.astype(int)
        if isinstance(self.Cs, int | np.integer):
            # below l1_ratio * l1_min_c the L1 part zeroes every coefficient
            low = float(l1_min_c(X, y, loss="log")) * ratio
            grid = low * np.logspace(0.0, 3.0, int(self.Cs))
        else:
            grid = np.sort(np.asarray(self.Cs, dtype=float))
        solver = "liblinear" if ratio == 1.0 else "saga"
        search = LogisticRegressionCV(
            Cs=grid,
            l1_ratios=(ratio,),
            cv=splits,
            solver=solver,
            scoring="roc_auc",
            class_weight="balanced",
            max_iter=5000,
            random_state=self.random_state,
            use_legacy_attributes=False,
        ).fit(X, y)
        self.penalties_ = np.asarray(search.Cs_, dtype=float)  # increasing C: strongest first
        chosen = self._choose(np.asarray(search.scores_, dtype=float).reshape(len(splits), -1))
        self.chosen_penalty_ = float(self.penalties_[chosen])
        model = LogisticRegression(
            C=self.chosen_penalty_,
            l1_ratio=ratio,
            solver=solver,
            class_weight="balanced",
            max_iter=5000,
            random_state=self.random_state,
        ).fit(X, y)
        return np.asarray(model.coef_, dtype=float).ravel()

    def _coxnet(self, X: np.ndarray, target: Target, splits: Splits, ratio: float) -> np.ndarray:
        from sksurv.metrics import concordance_index_censored

        if not isinstance(self.Cs, int | np.integer):
            raise ValueError("for survival y, Cs is the number of alphas on the Coxnet path")
        assert target.time is not None
        y = target.y
        path = _coxnet(ratio, int(self.Cs)).fit(X, y)
        alphas = np.asarray(path.alphas_, dtype=float)  # decreasing: strongest first
        scores = np.full((len(splits), len(alphas)), np.nan)
        for k, (train, test) in enumerate(splits):
            if not target.event[test].any():
                continue
            try:
                fold = _coxnet(ratio, len(alphas), alphas).fit(X[train], y[train])
            except ArithmeticError:  # diverged on this fold: leave its scores out
                continue
            for a, alpha in enumerate(alphas):
                risk = fold.predict(X[test], alpha=alpha)
                event, time = target.event[test], target.time[test]
                scores[k, a] = concordance_index_censored(event, time, risk)[0]
        chosen = self._choose(scores)
        self.penalties_ = alphas
        self.chosen_penalty_ = float(alphas[chosen])
        return np.asarray(path.coef_[:, chosen], dtype=float)


class Wrapper(BaseSelector):
    """Recursive feature elimination (Guyon et al. 2002, Mach Learn 46:389), ranking by the
    coefficients of an L2 logistic regression (binary y, ``class_weight="balanced"``) or a
    ridge Cox model (survival y, ``CoxPHSurvivalAnalysis(alpha=1e-2)``), removing ``step``
    columns at a time. ``n_features`` None: the number is chosen by ``RFECV`` over inner folds
    grouped by patient (ROC AUC; Harrell's C); else ``RFE`` keeps ``n_features``.

    Fitted: ``ranking_`` (1 = kept), ``n_features_`` and, with RFECV, ``cv_scores_`` (mean
    inner score for each number of features in ``cv_n_features_``).
    """

    def __init__(
        self,
        n_features: int | None = None,
        step: int | float = 1,
        cv: int = 5,
        force: tuple[str, ...] = (),
        random_state: int | None = 0,
    ) -> None:
        self.n_features = n_features
        self.step = step
        self.cv = cv
        self.force = force
        self.random_state = random_state

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        if self.n_features is not None and int(self.n_features) < 1:
            raise ValueError(f"n_features must be >= 1 or None, got {self.n_features}")
        if X.shape[1] == 1:
            self.ranking_ = np.ones(1, dtype=int)
            self.n_features_ = 1
            return np.ones(1, dtype=bool), np.ones(1)
        estimator: Any
        scoring: Any
        if target.survival:
            from sksurv.linear_model import CoxPHSurvivalAnalysis

            estimator, scoring = CoxPHSurvivalAnalysis(alpha=1e-2), _harrell_c
        else:
            estimator = LogisticRegression(
                C=1.0, class_weight="balanced", solver="newton-cholesky", max_iter=1000
            )
            scoring = "roc_auc"
        search: Any
        if self.n_features is None:
            splits = inner_splits(target, groups, int(self.cv), _seed(self.random_state))
            search = RFECV(estimator, step=self.step, cv=splits, scoring=scoring)
        else:
            n_features = min(int(self.n_features), X.shape[1])
            search = RFE(estimator, n_features_to_select=n_features, step=self.step)
        search.fit(X, target.y)
        self.ranking_ = np.asarray(search.ranking_, dtype=int)
        self.n_features_ = int(search.n_features_)
        if self.n_features is None:
            self.cv_scores_ = np.asarray(search.cv_results_["mean_test_score"], dtype=float)
            self.cv_n_features_ = np.asarray(search.cv_results_["n_features"], dtype=int)
        return np.asarray(search.support_, dtype=bool), -self.ranking_.astype(float)


class StabilitySelection(BaseSelector):
    """Stability selection (Meinshausen & Bühlmann 2010, JRSS B 72:417).

    On each of ``n_resamples`` subsamples — a ``sample_fraction`` of the patients (``groups``)
    or else of the rows, stratified by the event — an L1 logistic model (binary y, liblinear)
    or an L1 Coxnet (survival y) is fitted with the weakest penalty on its path that leaves at
    most q columns non-zero, q = ``n_selected`` (default round(sqrt(0.8 p))); the logistic C is
    found by bisection on 30 log-spaced values over three decades from ``l1_min_c``, the Coxnet
    alpha on a 50-value path down to 1 % of the largest. A column's selection frequency is the
    share of subsamples in which it is non-zero; columns with frequency >= pi are kept.

    pi is ``threshold`` when given, else the error bound E[V] <= q^2 / ((2 pi - 1) p) (V:
    falsely selected columns) solved for pi with E[V] = ``pfer``, pi = (1 + q^2 / (p pfer)) / 2,
    clipped to [0.6, 0.9]: the bound holds only for pi > 0.5 and is loose close to it, while
    above 0.9 hardly any column passes with a finite number of resamples. After the clip the
    bound actually guaranteed is ``pfer_bound_``.

    Fitted: ``frequencies_``, ``threshold_`` (pi used), ``n_selected_`` (q), ``pfer_bound_``.
    """

    def __init__(
        self,
        n_resamples: int = 100,
        sample_fraction: float = 0.5,
        n_selected: int | None = None,
        pfer: float = 1.0,
        threshold: float | None = None,
        force: tuple[str, ...] = (),
        random_state: int | None = 0,
    ) -> None:
        self.n_resamples = n_resamples
        self.sample_fraction = sample_fraction
        self.n_selected = n_selected
        self.pfer = pfer
        self.threshold = threshold
        self.force = force
        self.random_state = random_state

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        if int(self.n_resamples) < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        if not 0 < self.sample_fraction < 1:
            raise ValueError(f"sample_fraction must be in (0, 1), got {self.sample_fraction}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.pfer <= 0:
            raise ValueError(f"pfer must be > 0, got {self.pfer}")
        p = X.shape[1]
        q = self.n_selected if self.n_selected is not None else round(math.sqrt(0.8 * p))
        q = int(min(max(int(q), 1), p))
        rng = np.random.default_rng(self.random_state)
        counts = np.zeros(p)
        for _ in range(int(self.n_resamples)):
            rows = self._subsample(rng, target, groups)
            part = target.rows(rows)
            if part.survival:
                counts += _coxnet_at_most(X[rows], part, q)
            else:
                counts += _logistic_at_most(X[rows], part, q)
        frequencies = counts / int(self.n_resamples)
        if self.threshold is not None:
            pi = float(self.threshold)
        else:
            pi = float(np.clip((1.0 + q * q / (p * self.pfer)) / 2.0, 0.6, 0.9))
        self.frequencies_ = frequencies
        self.threshold_ = pi
        self.n_selected_ = q
        self.pfer_bound_ = q * q / ((2 * pi - 1) * p) if pi > 0.5 else math.inf
        return frequencies >= pi - 1e-12, frequencies

    def _subsample(self, rng: np.random.Generator, target: Target, groups: Any) -> np.ndarray:
        """A ``sample_fraction`` of each event stratum, of patients when ``groups`` are given."""
        if groups is None:
            units, unit_event = np.arange(len(target.event)), target.event
        else:
            groups = np.asarray(groups)
            units, inverse = np.unique(groups, return_inverse=True)
            unit_event = np.zeros(len(units), dtype=bool)
            np.logical_or.at(unit_event, inverse, target.event)
        chosen = []
        for stratum in (False, True):
            members = np.flatnonzero(unit_event == stratum)
            if len(members):
                take = min(len(members), max(1, round(self.sample_fraction * len(members))))
                chosen.append(rng.choice(members, size=take, replace=False))
        picked = np.sort(np.concatenate(chosen))
        if groups is None:
            return picked
        return np.flatnonzero(np.isin(groups, units[picked]))


def _logistic_at_most(X: np.ndarray, target: Target, q: int) -> np.ndarray:
    """Non-zero columns of the L1 logistic with the largest C (on a 30-value grid over three
    decades from ``l1_min_c``) leaving at most q non-zero."""
    y = target.event.astype(int)
    none = np.zeros(X.shape[1], dtype=bool)
    if len(np.unique(y)) < 2:
        return none
    grid = float(l1_min_c(X, y, loss="log")) * np.logspace(0.0, 3.0, 30)

    def support(C: float) -> np.ndarray:
        model = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        return np.abs(model.coef_.ravel()) > _ZERO

    # bisection for the last grid value with <= q non-zero (the support grows with C)
    low, high, best = 0, len(grid) - 1, none
    while low <= high:
        middle = (low + high) // 2
        chosen = support(float(grid[middle]))
        if chosen.sum() <= q:
            best, low = chosen, middle + 1
        else:
            high = middle - 1
    return best


def _coxnet_at_most(X: np.ndarray, target: Target, q: int) -> np.ndarray:
    """Non-zero columns of the L1 Coxnet with the smallest alpha on its path (50 values down to
    1 % of the largest) leaving at most q non-zero."""
    none = np.zeros(X.shape[1], dtype=bool)
    if not target.event.any():
        return none
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = _coxnet(1.0, 50).fit(X, target.y)
    except ArithmeticError:  # diverged on this subsample: counts as selecting nothing
        return none
    nonzero = np.abs(np.asarray(model.coef_)) > _ZERO  # columns x alphas (decreasing)
    allowed = np.flatnonzero(nonzero.sum(axis=0) <= q)
    return np.asarray(nonzero[:, allowed[-1]]) if len(allowed) else none


def _harrell_c(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Harrell's C of a fitted survival model on (X, y): the scorer of the survival RFECV."""
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(y["event"], y["time"], estimator.predict(X))[0])


def _seed(random_state: int | None) -> int | None:
    return None if random_state is None else int(random_state)
