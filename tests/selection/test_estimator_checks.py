"""scikit-learn's common estimator checks over every selector (light settings).

No check is skipped or expected to fail. The supervised selectors declare a binary target in
``__sklearn_tags__`` (``classifier_tags = ClassifierTags(multi_class=False)``), so the checks
hand them two-class y; NearZeroVariance and Reproducible declare that they need no y. The
array-API checks skip themselves (SCIPY_ARRAY_API unset; the selectors do not claim support).
"""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from hepablate import selection
from hepablate.selection import (
    MRMR,
    Embedded,
    NearZeroVariance,
    Redundancy,
    Reproducible,
    StabilitySelection,
    Univariate,
    Wrapper,
)

SELECTORS = [
    NearZeroVariance(),
    Reproducible(),
    Univariate(),
    Redundancy(),
    MRMR(n_features=2),
    Embedded(cv=3, Cs=5),
    Wrapper(cv=3),
    StabilitySelection(n_resamples=5),
]


@pytest.mark.slow
@parametrize_with_checks(SELECTORS)
def test_scikit_learn_common_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_the_checks_cover_every_selector_of_the_registry() -> None:
    assert {type(s) for s in SELECTORS} == set(selection.SELECTORS.values())
