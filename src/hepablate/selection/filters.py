"""Filter selectors: each column judged by itself (variance, ICC, univariate test) or against the
others by correlation (redundancy clusters, mRMR).

mRMR is written here rather than taken from PyPI: ``mrmr_selection`` (last release 2023) is a
function API, not a scikit-learn transformer, has no survival relevance, and pulls in polars,
category_encoders (with statsmodels and patsy), jinja2 and tqdm for a greedy loop of a dozen
lines. The FCQ scheme follows Ding & Peng 2005 (J Bioinform Comput Biol 3:185) as compared by
Zhao, Anand & Wang 2019 (Uber's "Maximum Relevance and Minimum Redundancy Feature Selection
Methods for a Marketing Machine Learning Platform", IEEE DSAA).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.feature_selection import f_classif

from hepablate.selection._base import (
    BaseSelector,
    Target,
    column_relevance,
    cox_score_test,
    cox_wald_test,
)

__all__ = ["MRMR", "NearZeroVariance", "Redundancy", "Reproducible", "Univariate"]


def _abs_correlation(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between columns; 0 where a column is constant, 1 on the diagonal."""
    centred = X - X.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    safe = np.where(norms > 0, norms, 1.0)
    unit = centred / safe
    correlation = np.abs(unit.T @ unit)
    correlation[:, norms == 0] = 0.0
    correlation[norms == 0, :] = 0.0
    np.fill_diagonal(correlation, 1.0)
    return np.clip(correlation, 0.0, 1.0)


class NearZeroVariance(BaseSelector):
    """Drop constant and near-zero-variance columns, caret's ``nearZeroVar`` rule (Kuhn 2008,
    J Stat Softw 28(5)): a column goes when the frequency of its most common value over that of
    its second most common exceeds ``freq_ratio`` and its distinct values are at most
    ``unique_pct`` % of the rows (``<=``, as caret). Ignores y.

    Fitted: ``freq_ratio_`` (inf for a constant column) and ``unique_pct_`` per column.
    """

    _needs_y = False

    def __init__(
        self,
        freq_ratio: float = 95 / 5,
        unique_pct: float = 10.0,
        force: tuple[str, ...] = (),
    ) -> None:
        self.freq_ratio = freq_ratio
        self.unique_pct = unique_pct
        self.force = force

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ratio = np.full(X.shape[1], np.inf)
        unique_pct = np.zeros(X.shape[1])
        for j in range(X.shape[1]):
            _, counts = np.unique(X[:, j], return_counts=True)
            unique_pct[j] = 100.0 * len(counts) / len(X)
            if len(counts) > 1:
                top = np.sort(counts)[::-1]
                ratio[j] = top[0] / top[1]
        self.freq_ratio_ = ratio
        self.unique_pct_ = unique_pct
        near_zero = (ratio > self.freq_ratio) & (unique_pct <= self.unique_pct)
        constant = np.isinf(ratio)
        return ~(near_zero | constant), np.where(constant, -np.inf, -ratio)


class Reproducible(BaseSelector):
    """Drop radiomics that are not reproducible: ICC below ``min_icc`` (Koo & Li 2016: 0.75
    is "good"). ``icc`` maps a feature name to its ICC under mask and noise perturbation
    (Zwanenburg et al. 2019, Sci Rep 9:614), as ``hepablate extract`` reports it. Columns
    without an ICC (absent or NaN) pass; the mapping needs X with column names. Ignores y.

    Fitted: ``icc_`` per column (NaN where none is known).
    """

    _needs_y = False

    def __init__(
        self,
        icc: Mapping[str, float] | None = None,
        min_icc: float = 0.75,
        force: tuple[str, ...] = (),
    ) -> None:
        self.icc = icc
        self.min_icc = min_icc
        self.force = force

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        values = np.full(X.shape[1], np.nan)
        names = getattr(self, "feature_names_in_", None)
        if self.icc:
            if names is None:
                raise ValueError("Reproducible with an ICC mapping needs X with column names")
            for j, name in enumerate(names):
                if str(name) in self.icc:
                    values[j] = float(self.icc[str(name)])
        self.icc_ = values
        known = ~np.isnan(values)
        keep = ~known | (np.where(known, values, 0.0) >= self.min_icc)
        return keep, np.where(known, values, np.inf)


class Univariate(BaseSelector):
    """Keep columns associated with the outcome on their own, with Benjamini & Hochberg's false
    discovery rate (1995, JRSS B 57:289; ``scipy.stats.false_discovery_control``): q <= ``fdr``.

    ``test``: ``"auto"`` is ``"mannwhitney"`` for binary y (Mann & Whitney 1947, two-sided) and
    ``"score"`` for survival y: the univariate Cox score test (log-rank type, Breslow ties),
    which needs no fit and stays valid when a column separates the events; ``"wald"`` fits the
    univariate Cox model per column (Newton-Raphson) and uses its Wald test.

    Fitted: ``statistics_`` (U, or chi-square), ``pvalues_``, ``qvalues_``.
    """

    def __init__(self, test: str = "auto", fdr: float = 0.1, force: tuple[str, ...] = ()) -> None:
        self.test = test
        self.fdr = fdr
        self.force = force

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        survival_tests, binary_tests = ("auto", "score", "wald"), ("auto", "mannwhitney")
        allowed = survival_tests if target.survival else binary_tests
        if self.test not in allowed:
            kind = "survival" if target.survival else "binary"
            raise ValueError(f"test={self.test!r} does not apply to {kind} y; use one of {allowed}")
        if not 0 < self.fdr <= 1:
            raise ValueError(f"fdr must be in (0, 1], got {self.fdr}")
        if target.survival:
            if self.test == "wald":
                statistic = cox_wald_test(X, target)[1]
            else:
                statistic = cox_score_test(X, target)
            pvalues = stats.chi2.sf(statistic, df=1)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                result = stats.mannwhitneyu(
                    X[target.event], X[~target.event], axis=0, alternative="two-sided"
                )
            statistic, pvalues = result.statistic, result.pvalue
        pvalues = np.nan_to_num(np.asarray(pvalues, dtype=float), nan=1.0)  # constant columns
        self.statistics_ = np.asarray(statistic, dtype=float)
        self.pvalues_ = pvalues
        self.qvalues_ = np.asarray(stats.false_discovery_control(pvalues), dtype=float)
        return self.qvalues_ <= self.fdr, -pvalues


class Redundancy(BaseSelector):
    """Keep one column per cluster of correlated columns: average-linkage hierarchical
    clustering on 1 - |rho| (``method``: ``"spearman"`` or ``"pearson"``), cut at
    1 - ``max_correlation``; each cluster is represented by its most relevant column,
    |AUC - 0.5| (binary) or |Harrell's C - 0.5| (survival), or by its forced column(s).

    Fitted: ``clusters_`` (cluster label per column), ``relevance_``.
    """

    def __init__(
        self,
        max_correlation: float = 0.8,
        method: str = "spearman",
        force: tuple[str, ...] = (),
    ) -> None:
        self.max_correlation = max_correlation
        self.method = method
        self.force = force

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        if self.method not in ("spearman", "pearson"):
            raise ValueError(f"method must be 'spearman' or 'pearson', got {self.method!r}")
        if not 0 <= self.max_correlation <= 1:
            raise ValueError(f"max_correlation must be in [0, 1], got {self.max_correlation}")
        scores = column_relevance(X, target)
        self.relevance_ = scores
        if X.shape[1] == 1:
            self.clusters_ = np.ones(1, dtype=int)
            return np.ones(1, dtype=bool), scores
        data = stats.rankdata(X, axis=0) if self.method == "spearman" else X
        distance = 1.0 - _abs_correlation(data)
        condensed = squareform(distance, checks=False)
        tree = linkage(condensed, method="average")
        clusters = fcluster(tree, t=1.0 - self.max_correlation, criterion="distance")
        keep = np.zeros(X.shape[1], dtype=bool)
        for label in np.unique(clusters):
            members = np.flatnonzero(clusters == label)
            if forced[members].any():
                keep[members[forced[members]]] = True
            else:
                keep[members[np.argmax(scores[members])]] = True
        self.clusters_ = np.asarray(clusters, dtype=int)
        return keep, scores


class MRMR(BaseSelector):
    """Minimum-redundancy maximum-relevance, FCQ scheme (Ding & Peng 2005; Zhao, Anand & Wang
    2019): starting from the forced columns, greedily add the column maximising relevance /
    redundancy until ``n_features`` are chosen. Relevance: the ANOVA F-statistic
    (``f_classif``) for binary y, the univariate Cox score chi-square for survival y;
    redundancy: mean |Pearson r| with the columns already chosen (the first pick is the most
    relevant column).

    Fitted: ``relevance_``, ``order_`` (column indices in the order chosen; forced first) and
    ``fcq_`` (the FCQ value of each column when chosen, NaN for the others).
    """

    def __init__(self, n_features: int = 20, force: tuple[str, ...] = ()) -> None:
        self.n_features = n_features
        self.force = force

    def _select(
        self, X: np.ndarray, target: Target | None, groups: Any, forced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert target is not None
        if int(self.n_features) < 1:
            raise ValueError(f"n_features must be >= 1, got {self.n_features}")
        if target.survival:
            score = cox_score_test(X, target)
        else:
            with warnings.catch_warnings():
                # constant columns: F is NaN (relevance 0 below)
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.filterwarnings("ignore", message="Features .* are constant")
                score = f_classif(X, target.event.astype(int))[0]
        score = np.nan_to_num(np.asarray(score, dtype=float), nan=0.0, posinf=np.finfo(float).max)
        correlation = _abs_correlation(X)
        chosen = [int(j) for j in np.flatnonzero(forced)]
        fcq = np.full(X.shape[1], np.nan)
        remaining = [j for j in range(X.shape[1]) if j not in chosen]
        while remaining and len(chosen) < min(int(self.n_features), X.shape[1]):
            if chosen:
                redundancy = correlation[np.ix_(remaining, chosen)].mean(axis=1)
                value = score[remaining] / np.maximum(redundancy, 1e-12)
            else:
                value = score[remaining]
            best = int(np.argmax(value))
            fcq[remaining[best]] = value[best]
            chosen.append(remaining.pop(best))
        keep = np.zeros(X.shape[1], dtype=bool)
        keep[chosen] = True
        self.relevance_ = score
        self.order_ = np.asarray(chosen, dtype=int)
        self.fcq_ = fcq
        return keep, score
