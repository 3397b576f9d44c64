"""The selectors on a synthetic survival problem (exponential times, hazard from the three
informative columns, about 35 % censored), and the univariate Cox tests against references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sksurv.compare import compare_survival
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from statsmodels.duration.hazard_regression import PHReg

from hepablate.selection import (
    MRMR,
    Embedded,
    Redundancy,
    StabilitySelection,
    Univariate,
    Wrapper,
)
from hepablate.selection._base import as_target, cox_score_test, cox_wald_test
from tests.selection.synthetic import DUPLICATES, INFORMATIVE, NOISE, survival

X, Y = survival()


def selected(selector: Any, X: pd.DataFrame = X, y: Any = Y) -> set[str]:
    return set(selector.fit(X, y).get_feature_names_out())


def test_the_problem_is_what_the_tests_assume() -> None:
    censored = 1 - Y["event"].mean()
    assert 0.25 < censored < 0.45
    assert Y.dtype.names == ("event", "time")


def test_score_test_equals_the_log_rank_test_for_a_binary_column() -> None:
    column = (X["inf1"] > X["inf1"].median()).to_numpy()
    chi2 = cox_score_test(column[:, None].astype(float), as_target(Y))[0]
    reference, _ = compare_survival(Y, column)
    assert chi2 == pytest.approx(reference, rel=1e-9)


def test_wald_test_equals_a_univariate_cox_fit() -> None:
    columns = ["inf0", "inf2", "noise0"]
    beta, wald = cox_wald_test(X[columns].to_numpy(), as_target(Y))
    for j, name in enumerate(columns):
        fit = PHReg(Y["time"], X[[name]].to_numpy(), status=Y["event"], ties="breslow").fit()
        assert beta[j] == pytest.approx(fit.params[0], rel=1e-6)
        assert wald[j] == pytest.approx((fit.params[0] / fit.bse[0]) ** 2, rel=1e-5)
        cox = CoxPHSurvivalAnalysis().fit(X[[name]], Y)
        assert beta[j] == pytest.approx(cox.coef_[0], rel=1e-6)


def test_univariate_cox_keeps_the_associated_columns_and_no_noise() -> None:
    for test in ("auto", "score", "wald"):
        selector = Univariate(test=test)
        assert selected(selector) == set(INFORMATIVE) | set(DUPLICATES), test
        assert selector.pvalues_[X.columns.get_loc("inf1")] < 1e-10
    with pytest.raises(ValueError, match="survival"):
        Univariate(test="mannwhitney").fit(X, Y)


def test_embedded_coxnet_keeps_the_informative_columns_and_no_noise() -> None:
    selector = Embedded(cv=5)
    chosen = selected(selector)
    assert set(INFORMATIVE) <= chosen
    assert not chosen & set(NOISE)
    assert selector.chosen_penalty_ in selector.penalties_
    assert 0.7 < np.max(selector.cv_scores_) < 0.85  # Harrell's C of the inner folds


def test_redundancy_keeps_exactly_one_of_the_duplicate_group_the_most_concordant() -> None:
    selector = Redundancy()
    chosen = selected(selector)
    group = ["inf0", *DUPLICATES]
    concordance = {
        c: abs(concordance_index_censored(Y["event"], Y["time"], X[c])[0] - 0.5) for c in group
    }
    assert chosen & set(group) == {max(concordance, key=concordance.__getitem__)}
    assert len(chosen) == 23


def test_stability_selection_survival() -> None:
    selector = StabilitySelection(n_resamples=50)
    chosen = selected(selector)
    frequency = pd.Series(selector.frequencies_, index=X.columns)
    assert {"inf1", "inf2"} <= chosen
    assert not chosen & set(NOISE)
    assert frequency[["inf0", *DUPLICATES]].sum() >= 0.9
    pipeline = make_pipeline(Redundancy(), StabilitySelection(n_resamples=50))
    pipeline.set_output(transform="pandas")
    assert set(pipeline.fit(X, Y).get_feature_names_out()) == set(INFORMATIVE)


def test_mrmr_and_wrapper_survival() -> None:
    assert selected(MRMR(n_features=3)) == set(INFORMATIVE)
    chosen = selected(Wrapper(n_features=3, step=2))
    assert chosen == set(INFORMATIVE)


def test_survival_fields_may_have_other_names() -> None:
    renamed = np.empty(len(Y), dtype=[("died", bool), ("months", float)])
    renamed["died"], renamed["months"] = Y["event"], Y["time"]
    assert selected(Univariate(), y=renamed) == selected(Univariate())
    bad = np.empty(len(Y), dtype=[("died", int), ("months", float)])
    with pytest.raises(ValueError, match="boolean"):
        Univariate().fit(X, bad)


def test_redundancy_keeps_the_driver_of_a_pair_whose_decoy_comes_first() -> None:
    # Issue 16's decoy, for a time-to-event outcome: the kept member of the pair is the more
    # concordant one (the driver, second), not the first column.
    rng = np.random.default_rng(16)
    driver = rng.normal(size=400)
    decoy = driver + 0.45 * rng.normal(size=400)
    time = rng.exponential(np.exp(-1.0 * driver))
    censor = rng.exponential(2.0, size=400)
    y = np.empty(400, dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = time <= censor, np.minimum(time, censor)
    pair = pd.DataFrame({"decoy": decoy, "driver": driver, "other": rng.normal(size=400)})
    selector = Redundancy(max_correlation=0.8)
    assert selected(selector, X=pair, y=y) == {"driver", "other"}
    c_index = {
        c: abs(concordance_index_censored(y["event"], y["time"], pair[c])[0] - 0.5)
        for c in pair.columns
    }
    assert c_index["driver"] > c_index["decoy"]
    assert selector.relevance_ == pytest.approx([c_index[c] for c in pair.columns])
