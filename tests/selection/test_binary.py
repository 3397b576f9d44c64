"""The selectors on a synthetic binary problem (tests/selection/synthetic.py): 3 informative
columns, 20 noise columns, 3 near-duplicates (r about 0.93) of the first informative one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from hepablate.selection import (
    MRMR,
    Embedded,
    Redundancy,
    StabilitySelection,
    Univariate,
    Wrapper,
)
from tests.selection.synthetic import DUPLICATES, INFORMATIVE, NOISE, binary

X, Y = binary()


def selected(selector: Any, X: pd.DataFrame = X, y: Any = Y, **fit: Any) -> set[str]:
    return set(selector.fit(X, y, **fit).get_feature_names_out())


def test_the_problem_is_what_the_tests_assume() -> None:
    assert X.shape == (300, 26)
    assert 0.35 < Y.mean() < 0.55
    correlation = X.corr().loc["inf0", DUPLICATES]
    assert (correlation > 0.9).all() and (correlation < 0.96).all()


def test_univariate_keeps_the_associated_columns_and_no_noise() -> None:
    selector = Univariate(fdr=0.1)
    chosen = selected(selector)
    # the duplicates are associated with y too: a univariate filter cannot tell them apart
    assert chosen == set(INFORMATIVE) | set(DUPLICATES)
    assert selector.qvalues_.shape == (26,)
    assert np.all(selector.qvalues_ >= selector.pvalues_)
    assert selector.pvalues_[X.columns.get_loc("inf1")] < 1e-10


@pytest.mark.slow
def test_embedded_l1_keeps_the_informative_columns_and_at_most_one_noise_column() -> None:
    selector = Embedded(cv=5)
    chosen = selected(selector)
    assert set(INFORMATIVE) <= chosen
    assert len(chosen & set(NOISE)) <= 1
    assert np.count_nonzero(selector.coef_) == len(chosen)
    assert selector.chosen_penalty_ in selector.penalties_
    # the one-standard-error rule is sparser than the best inner AUC
    best = selected(Embedded(cv=5, rule="best"))
    assert len(best & set(NOISE)) > len(chosen & set(NOISE))


@pytest.mark.slow
def test_embedded_elastic_net_keeps_the_duplicate_group_together() -> None:
    chosen = selected(Embedded(penalty="elasticnet", l1_ratio=0.5))
    # the grouping effect of the elastic net (Zou & Hastie 2005): all near-copies stay
    assert set(INFORMATIVE) | set(DUPLICATES) <= chosen
    assert len(chosen & set(NOISE)) <= 2
    with pytest.raises(ValueError, match="penalty"):
        Embedded(penalty="l2").fit(X, Y)


def test_mrmr_picks_the_informative_columns_before_a_duplicate() -> None:
    selector = MRMR(n_features=3)
    assert selected(selector) == set(INFORMATIVE)
    # the first pick is the most relevant column (largest F)
    assert selector.order_[0] == int(np.argmax(selector.relevance_))
    # a fourth pick is not a near-copy of inf0, though each is far more relevant (F) than it
    four = MRMR(n_features=4).fit(X, Y)
    fourth = four.order_[3]
    assert X.columns[fourth] in NOISE
    duplicates = [X.columns.get_loc(c) for c in DUPLICATES]
    assert four.relevance_[duplicates].min() > 10 * four.relevance_[fourth]
    assert np.isnan(four.fcq_).sum() == 26 - 4


@pytest.mark.slow
def test_wrapper_rfecv_keeps_the_informative_columns_and_no_noise() -> None:
    selector = Wrapper(cv=5)
    chosen = selected(selector)
    assert set(INFORMATIVE) <= chosen
    assert not chosen & set(NOISE)
    assert selector.n_features_ == len(chosen) <= 5
    assert selector.cv_scores_.shape == (26,)
    assert selector.cv_n_features_[np.argmax(selector.cv_scores_)] == selector.n_features_
    assert set(np.flatnonzero(selector.ranking_ == 1)) == {X.columns.get_loc(c) for c in chosen}


def test_wrapper_rfe_with_a_fixed_number() -> None:
    assert selected(Wrapper(n_features=3)) == set(INFORMATIVE)


@pytest.mark.slow
def test_stability_selection_splits_a_duplicated_signal_and_keeps_no_noise() -> None:
    selector = StabilitySelection(n_resamples=50)
    chosen = selected(selector)
    frequency = pd.Series(selector.frequencies_, index=X.columns)
    assert frequency[["inf1", "inf2"]].min() >= 0.9
    assert not chosen & set(NOISE)
    assert frequency[NOISE].max() < 0.5
    # inf0 and its near-copies share the selections: at most q = 5 columns per subsample, and
    # one of the group nearly always carries the signal
    assert frequency[["inf0", *DUPLICATES]].sum() >= 0.9
    assert selector.n_selected_ == 5


@pytest.mark.slow
def test_stability_selection_after_redundancy_keeps_exactly_the_informative_columns() -> None:
    pipeline = make_pipeline(Redundancy(), StabilitySelection(n_resamples=50))
    pipeline.set_output(transform="pandas")
    pipeline.fit(X, Y)
    assert set(pipeline.get_feature_names_out()) == set(INFORMATIVE)


def test_redundancy_keeps_exactly_one_of_the_duplicate_group_the_most_relevant() -> None:
    selector = Redundancy(max_correlation=0.8)
    chosen = selected(selector)
    group = ["inf0", *DUPLICATES]
    assert len(chosen & set(group)) == 1
    auc = {c: abs(roc_auc_score(Y, X[c]) - 0.5) for c in group}
    assert chosen & set(group) == {max(auc, key=auc.__getitem__)}
    assert chosen == set(X.columns) - set(group) | {max(auc, key=auc.__getitem__)}
    clusters = pd.Series(selector.clusters_, index=X.columns)
    assert clusters[group].nunique() == 1
    assert clusters.nunique() == 23
    assert selector.relevance_[X.columns.get_loc("inf1")] == pytest.approx(
        abs(roc_auc_score(Y, X["inf1"]) - 0.5)
    )


def test_redundancy_pearson_and_a_lower_cut() -> None:
    # at max_correlation 0.97 the near-copies (r about 0.93) are no longer redundant
    assert selected(Redundancy(max_correlation=0.97, method="pearson")) == set(X.columns)
    with pytest.raises(ValueError, match="method"):
        Redundancy(method="kendall").fit(X, Y)


def test_univariate_keeps_the_most_significant_column_when_nothing_passes() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=len(X))
    selector = Univariate(fdr=1e-6).fit(X, y)
    assert selector.get_support().sum() == 1
    assert selector.get_support()[int(np.argmin(selector.pvalues_))]


def test_labels_other_than_zero_one() -> None:
    labels = np.where(Y == 1, "complete", "incomplete")  # "incomplete" sorts last: positive
    assert selected(Univariate(), y=labels) == selected(Univariate(), y=Y)
    with pytest.raises(ValueError, match="2 classes"):
        Univariate().fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ValueError, match="mannwhitney"):
        Univariate(test="wald").fit(X, Y)


def test_redundancy_keeps_the_driver_of_a_pair_whose_decoy_comes_first() -> None:
    # Issue 16: a decoy correlated with the margin, without an effect of its own, placed before
    # it. The pair is one cluster (r about 0.9); the member kept is the one with the stronger
    # association (the driver), not the first column.
    rng = np.random.default_rng(16)
    driver = rng.normal(size=400)
    decoy = driver + 0.45 * rng.normal(size=400)
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-1.5 * driver))).astype(int)
    pair = pd.DataFrame({"decoy": decoy, "driver": driver, "other": rng.normal(size=400)})
    assert 0.85 < np.corrcoef(decoy, driver)[0, 1] < 0.95
    selector = Redundancy(max_correlation=0.8)
    assert selected(selector, X=pair, y=y) == {"driver", "other"}
    relevance = dict(zip(pair.columns, selector.relevance_, strict=True))
    assert relevance["driver"] > relevance["decoy"] > relevance["other"]
    assert selector.clusters_[0] == selector.clusters_[1] != selector.clusters_[2]
