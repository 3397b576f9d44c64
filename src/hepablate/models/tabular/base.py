"""What the three tabular heads share: their parameters, their training through the models'
one ensemble trainer, their outputs, explanations and state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from hepablate.models._ensemble import (
    Member,
    Training,
    load_members,
    member_arrays,
    torch_threads,
    train_ensemble,
)
from hepablate.models.tabular.inputs import TabularEncoding
from hepablate.models.tabular.network import Body

__all__ = ["TabularNetwork"]


class TabularNetwork(BaseEstimator):  # type: ignore[misc]
    """Inputs, training, ensemble and state shared by the three heads; a head gives its loss
    (``_loss``), what its held-out rows need to be scored (``_scorable``) and its outputs."""

    def __init__(
        self,
        hidden: int = 32,
        dropout: float = 0.2,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-3,
        epochs: int = 300,
        patience: int = 20,
        n_members: int = 5,
        seed: int = 0,
        n_threads: int = 1,
        embedding: int = 8,
        verbose: bool = False,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.patience = patience
        self.n_members = n_members
        self.seed = seed
        self.n_threads = n_threads
        self.embedding = embedding
        self.verbose = verbose

    # --- inputs -------------------------------------------------------------------------

    def _fit_inputs(self, X: Any) -> np.ndarray:
        self.encoding_ = TabularEncoding.fit(X)
        self.feature_names_in_ = np.asarray(self.encoding_.columns, dtype=object)
        self.n_features_in_ = len(self.encoding_.columns)
        return self.encoding_.transform(X)

    def _inputs(self, X: Any) -> np.ndarray:
        return self.encoding_.transform(X)

    # --- training -----------------------------------------------------------------------

    def _n_outputs(self) -> int:
        return 1

    def _loss(
        self, output: torch.Tensor, target: dict[str, torch.Tensor], rows: np.ndarray
    ) -> torch.Tensor:
        raise NotImplementedError

    def _scorable(self, target: dict[str, torch.Tensor], rows: np.ndarray) -> bool:
        raise NotImplementedError

    def _network(self) -> Body:
        return Body(
            self.n_inputs_,
            self._n_outputs(),
            self.hidden,
            self.dropout,
            len(self.encoding_.numeric),
            self.embedding,
        )

    def _train(self, X: Any, inputs: np.ndarray, target: dict[str, torch.Tensor]) -> None:
        self.n_inputs_ = inputs.shape[1]
        index = X.index if isinstance(X, pd.DataFrame) else None
        # Rows indexed by (patient, tumour): hold out whole patients.
        groups = (
            index.get_level_values(0).astype(str).to_numpy()
            if isinstance(index, pd.MultiIndex)
            else None
        )
        training = Training(
            n_members=self.n_members,
            seed=self.seed,
            epochs=self.epochs,
            patience=self.patience,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            n_threads=self.n_threads,
            verbose=self.verbose,
            label=type(self).__name__,
        )
        family = _FullBatch(self, torch.from_numpy(inputs), target)
        self.members_, self.epochs_ = train_ensemble(training, family, len(inputs), groups)

    def _outputs(self, X: Any) -> np.ndarray:
        """Every member's raw output (members x rows x outputs)."""
        features = torch.from_numpy(self._inputs(X))
        with torch_threads(self.n_threads), torch.no_grad():
            return np.stack([m(features).numpy().astype(float) for m in self.members_])

    # --- explanations ---------------------------------------------------------------------

    def explain(self, X: Any) -> np.ndarray:
        """Integrated gradients (Captum) of the model's output (log-odds, log hazard ratio, or
        the mean interval log-odds of the discrete hazard) with respect to the inputs, from the
        training mean, averaged over the members; each input column's missing indicator and
        one-hot levels are added to it (rows x input columns)."""
        from captum.attr import IntegratedGradients

        features = torch.from_numpy(self._inputs(X))
        attributions = []
        with torch_threads(self.n_threads):
            for member in self.members_:
                gradients = IntegratedGradients(lambda x, net=member: net(x).mean(dim=1))
                attribution = gradients.attribute(features, torch.zeros_like(features), n_steps=32)
                attributions.append(attribution.detach().numpy())
        return self.encoding_.fold(np.mean(attributions, axis=0))

    # --- persistence (no pickle) ------------------------------------------------------------

    def _fitted(self) -> dict[str, Any]:
        return {**self.encoding_.to_fitted(), "n_inputs_": self.n_inputs_, "epochs_": self.epochs_}

    def _restore(self, fitted: dict[str, Any]) -> None:
        self.encoding_ = TabularEncoding.from_fitted(fitted)
        self.feature_names_in_ = np.asarray(self.encoding_.columns, dtype=object)
        self.n_features_in_ = len(self.encoding_.columns)
        self.n_inputs_ = int(fitted["n_inputs_"])
        self.epochs_ = list(fitted["epochs_"])

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (every member's weights, and a head's fitted arrays) and a JSON config."""
        tensors = member_arrays(self.members_)
        tensors.update({f"head.{k}": np.asarray(v) for k, v in self._head_arrays().items()})
        config = {
            "class": type(self).__name__,
            "params": self.get_params(),
            "fitted": self._fitted(),
        }
        return tensors, config

    def _head_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore_head(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    @classmethod
    def from_state(cls, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
        """The fitted estimator ``to_state`` described; refuses weights that do not fit."""
        if config.get("class") != cls.__name__:
            raise ValueError(f"state of {config.get('class')!r}, not {cls.__name__}")
        params = dict(config["params"])
        # Saved before numeric embeddings existed (hepablate 0.1.0 bundles of 2026-11-23).
        params.setdefault("embedding", 0)
        model = cls(**params)
        model._restore(config["fitted"])
        model._restore_head(
            {
                k.removeprefix("head."): np.asarray(v)
                for k, v in tensors.items()
                if k.startswith("head.")
            }
        )
        model.members_ = load_members(tensors, model.n_members, model._network)
        return model


class _FullBatch:
    """The tabular family for the trainer: one full-batch step per epoch (the tables are
    small), no augmentation."""

    def __init__(
        self, model: TabularNetwork, features: torch.Tensor, target: dict[str, torch.Tensor]
    ) -> None:
        self.model = model
        self.features = features
        self.target = target

    def scorable(self, rows: np.ndarray) -> bool:
        return self.model._scorable(self.target, rows)

    def build(self, member: Member) -> Body:
        return self.model._network()

    def batches(self, member: Member) -> Iterable[np.ndarray]:
        return (member.train,)

    def training_loss(self, network: Body, rows: np.ndarray, member: Member) -> torch.Tensor:
        return self.held_out_loss(network, rows)

    def held_out_loss(self, network: Body, rows: np.ndarray) -> torch.Tensor:
        return self.model._loss(network(self.features[rows]), self.target, rows)
