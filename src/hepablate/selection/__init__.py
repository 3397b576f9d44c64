"""Feature selectors as scikit-learn transformers, refitted inside every training fold.

Each is a ``SelectorMixin`` estimator: ``fit(X, y, groups=None)`` learns which columns to keep
from the training rows only (``groups``: patient ids for any inner cross-validation),
``transform`` keeps them and ``get_feature_names_out`` names them. ``y`` is binary or a
scikit-survival structured array (event, time). Every selector keeps the columns named in
``force`` and at least one column. ``registry.py`` names them for the study config
(``SELECTORS``, ``make_selector``).
"""

from hepablate.selection._base import relevance
from hepablate.selection.filters import MRMR, NearZeroVariance, Redundancy, Reproducible, Univariate
from hepablate.selection.model_based import Embedded, StabilitySelection, Wrapper
from hepablate.selection.registry import SELECTORS, make_selector, selector_class

__all__ = [
    "MRMR",
    "SELECTORS",
    "Embedded",
    "NearZeroVariance",
    "Redundancy",
    "Reproducible",
    "StabilitySelection",
    "Univariate",
    "Wrapper",
    "make_selector",
    "relevance",
    "selector_class",
]
