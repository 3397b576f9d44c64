"""Estimators with the scikit-learn contract: the baselines (and, later, the deep models)."""

from hepablate.models.baselines import DEFAULT_GRIDS, make_model, nomogram

__all__ = ["DEFAULT_GRIDS", "make_model", "nomogram"]
