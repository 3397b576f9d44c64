"""The multimodal network's two heads: a binary outcome (``multimodal``) and a time to event
(``multimodal_surv``); see the package's doc."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv
from torch import nn

from hepablate.models._survival import breslow, cox_loss, survival_curves, survival_target
from hepablate.models.multimodal.base import MultimodalNetwork
from hepablate.models.multimodal.inputs import HU_WINDOW
from hepablate.models.multimodal.network import FusionNetwork

__all__ = ["MultimodalClassifier", "MultimodalSurvival"]


class MultimodalClassifier(ClassifierMixin, MultimodalNetwork):  # type: ignore[misc]
    """Binary outcome from a tumour's crops and its tabular features (see the module doc)."""

    def fit(self, X: pd.DataFrame, y: Any) -> MultimodalClassifier:
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError(f"a binary outcome is needed, got classes {self.classes_.tolist()}")
        target = (labels == self.classes_[1]).astype(np.float32)
        images, tabular, groups = self._prepare(X)
        positives = float(target.sum())
        self.pos_weight_ = (len(target) - positives) / max(positives, 1.0)
        self._train(images, tabular, {"y": target}, groups)
        return self

    def _loss(self, output: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            output, target["y"], pos_weight=torch.tensor(self.pos_weight_)
        )

    def _has_events(self, target: dict[str, np.ndarray], rows: np.ndarray) -> bool:
        return bool(target["y"][rows].min() != target["y"][rows].max())

    def _start_wide(
        self, network: FusionNetwork, tabular: np.ndarray, target: dict[str, np.ndarray]
    ) -> None:
        """A ridge logistic regression of the training rows; the intercept shifted by
        log(pos_weight), the optimum of the weighted loss (undone at prediction)."""
        logistic = LogisticRegression(C=self.wide_c, max_iter=5000).fit(tabular, target["y"])
        bias = float(logistic.intercept_[0]) + np.log(max(self.pos_weight_, 1e-6))
        self._set_wide(network, logistic.coef_.ravel(), bias)

    def _fitted(self) -> dict[str, Any]:
        return {
            **super()._fitted(),
            "pos_weight_": self.pos_weight_,
            "classes_": self.classes_.tolist(),
        }

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        super()._restore(fitted, tensors)
        self.pos_weight_ = float(fitted["pos_weight_"])
        self.classes_ = np.asarray(fitted["classes_"])

    def _member_logits(self, X: pd.DataFrame) -> np.ndarray:
        # Prior correction: the positives' weight multiplied the fitted odds by pos_weight_.
        correction = float(np.log(self.pos_weight_)) if self.pos_weight_ > 0 else 0.0
        return self._member_outputs(X) - correction

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        probability = (1.0 / (1.0 + np.exp(-self._member_logits(X)))).mean(axis=0)
        return np.column_stack([1.0 - probability, probability])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def predict_uncertainty(self, X: pd.DataFrame) -> np.ndarray:
        """The standard deviation of the members' probabilities (the ensemble's spread)."""
        return np.asarray((1.0 / (1.0 + np.exp(-self._member_logits(X)))).std(axis=0))


class MultimodalSurvival(MultimodalNetwork):
    """Time to event from a tumour's crops and its tabular features (see the module doc)."""

    def __init__(
        self,
        crops: dict[str, Any] | None = None,
        channels: tuple[int, ...] = (8, 16, 32),
        embedding: int = 16,
        hidden: int = 32,
        dropout: float = 0.2,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        epochs: int = 30,
        patience: int = 6,
        batch_size: int = 64,
        n_members: int = 3,
        augment: bool = True,
        seed: int = 0,
        n_threads: int = 2,
        wide_c: float = 1.0,
        verbose: bool = False,
        hu_window: tuple[float, float] = HU_WINDOW,
    ) -> None:
        super().__init__(
            crops,
            channels,
            embedding,
            hidden,
            dropout,
            learning_rate,
            weight_decay,
            epochs,
            patience,
            batch_size,
            n_members,
            augment,
            seed,
            n_threads,
            wide_c,
            verbose,
            hu_window,
        )

    def fit(self, X: pd.DataFrame, y: Any) -> MultimodalSurvival:
        event, time = survival_target(y)
        images, tabular, groups = self._prepare(X)
        self._train(images, tabular, {"event": event, "time": time}, groups)
        self.times_, self.baseline_ = breslow(self._outputs(images, tabular), event, time)
        return self

    def _loss(self, output: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        return cox_loss(output, target["time"], target["event"])

    def _has_events(self, target: dict[str, np.ndarray], rows: np.ndarray) -> bool:
        return bool(target["event"][rows].sum() >= 2)

    def _start_wide(
        self, network: FusionNetwork, tabular: np.ndarray, target: dict[str, np.ndarray]
    ) -> None:
        """A ridge Cox model of the training rows (penalty 1 / ``wide_c``)."""
        y = Surv.from_arrays(target["event"], target["time"])
        cox = CoxPHSurvivalAnalysis(alpha=1.0 / self.wide_c, ties="breslow").fit(tabular, y)
        self._set_wide(network, np.asarray(cox.coef_, dtype=float), 0.0)

    def _head_arrays(self) -> dict[str, np.ndarray]:
        return {"times": self.times_, "baseline": self.baseline_}

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        super()._restore(fitted, tensors)
        self.times_ = np.asarray(tensors["times"])
        self.baseline_ = np.asarray(tensors["baseline"])

    def score(self, X: pd.DataFrame, y: Any) -> float:
        """Harrell's C-index of the predicted risk."""
        event, time = survival_target(y)
        return float(concordance_index_censored(event, time, self.predict(X))[0])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Risk score (log hazard ratio, higher: earlier event), the members' mean."""
        return np.asarray(self._member_outputs(X).mean(axis=0))

    def predict_uncertainty(self, X: pd.DataFrame) -> np.ndarray:
        """Standard deviation of the members' risk scores."""
        return np.asarray(self._member_outputs(X).std(axis=0))

    def predict_survival_function(self, X: pd.DataFrame) -> np.ndarray:
        """Per row, S(t) = mean over members of exp(-H0(t) exp(f(x)))."""
        return survival_curves(self._member_outputs(X), self.times_, self.baseline_)
