"""Estimators with the scikit-learn contract: the baselines, the tabular networks and the
multimodal image network, and the registry of the study's model kinds (``registry.py``)."""

from hepablate.models.baselines import nomogram
from hepablate.models.registry import (
    DEFAULT_GRIDS,
    KINDS,
    ModelEntry,
    default_models,
    make_model,
    model_kind,
    network_classes,
)

__all__ = [
    "DEFAULT_GRIDS",
    "KINDS",
    "ModelEntry",
    "default_models",
    "make_model",
    "model_kind",
    "network_classes",
    "nomogram",
]
