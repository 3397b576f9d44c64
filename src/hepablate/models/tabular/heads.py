"""The tabular networks' heads: the binary classifier (``mlp``), DeepSurv (``deep_surv``) and
the discrete-time hazard (``deep_discrete``); see the package's doc."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sksurv.functions import StepFunction
from sksurv.metrics import concordance_index_censored
from torch import nn

from hepablate.models._survival import breslow, cox_loss, survival_curves, survival_target
from hepablate.models.tabular.base import TabularNetwork
from hepablate.models.tabular.network import Body, IntervalBody

__all__ = ["DeepDiscreteTime", "DeepSurv", "MLPClassifier"]


class MLPClassifier(ClassifierMixin, TabularNetwork):  # type: ignore[misc]
    """Binary outcome from tabular features (study kind ``mlp``)."""

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError(f"a binary outcome is needed, got classes {self.classes_.tolist()}")
        target = (labels == self.classes_[1]).astype(np.float32)
        positives = float(target.sum())
        self.pos_weight_ = (len(target) - positives) / max(positives, 1.0)
        inputs = self._fit_inputs(X)
        self._train(X, inputs, {"y": torch.from_numpy(target)})
        return self

    def _loss(
        self, output: torch.Tensor, target: dict[str, torch.Tensor], rows: np.ndarray
    ) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            output[:, 0], target["y"][rows], pos_weight=torch.tensor(self.pos_weight_)
        )

    def _scorable(self, target: dict[str, torch.Tensor], rows: np.ndarray) -> bool:
        labels = target["y"][rows]
        return bool(len(labels) and labels.min() != labels.max())

    def _logits(self, X: Any) -> np.ndarray:
        # Prior correction: the positives' weight multiplied the fitted odds by pos_weight_.
        return self._outputs(X)[:, :, 0] - np.log(max(self.pos_weight_, 1e-6))

    def predict_proba(self, X: Any) -> np.ndarray:
        probability = (1.0 / (1.0 + np.exp(-self._logits(X)))).mean(axis=0)
        return np.column_stack([1.0 - probability, probability])

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def predict_uncertainty(self, X: Any) -> np.ndarray:
        """Standard deviation of the members' probabilities."""
        return np.asarray((1.0 / (1.0 + np.exp(-self._logits(X)))).std(axis=0))

    def _fitted(self) -> dict[str, Any]:
        return {
            **super()._fitted(),
            "classes_": self.classes_.tolist(),
            "pos_weight_": self.pos_weight_,
        }

    def _restore(self, fitted: dict[str, Any]) -> None:
        super()._restore(fitted)
        self.classes_ = np.asarray(fitted["classes_"])
        self.pos_weight_ = float(fitted["pos_weight_"])


class _SurvivalNetwork(TabularNetwork):
    def _scorable(self, target: dict[str, torch.Tensor], rows: np.ndarray) -> bool:
        # The multimodal survival head's rule too: two events order a risk set.
        return bool(target["event"][rows].sum() >= 2)

    def score(self, X: Any, y: Any) -> float:
        """Harrell's C-index of the predicted risk."""
        event, time = survival_target(y)
        return float(concordance_index_censored(event, time, self.predict(X))[0])

    def predict_uncertainty(self, X: Any) -> np.ndarray:
        """Standard deviation of the members' risk scores."""
        return np.asarray(self._member_risk(X).std(axis=0))

    def predict(self, X: Any) -> np.ndarray:
        """Risk score (higher: earlier event), the members' mean."""
        return np.asarray(self._member_risk(X).mean(axis=0))

    def _member_risk(self, X: Any) -> np.ndarray:
        raise NotImplementedError


class DeepSurv(_SurvivalNetwork):
    """Cox partial likelihood on a network's log hazard ratio (study kind ``deep_surv``)."""

    def fit(self, X: Any, y: Any) -> DeepSurv:
        event, time = survival_target(y)
        inputs = self._fit_inputs(X)
        self._train(X, inputs, {"event": torch.from_numpy(event), "time": torch.from_numpy(time)})
        self._breslow(inputs, event, time)
        return self

    def _loss(
        self, output: torch.Tensor, target: dict[str, torch.Tensor], rows: np.ndarray
    ) -> torch.Tensor:
        """Negative Cox partial log-likelihood (Breslow ties), averaged over the events."""
        return cox_loss(output[:, 0], target["time"][rows], target["event"][rows])

    def _breslow(self, inputs: np.ndarray, event: np.ndarray, time: np.ndarray) -> None:
        """Breslow's baseline cumulative hazard of each member, at the training event times."""
        features = torch.from_numpy(inputs)
        with torch.no_grad():
            risk = np.stack([m(features).numpy()[:, 0].astype(float) for m in self.members_])
        self.times_, self.baseline_ = breslow(risk, event, time)

    def _member_risk(self, X: Any) -> np.ndarray:
        return self._outputs(X)[:, :, 0]

    def predict_survival_function(self, X: Any) -> np.ndarray:
        """Per row, S(t) = mean over members of exp(-H0(t) exp(f(x)))."""
        return survival_curves(self._member_risk(X), self.times_, self.baseline_)

    def _head_arrays(self) -> dict[str, np.ndarray]:
        return {"times": self.times_, "baseline": self.baseline_}

    def _restore_head(self, arrays: dict[str, np.ndarray]) -> None:
        self.times_ = arrays["times"]
        self.baseline_ = arrays["baseline"]


class DeepDiscreteTime(_SurvivalNetwork):
    """A logistic hazard per time interval (study kind ``deep_discrete``)."""

    def __init__(
        self,
        n_intervals: int = 20,
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
        super().__init__(
            hidden,
            dropout,
            learning_rate,
            weight_decay,
            epochs,
            patience,
            n_members,
            seed,
            n_threads,
            embedding,
            verbose,
        )
        self.n_intervals = n_intervals

    def _network(self) -> Body:
        body = IntervalBody(
            self.n_inputs_,
            len(self.cuts_) - 1,
            self.hidden,
            self.dropout,
            len(self.encoding_.numeric),
            self.embedding,
        )
        start = getattr(self, "_baseline_start", None)
        if start is not None:  # training: start at the empirical hazard of each interval
            with torch.no_grad():
                body.baseline.copy_(torch.from_numpy(start))
        return body

    def fit(self, X: Any, y: Any) -> DeepDiscreteTime:
        event, time = survival_target(y)
        quantiles = np.linspace(0, 1, self.n_intervals + 1)[1:]
        cuts = np.unique(np.quantile(time[event], quantiles)) if event.any() else [time.max()]
        self.cuts_ = np.concatenate([[0.0], cuts])
        if time.max() > self.cuts_[-1]:
            self.cuts_[-1] = time.max()
        # Interval of each row's time, and whether the event happened in it.
        interval = np.clip(np.searchsorted(self.cuts_, time, side="left") - 1, 0, None)
        interval = np.minimum(interval, len(self.cuts_) - 2)
        n = len(self.cuts_) - 1
        at_risk = np.array([(interval >= j).sum() for j in range(n)], dtype=float)
        events = np.array([(event & (interval == j)).sum() for j in range(n)], dtype=float)
        hazard = np.clip(events / np.maximum(at_risk, 1.0), 1e-4, 1 - 1e-4)
        self._baseline_start = np.log(hazard / (1 - hazard)).astype(np.float32)
        inputs = self._fit_inputs(X)
        self._train(
            X,
            inputs,
            {
                "interval": torch.from_numpy(interval.astype(np.int64)),
                "event": torch.from_numpy(event),
            },
        )
        return self

    def _loss(
        self, output: torch.Tensor, target: dict[str, torch.Tensor], rows: np.ndarray
    ) -> torch.Tensor:
        """Negative log-likelihood of the logistic hazards (nnet-survival): every interval a
        row survived through contributes log(1 - h), the interval of an event log(h)."""
        interval, event = target["interval"][rows], target["event"][rows].float()
        steps = torch.arange(output.shape[1])[None, :]
        survived = (steps < interval[:, None]).float()
        in_interval = (steps == interval[:, None]).float()
        log_h = nn.functional.logsigmoid(output)
        log_not = nn.functional.logsigmoid(-output)
        likelihood = (survived * log_not).sum(1) + (in_interval * log_h).sum(1) * event
        # A censored row survived its own interval too (censoring at the interval's end).
        likelihood += (in_interval * log_not).sum(1) * (1 - event)
        return -likelihood.mean()

    def _member_survival(self, X: Any) -> np.ndarray:
        hazard = 1.0 / (1.0 + np.exp(-self._outputs(X)))  # members x rows x intervals
        return np.cumprod(1.0 - hazard, axis=2)

    def _member_risk(self, X: Any) -> np.ndarray:
        """Cumulative hazard over all intervals: -log S at the last cut."""
        return -np.log(np.clip(self._member_survival(X)[:, :, -1], 1e-12, 1.0))

    def predict_survival_function(self, X: Any) -> np.ndarray:
        survival = self._member_survival(X).mean(axis=0)
        times = self.cuts_[1:]
        return np.asarray([StepFunction(times, s) for s in survival])

    def _head_arrays(self) -> dict[str, np.ndarray]:
        return {"cuts": self.cuts_}

    def _restore_head(self, arrays: dict[str, np.ndarray]) -> None:
        self.cuts_ = arrays["cuts"]
