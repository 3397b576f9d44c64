"""The model kinds of a study, one entry each: the only list of them in the code.

Everything else reads this list: the study's model factory (``make_model``) and default grids,
the default models of each endpoint, which kinds are networks (each compared with the best of
the other models on the same folds) and which read the FeatureTable's crops, and the bundle's
allow-list of networks it may rebuild from safetensors (``network_classes``). The study
config's ``kind`` is typed by ``hepablate.schemas.metrics.ModelKind`` (the schemas sit below
every package and cannot import this one); a test holds the two lists equal, and another holds
``docs/study-config.md`` to a row per kind.

Adding a kind is its estimator class and one ``ModelEntry`` here (CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sklearn.base import BaseEstimator

__all__ = [
    "DEFAULT_GRIDS",
    "KINDS",
    "ModelEntry",
    "default_models",
    "make_model",
    "model_kind",
    "network_classes",
]


@dataclass(frozen=True)
class ModelEntry:
    """One model kind of the study config (``models[].kind``)."""

    name: str
    # The class's public import path, "module:Class"; imported when a model is made, so that
    # reading a config does not load torch.
    estimator: str
    survival: bool  # a time-to-event model (else binary)
    # Searched by inner grouped cross-validation unless the config gives a grid; a grid of one
    # point is fitted without inner folds.
    grid: Mapping[str, list[Any]]
    # Constructor arguments besides the seed, and the argument that takes the study's seed.
    options: Mapping[str, Any] = field(default_factory=dict)
    seed_parameter: str | None = "random_state"
    # How a bundle keeps the fitted model: a skops file of the types in
    # ``bundle/trusted_types.py``, or the network's ``to_state`` as safetensors and JSON.
    saved_as: Literal["skops", "safetensors"] = "skops"
    crops: bool = False  # reads each tumour's image crops (the study sets ``crops``)
    # Its name in the default models of its endpoint (a config without ``models``); None: not
    # among them. ``clinical_default``: the default set also has it on the clinical columns.
    default_name: str | None = None
    clinical_default: bool = False

    @property
    def deep(self) -> bool:
        """A torch network (saved as weights), compared with the best baseline."""
        return self.saved_as == "safetensors"

    @property
    def class_path(self) -> str:
        """``module.Class``: how ``model.json`` of a bundle names the network."""
        return self.estimator.replace(":", ".")

    def estimator_class(self) -> type[BaseEstimator]:
        module, name = self.estimator.split(":")
        cls: type[BaseEstimator] = getattr(importlib.import_module(module), name)
        return cls

    def make(self, seed: int = 0) -> BaseEstimator:
        """The unfitted model with its default settings and the study's seed."""
        seeded = {} if self.seed_parameter is None else {self.seed_parameter: seed}
        return self.estimator_class()(**self.options, **seeded)


# The networks' default grids are one point each, so no inner folds: an ensemble refitted over
# 3 inner folds for each of 2 candidates is 7 ensembles per outer split instead of 1, which made
# deep_surv most of a study's time (87% of a 227-patient study) for no gain. Early stopping on
# held-out patients tunes the training length, weight decay and dropout regularise. The tabular
# networks without numeric embeddings: they did not help on ~200 virtual patients and moved the
# C-index by -0.005 to +0.016 (within the CIs) on the DeepSurv data sets of 1300 to 7000 rows; a
# grid `embedding: [0, 8]` tunes them by inner CV (docs/benchmarks.md, "Time of a study").
_ENTRIES = (
    # --- binary endpoints
    ModelEntry(
        "logistic",
        "sklearn.linear_model:LogisticRegression",
        survival=False,
        grid={"C": [0.01, 0.1, 1.0, 10.0]},
        # random_state seeds the saga and liblinear solvers' shuffling (lbfgs ignores it);
        # without it saga drew from numpy's global generator and a study did not repeat.
        options={"C": 1.0, "max_iter": 5000},
        default_name="logistic",
        clinical_default=True,
    ),
    ModelEntry(
        "gradient_boosting",
        "sklearn.ensemble:HistGradientBoostingClassifier",
        survival=False,
        grid={"learning_rate": [0.03, 0.1], "max_depth": [2, 3]},
        options={"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "early_stopping": False},
        default_name="gradient_boosting",
    ),
    ModelEntry(
        "random_forest",
        "sklearn.ensemble:RandomForestClassifier",
        survival=False,
        grid={"min_samples_leaf": [3, 10]},
        options={
            "n_estimators": 300,
            "min_samples_leaf": 5,
            "max_features": "sqrt",
            "n_jobs": 1,
        },
        default_name="random_forest",
    ),
    ModelEntry(
        "multimodal",
        "hepablate.models.multimodal:MultimodalClassifier",
        survival=False,
        grid={"weight_decay": [1e-4]},
        seed_parameter="seed",
        saved_as="safetensors",
        crops=True,
    ),
    ModelEntry(
        "mlp",
        "hepablate.models.tabular:MLPClassifier",
        survival=False,
        grid={"embedding": [0]},
        seed_parameter="seed",
        saved_as="safetensors",
    ),
    # --- time-to-event endpoints
    ModelEntry(
        "cox",
        "sksurv.linear_model:CoxPHSurvivalAnalysis",
        survival=True,
        grid={"alpha": [0.1, 1.0, 10.0, 100.0]},
        options={"alpha": 1.0, "ties": "efron"},
        seed_parameter=None,
        default_name="cox",
        clinical_default=True,
    ),
    ModelEntry(
        "random_survival_forest",
        "sksurv.ensemble:RandomSurvivalForest",
        survival=True,
        grid={"min_samples_leaf": [5, 15]},
        options={
            "n_estimators": 200,
            "min_samples_leaf": 10,
            "max_features": "sqrt",
            "n_jobs": 1,
        },
        default_name="random_survival_forest",
    ),
    ModelEntry(
        "gradient_boosting_survival",
        "sksurv.ensemble:GradientBoostingSurvivalAnalysis",
        survival=True,
        grid={"learning_rate": [0.03, 0.1]},
        options={"n_estimators": 150, "learning_rate": 0.05, "max_depth": 2, "subsample": 0.8},
        default_name="gradient_boosting",
    ),
    ModelEntry(
        "deep_surv",
        "hepablate.models.tabular:DeepSurv",
        survival=True,
        grid={"embedding": [0]},
        seed_parameter="seed",
        saved_as="safetensors",
    ),
    ModelEntry(
        "deep_discrete",
        "hepablate.models.tabular:DeepDiscreteTime",
        survival=True,
        grid={"embedding": [0]},
        seed_parameter="seed",
        saved_as="safetensors",
    ),
    ModelEntry(
        "multimodal_surv",
        "hepablate.models.multimodal:MultimodalSurvival",
        survival=True,
        grid={"weight_decay": [1e-4]},
        seed_parameter="seed",
        saved_as="safetensors",
        crops=True,
    ),
)

KINDS: Mapping[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}
DEFAULT_GRIDS: Mapping[str, Mapping[str, list[Any]]] = {
    name: entry.grid for name, entry in KINDS.items()
}


def model_kind(kind: str) -> ModelEntry:
    """The entry of ``kind``; an unknown kind is a ValueError naming the known ones."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} (the kinds: {', '.join(KINDS)})") from None


def make_model(kind: str, seed: int = 0) -> BaseEstimator:
    """An unfitted model of ``kind`` (its default grid: ``DEFAULT_GRIDS``)."""
    return model_kind(kind).make(seed)


def default_models(survival: bool) -> list[tuple[str, str, bool]]:
    """The default models of an endpoint as (name, kind, clinical only): the entries with a
    ``default_name``, in this module's order, then the clinical-only ones."""
    entries = [e for e in KINDS.values() if e.survival == survival and e.default_name]
    return [(str(e.default_name), e.name, False) for e in entries] + [
        (f"clinical_{e.default_name}", e.name, True) for e in entries if e.clinical_default
    ]


def network_classes() -> dict[str, type[BaseEstimator]]:
    """The networks a bundle may rebuild from weights (``model.json``'s class -> class)."""
    return {e.class_path: e.estimator_class() for e in KINDS.values() if e.deep}
