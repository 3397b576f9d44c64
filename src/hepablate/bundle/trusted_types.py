"""The types a bundle's skops files may hold beyond skops' own defaults: exactly the classes
hepablate's preparation, selectors and models write, by fully qualified name.

skops trusts some types by default (scikit-learn's public estimators, NumPy and SciPy ufuncs,
plain containers); ``skops.io.get_untrusted_types`` reports every other type, function or
method a file names. A bundle is loaded only if each reported name is in ``TRUSTED_TYPES``:
a name is trusted because hepablate writes it, never because of its package, so a crafted file
naming any other function (a testing helper that executes a string, one that starts a
subprocess, one that writes a file) is refused before anything is imported or called.

``tests/bundle/test_trusted_types.py`` fits every model kind and every selector and checks both
ways: each type they write is here, and each type here is written by one of them. A new model
kind, selector or library version that writes another type fails that test until the type is
reviewed and added (or removed when nothing writes it any more).

A trusted type says that constructing it runs no foreign code, not that its content is sound:
skops notes that a crafted tree (``Tree``, ``TreePredictor``) can crash the process when the
model runs. The bundle's signature (a trusted author, ``hepablate.bundle.signing``) is what
vouches for the content; it is checked before any skops file is read.
"""

from __future__ import annotations

__all__ = ["TRUSTED_TYPES"]

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # numpy.dtype objects (the encoder's and imputers' dtypes)
        "numpy.dtype",
        # selectors (hepablate.selection)
        "hepablate.selection.filters.MRMR",
        "hepablate.selection.filters.NearZeroVariance",
        "hepablate.selection.filters.Redundancy",
        "hepablate.selection.filters.Reproducible",
        "hepablate.selection.filters.Univariate",
        "hepablate.selection.model_based.Embedded",
        "hepablate.selection.model_based.StabilitySelection",
        "hepablate.selection.model_based.Wrapper",
        # gradient boosting: its fitted trees
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # random forest, random survival forest, gradient-boosted Cox: their fitted trees
        "sklearn.tree._tree.Tree",
        # Cox PH and gradient-boosted Cox (scikit-survival)
        "sksurv.functions.StepFunction",
        "sksurv.linear_model.coxph.BreslowEstimator",
        "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
        "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
        "sksurv.ensemble.survival_loss.CoxPH",
        # random survival forest
        "sksurv.ensemble.forest.RandomSurvivalForest",
        "sksurv.tree.tree.SurvivalTree",
    }
)
