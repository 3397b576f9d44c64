"""Tabular deep networks: a binary classifier and two survival heads, as scikit-learn estimators.

One body for all three: the inputs (numbers standardised, missing values set to the training
median with a missing-indicator input, categories one-hot) go through a linear ("wide") term
plus a small MLP (two hidden layers, ReLU, dropout) whose last layer starts at zero, so the
network starts where a linear model is and the MLP learns what it misses. Heads:

- ``MLPClassifier`` (study kind ``mlp``): log-odds, binary cross-entropy with the positives
  weighted by the class ratio and the intercept corrected back (prior correction);
- ``DeepSurv`` (``deep_surv``): log hazard ratio trained on the Cox partial likelihood (Katzman
  et al. 2018; Breslow ties); survival curves from the Breslow baseline hazard;
- ``DeepDiscreteTime`` (``deep_discrete``): a logistic hazard per time interval (nnet-survival,
  Gensheimer & Narasimhan 2019; intervals at quantiles of the event times): a baseline per
  interval plus the network's shared risk; survival curves as the product of the intervals'
  survival.

Training: AdamW on full batches (the tables are small), early stopping on 20% of the training
rows held out (grouped by patient when the rows are indexed by (patient, tumour)), an ensemble
of ``n_members`` seeded networks whose spread is the predictive uncertainty. One torch thread
by default: on these small matrices a second thread only adds synchronisation, and on a busy
2-core machine it made a fit 6 to 8 times slower (docs/benchmarks.md, "Time of a study").
Fitted state is saved without pickle (``to_state``: arrays for safetensors and a JSON config).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from rtdl_num_embeddings import PeriodicEmbeddings
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from sksurv.functions import StepFunction
from sksurv.metrics import concordance_index_censored
from torch import nn

from hepablate.models._ensemble import (
    load_members,
    member_arrays,
    torch_threads,
    training_progress,
)
from hepablate.models._survival import breslow, cox_loss, survival_curves, survival_target

__all__ = ["DeepDiscreteTime", "DeepSurv", "MLPClassifier"]


class _Body(nn.Module):
    """``wide(x) + out(mlp(x'))``, where ``x'`` is ``x`` with its first ``n_numeric`` columns
    replaced by their periodic embeddings (``embedding`` numbers per column; 0: none)."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: int,
        dropout: float,
        n_numeric: int = 0,
        embedding: int = 0,
    ) -> None:
        super().__init__()
        self.wide = nn.Linear(n_inputs, n_outputs)
        self.n_numeric = n_numeric if embedding > 0 else 0
        self.embed: nn.Module | None = None
        deep_inputs = n_inputs
        if self.n_numeric:
            # PLR embeddings (Gorishniy et al., NeurIPS 2022): sin/cos of learnt frequencies,
            # then a linear layer and ReLU, per numeric column.
            self.embed = PeriodicEmbeddings(self.n_numeric, embedding, n_frequencies=16, lite=False)
            deep_inputs = n_inputs - self.n_numeric + self.n_numeric * embedding
        self.deep = nn.Sequential(
            nn.Linear(deep_inputs, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.out = nn.Linear(hidden, n_outputs)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = x
        if self.embed is not None:
            numbers = self.embed(x[:, : self.n_numeric]).flatten(1)
            deep = torch.cat([numbers, x[:, self.n_numeric :]], dim=1)
        return self.wide(x) + self.out(self.deep(deep))


class _IntervalBody(_Body):
    """The logistic hazard of each interval: a learnt baseline per interval plus the shared
    risk of the inputs (the discrete-time analogue of proportional hazards), so the intervals
    share what the covariates do instead of fitting it 20 times over."""

    def __init__(
        self,
        n_inputs: int,
        n_intervals: int,
        hidden: int,
        dropout: float,
        n_numeric: int = 0,
        embedding: int = 0,
    ) -> None:
        super().__init__(n_inputs, 1, hidden, dropout, n_numeric, embedding)
        self.baseline = nn.Parameter(torch.zeros(n_intervals))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.baseline[None, :] + super().forward(x)


class _TabularNetwork(BaseEstimator):  # type: ignore[misc]
    """Inputs, training loop, ensemble and state shared by the three heads."""

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
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        self.numeric_ = [str(c) for c in numeric]
        self.categories_ = {
            str(c): sorted(frame[c].dropna().astype(str).unique().tolist())
            for c in frame.columns
            if c not in numeric
        }
        values = frame[numeric].to_numpy(dtype=float) if numeric else np.zeros((len(frame), 0))
        with np.errstate(all="ignore"):
            medians = np.nanmedian(values, axis=0) if values.size else np.zeros(0)
        self.medians_ = np.nan_to_num(medians)
        filled = np.where(np.isnan(values), self.medians_, values)
        self.means_ = filled.mean(axis=0) if len(filled) else np.zeros(0)
        spread = filled.std(axis=0) if len(filled) else np.zeros(0)
        self.scales_ = np.where(spread > 0, spread, 1.0)
        has_missing = np.atleast_1d(np.isnan(values).any(axis=0)).tolist()
        self.missing_ = [str(c) for c, m in zip(numeric, has_missing, strict=True) if m]
        return self._inputs(frame)

    def _inputs(self, X: Any) -> np.ndarray:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        if list(frame.columns) != list(self.feature_names_in_):
            raise ValueError(
                f"expected columns {list(self.feature_names_in_)}, got {list(frame.columns)}"
            )
        values = frame[self.numeric_].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        parts = [(np.where(np.isnan(values), self.medians_, values) - self.means_) / self.scales_]
        parts += [frame[[c]].isna().to_numpy(dtype=float) for c in self.missing_]
        for column, levels in self.categories_.items():
            text = frame[column].astype("string")
            parts.append(np.column_stack([(text == level).fillna(False) for level in levels]))
        return np.column_stack(parts).astype(np.float32) if parts else np.zeros((len(frame), 0))

    # --- training -----------------------------------------------------------------------

    def _n_outputs(self) -> int:
        return 1

    def _loss(
        self, output: torch.Tensor, target: dict[str, torch.Tensor], rows: np.ndarray
    ) -> torch.Tensor:
        raise NotImplementedError

    def _network(self) -> _Body:
        return _Body(
            self.n_inputs_,
            self._n_outputs(),
            self.hidden,
            self.dropout,
            len(self.numeric_),
            self.embedding,
        )

    def _held_out(self, X: Any, n: int, member: int) -> tuple[np.ndarray, np.ndarray]:
        seed = self.seed * 1000 + member
        index = X.index if isinstance(X, pd.DataFrame) else None
        if isinstance(index, pd.MultiIndex):
            groups = index.get_level_values(0).astype(str).to_numpy()
            split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
            train, held = next(split.split(np.zeros(n), groups=groups))
        else:
            train, held = next(
                ShuffleSplit(n_splits=1, test_size=0.2, random_state=seed).split(np.zeros(n))
            )
        return train, held

    def _train(self, X: Any, inputs: np.ndarray, target: dict[str, torch.Tensor]) -> None:
        self.n_inputs_ = inputs.shape[1]
        self.members_: list[_Body] = []
        self.epochs_: list[int] = []
        features = torch.from_numpy(inputs)
        label = type(self).__name__
        with (
            torch_threads(self.n_threads),
            training_progress(self.verbose, label, self.n_members, self.epochs) as progress,
        ):
            for member in range(self.n_members):
                torch.manual_seed(self.seed * 1000 + member)
                train, held = self._held_out(X, len(inputs), member)
                network = self._network()
                optimiser = torch.optim.AdamW(
                    network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
                )
                best, best_state, best_epoch, waited = np.inf, network.state_dict(), 0, 0
                for epoch in range(self.epochs):
                    network.train()
                    optimiser.zero_grad()
                    loss = self._loss(network(features[train]), target, train)
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimiser.step()
                    network.eval()
                    with torch.no_grad():
                        score = float(self._loss(network(features[held]), target, held))
                    progress(member, epoch + 1, score)
                    if score < best - 1e-5:
                        best, best_epoch, waited = score, epoch + 1, 0
                        best_state = {k: v.clone() for k, v in network.state_dict().items()}
                    else:
                        waited += 1
                        if waited >= self.patience:
                            break
                network.load_state_dict(best_state)
                network.eval()
                self.members_.append(network)
                self.epochs_.append(best_epoch)

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
        values = np.mean(attributions, axis=0)
        # Fold each input back onto its column: a column's missing indicator and levels add up.
        columns = list(self.feature_names_in_)
        folded = np.zeros((len(values), len(columns)))
        position = 0
        for column in self.numeric_:
            folded[:, columns.index(column)] += values[:, position]
            position += 1
        for column in self.missing_:
            folded[:, columns.index(column)] += values[:, position]
            position += 1
        for column, levels in self.categories_.items():
            folded[:, columns.index(column)] += values[:, position : position + len(levels)].sum(1)
            position += len(levels)
        return folded

    # --- persistence (no pickle) ------------------------------------------------------------

    def _fitted(self) -> dict[str, Any]:
        return {
            "feature_names_in_": self.feature_names_in_.tolist(),
            "numeric_": self.numeric_,
            "categories_": self.categories_,
            "medians_": self.medians_.tolist(),
            "means_": self.means_.tolist(),
            "scales_": self.scales_.tolist(),
            "missing_": self.missing_,
            "n_inputs_": self.n_inputs_,
            "epochs_": self.epochs_,
        }

    def _restore(self, fitted: dict[str, Any]) -> None:
        self.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.numeric_ = list(fitted["numeric_"])
        self.categories_ = {k: list(v) for k, v in fitted["categories_"].items()}
        self.medians_ = np.asarray(fitted["medians_"], dtype=float)
        self.means_ = np.asarray(fitted["means_"], dtype=float)
        self.scales_ = np.asarray(fitted["scales_"], dtype=float)
        self.missing_ = list(fitted["missing_"])
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


class MLPClassifier(ClassifierMixin, _TabularNetwork):  # type: ignore[misc]
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


class _SurvivalNetwork(_TabularNetwork):
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

    def _network(self) -> _Body:
        body = _IntervalBody(
            self.n_inputs_,
            len(self.cuts_) - 1,
            self.hidden,
            self.dropout,
            len(self.numeric_),
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
