"""A multimodal network: a 3D CNN over each tumour's crops fused with its tabular features.

The image branch is a MONAI ``Regressor`` (residual convolutions, stride 2) over the six crop
channels of a tumour (``hepablate.features.crops``: pre CT, tumour and ablation-zone masks in
the pre frame; post CT, zone and tumour in the post frame sampled through the registration;
the three pre channels alone when a training tumour has no post crop, a pre-treatment cohort),
32³ voxels of 2 mm by default: what trains on two CPU cores. It yields an embedding (the
``deep.*`` columns of :meth:`MultimodalClassifier.embed`), concatenated with a small dense
branch over the tabular features; a linear head gives the output, added to a linear ("wide")
term over the tabular features. Two heads:

- ``MultimodalClassifier`` (study kind ``multimodal``): the log-odds of a binary outcome;
  training starts from a ridge logistic regression of the training rows (the wide term) with
  the deep head at zero; positives up-weighted by the class ratio with the intercept corrected
  back afterwards (King & Zeng 2001's prior correction), so probabilities stay calibrated;
- ``MultimodalSurvival`` (``multimodal_surv``): a log hazard ratio trained on the Cox partial
  likelihood within each mini-batch (as DeepSurv), started from a ridge Cox model; survival
  curves from each member's Breslow baseline hazard.

So the network begins where the linear baseline is, and early stopping keeps what the image
and the dense branch add on held-out patients.

Training: Adam with weight decay; early stopping on a held-out 20% of the training *patients*;
MONAI augmentation (random flips and axial quarter turns, applied to CT and masks together, and
Gaussian noise on the CT channels); a deep ensemble of ``n_members`` networks, seeded, whose
spread is the predictive uncertainty.

The estimator follows scikit-learn: ``X`` is a DataFrame indexed by (patient, tumour), as the
study's pipeline passes it; ``crops`` says where the FeatureTable's crops are (its
``attrs["hepablate"]["crops"]``) and is set by the study. Fitted state is saved without pickle
(``to_state``: tensors for safetensors and a JSON config).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.networks.nets.regressor import Regressor
from monai.transforms.compose import Compose
from monai.transforms.spatial.array import RandAxisFlip, RandRotate90
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv
from torch import nn

from hepablate.features.cache import FeatureCache
from hepablate.models._ensemble import (
    load_members,
    member_arrays,
    torch_threads,
    training_progress,
)
from hepablate.models._survival import breslow, cox_loss, survival_curves, survival_target

__all__ = ["CropSource", "MultimodalClassifier", "MultimodalSurvival"]

# CT channels are windowed to soft tissue and scaled to about [-1, 1]; masks stay 0/1.
_HU_WINDOW = (-100.0, 250.0)
# The crops of a tumour: before ablation (always) and after (when a post CT exists).
PHASES = ("pre", "post")
# Rows per forward pass when predicting, embedding or computing the Breslow baseline.
INFERENCE_BATCH = 256


class CropSource:
    """The crops of a FeatureTable: its cache folder and each patient's cache key.

    A tumour has a ``pre`` crop (pre CT, tumour and zone masks) and, when a post-ablation CT
    with a registered zone exists, a ``post`` crop: a model uses the phases every one of its
    training tumours has (``PHASES``, or the pre crop alone on a pre-treatment cohort).
    """

    def __init__(self, info: dict[str, Any]) -> None:
        if not info.get("cache"):
            raise ValueError(
                "the FeatureTable has no crops on disk: extract it with a cache "
                "(hepablate extract --cache DIR) and crops enabled"
            )
        self.cache = FeatureCache(Path(info["cache"]))
        self.keys: dict[str, str] = dict(info.get("keys") or {})

    def _patient(self, patient: str) -> dict[str, np.ndarray]:
        """Every crop of the patient, checked against the cache entry's checksums."""
        key = self.keys.get(str(patient))
        if key is None:
            raise KeyError(f"patient {patient}: no crops in the FeatureTable's cache")
        return self.cache.read_crops(str(patient), key)

    def phases(self, index: pd.Index) -> tuple[str, ...]:
        """The crop phases every tumour of ``index`` has: ``PHASES``, or ``("pre",)`` when some
        tumour has no post crop (not ablated yet, or no registered zone)."""
        patients: dict[str, list[int]] = {}
        for patient, tumour in _tumours(index):
            patients.setdefault(patient, []).append(tumour)
        for patient, tumours in patients.items():
            key = self.keys.get(patient)
            if key is None:
                raise KeyError(f"patient {patient}: no crops in the FeatureTable's cache")
            # The names in the archive's directory only: ``stack`` reads and verifies the data.
            path = self.cache.crops_path(patient, key)
            if not path.is_file():
                self._patient(patient)  # the cache's error, naming the patient and the file
            with np.load(path, allow_pickle=False) as archive:
                crops = set(archive.files)
            for tumour in tumours:
                if f"{tumour}_pre" not in crops:
                    raise KeyError(f"patient {patient}, tumour {tumour}: no pre crop")
                if f"{tumour}_post" not in crops:
                    return ("pre",)
        return PHASES

    def load(
        self, patient: str, tumour: int, phases: tuple[str, ...] = ("pre", "post")
    ) -> np.ndarray:
        """The tumour's channels (three per phase, in ``phases`` order), float32, the CT of each
        phase windowed and scaled."""
        return self._channels(self._patient(patient), patient, tumour, phases)

    def _channels(
        self, crops: dict[str, np.ndarray], patient: str, tumour: int, phases: tuple[str, ...]
    ) -> np.ndarray:
        names = [f"{tumour}_{phase}" for phase in phases]
        missing = [phase for phase, n in zip(phases, names, strict=True) if n not in crops]
        if missing:
            raise KeyError(
                f"patient {patient}, tumour {tumour}: no {' or '.join(missing)} crop (the "
                f"model reads the {' and '.join(phases)} crops)"
            )
        image = np.concatenate([crops[n] for n in names]).astype(np.float32)
        low, high = _HU_WINDOW
        for block in range(len(phases)):  # each phase's first channel is its CT
            ct = np.clip(image[3 * block], low, high)
            image[3 * block] = (ct - (low + high) / 2) / ((high - low) / 2)
        return image

    def stack(self, index: pd.Index, phases: tuple[str, ...] = ("pre", "post")) -> np.ndarray:
        """The crops of every (patient, tumour) of ``index``, in its order; each patient's
        crops file is read (and verified) once."""
        rows = _tumours(index)
        read: dict[str, dict[str, np.ndarray]] = {}
        images = []
        for patient, tumour in rows:
            if patient not in read:
                read[patient] = self._patient(patient)
            images.append(self._channels(read[patient], patient, tumour, phases))
        return np.stack(images)


def _tumours(index: pd.Index) -> list[tuple[str, int]]:
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError("the multimodal model needs rows indexed by (patient, tumour)")
    return [(str(p), int(t)) for p, t in index]


class _Network(nn.Module):
    def __init__(
        self,
        crop_shape: tuple[int, ...],
        n_tabular: int,
        channels: tuple[int, ...],
        embedding: int,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = Regressor(
            in_shape=crop_shape,
            out_shape=(embedding,),
            channels=channels,
            strides=tuple(2 for _ in channels),
            num_res_units=1,
            dropout=dropout,
        )
        self.tabular = nn.Sequential(nn.Linear(n_tabular, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(embedding + hidden, 1)
        # The wide part: a logistic regression on the tabular features, so that the deep parts
        # only have to learn what it misses (with a few dozen events, they would otherwise
        # have to relearn the margin's plain effect from scratch).
        self.wide = nn.Linear(n_tabular, 1)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(image))

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.embed(image), self.tabular(tabular)], dim=1)
        return (self.wide(tabular) + self.head(fused)).squeeze(1)


class _MultimodalNetwork(BaseEstimator):  # type: ignore[misc]
    """Inputs, training loop, ensemble, explanations and state shared by the two heads."""

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
        batch_size: int = 32,
        n_members: int = 3,
        augment: bool = True,
        seed: int = 0,
        n_threads: int = 2,
        wide_c: float = 1.0,
        verbose: bool = False,
    ) -> None:
        self.crops = crops
        self.channels = channels
        self.embedding = embedding
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.n_members = n_members
        self.augment = augment
        self.seed = seed
        self.n_threads = n_threads
        self.wide_c = wide_c
        self.verbose = verbose

    # --- tabular inputs -------------------------------------------------------------------

    def _tabular(self, X: pd.DataFrame) -> np.ndarray:
        values = X[self.columns_].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.medians_, values)
        return ((values - self.means_) / self.scales_).astype(np.float32)

    def _images(self, X: pd.DataFrame) -> np.ndarray:
        if self.crops is None:
            raise ValueError("MultimodalClassifier needs `crops` (the FeatureTable's crop info)")
        return CropSource(self.crops).stack(X.index, self.phases_)

    # --- fitting ----------------------------------------------------------------------------

    def _prepare(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit the tabular scaling; return the images, the scaled table and the patients."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} needs a DataFrame indexed by (patient, tumour)")
        self.columns_ = [str(c) for c in X.columns]
        numeric = X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        self.medians_ = np.nan_to_num(np.nanmedian(numeric, axis=0))
        filled = np.where(np.isnan(numeric), self.medians_, numeric)
        self.means_ = filled.mean(axis=0)
        self.scales_ = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        if self.crops is None:
            raise ValueError(f"{type(self).__name__} needs `crops` (the FeatureTable's crop info)")
        self.phases_ = CropSource(self.crops).phases(X.index)
        images = self._images(X)
        self.crop_shape_ = tuple(int(s) for s in images.shape[1:])
        groups = X.index.get_level_values(0).astype(str).to_numpy()
        return images, self._tabular(X), groups

    def _train(
        self,
        images: np.ndarray,
        tabular: np.ndarray,
        target: dict[str, np.ndarray],
        groups: np.ndarray,
    ) -> None:
        self.members_: list[_Network] = []
        self.epochs_: list[int] = []
        label = type(self).__name__
        with (
            torch_threads(self.n_threads),
            training_progress(self.verbose, label, self.n_members, self.epochs) as progress,
        ):
            for member in range(self.n_members):
                network, epochs = self._fit_member(
                    images, tabular, target, groups, member, progress
                )
                self.members_.append(network)
                self.epochs_.append(epochs)

    def _network(self) -> _Network:
        return _Network(
            self.crop_shape_,
            len(self.columns_),
            tuple(self.channels),
            self.embedding,
            self.hidden,
            self.dropout,
        )

    def _loss(self, output: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _start_wide(
        self, network: _Network, tabular: np.ndarray, target: dict[str, np.ndarray]
    ) -> None:
        raise NotImplementedError

    def _has_events(self, target: dict[str, np.ndarray], rows: np.ndarray) -> bool:
        raise NotImplementedError

    def _fit_member(
        self,
        images: np.ndarray,
        tabular: np.ndarray,
        target: dict[str, np.ndarray],
        groups: np.ndarray,
        member: int,
        progress: Callable[[int, int, float], None],
    ) -> tuple[_Network, int]:
        seed = self.seed * 1000 + member
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
        train, held = next(split.split(images, groups=groups))
        if not self._has_events(target, held):  # nothing to score on: use the training loss
            train, held = np.arange(len(images)), np.arange(len(images))
        network = self._network()
        self._start_wide(network, tabular[train], {k: v[train] for k, v in target.items()})
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        tensors = {k: torch.from_numpy(v) for k, v in target.items()}
        augment = Compose([RandAxisFlip(prob=0.5), RandRotate90(prob=0.5, spatial_axes=(1, 2))])
        augment.set_random_state(seed)
        held_image = torch.from_numpy(images[held])
        held_tab = torch.from_numpy(tabular[held])
        held_target = {k: v[held] for k, v in tensors.items()}
        best, best_state, best_epoch, waited = np.inf, network.state_dict(), 0, 0
        for epoch in range(self.epochs):
            network.train()
            order = rng.permutation(train)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                image = images[batch]
                if self.augment:
                    image = np.stack([np.asarray(augment(i)) for i in image])
                    ct = slice(0, None, 3)  # each phase's CT channel
                    noise = rng.normal(0.0, 0.05, size=image[:, ct].shape)
                    image[:, ct] += noise.astype(np.float32)
                optimiser.zero_grad()
                value = self._loss(
                    network(torch.from_numpy(image), torch.from_numpy(tabular[batch])),
                    {k: v[batch] for k, v in tensors.items()},
                )
                value.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
            network.eval()
            with torch.no_grad():
                score = float(self._loss(network(held_image, held_tab), held_target))
            progress(member, epoch + 1, score)
            if score < best - 1e-4:
                best, best_epoch, waited = score, epoch + 1, 0
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            else:
                waited += 1
                if waited >= self.patience:
                    break
        network.load_state_dict(best_state)
        network.eval()
        return network, best_epoch

    @staticmethod
    def _set_wide(network: _Network, weights: np.ndarray, bias: float) -> None:
        """The wide part set to a fitted linear model, and the deep head to zero: training
        starts at the linear baseline and early stopping keeps it unless the image and the
        dense branch improve on it."""
        with torch.no_grad():
            network.wide.weight.copy_(torch.from_numpy(weights.reshape(1, -1).astype(np.float32)))
            network.wide.bias.fill_(float(bias))
            network.head.weight.zero_()
            network.head.bias.zero_()

    # --- persistence (no pickle) -------------------------------------------------------------

    def _fitted(self) -> dict[str, Any]:
        return {
            "columns_": self.columns_,
            "medians_": self.medians_.tolist(),
            "means_": self.means_.tolist(),
            "scales_": self.scales_.tolist(),
            "crop_shape_": list(self.crop_shape_),
            "phases_": list(self.phases_),
            "epochs_": self.epochs_,
        }

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.columns_ = list(fitted["columns_"])
        self.medians_ = np.asarray(fitted["medians_"], dtype=float)
        self.means_ = np.asarray(fitted["means_"], dtype=float)
        self.scales_ = np.asarray(fitted["scales_"], dtype=float)
        self.crop_shape_ = tuple(int(s) for s in fitted["crop_shape_"])
        # Bundles written before pre-only crops were possible read both phases.
        self.phases_ = tuple(str(p) for p in fitted.get("phases_", PHASES))
        self.epochs_ = list(fitted["epochs_"])

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (every member's weights, a head's arrays) for safetensors, and a JSON-able
        config."""
        tensors = member_arrays(self.members_)
        tensors.update({f"head.{k}": np.asarray(v) for k, v in self._head_arrays().items()})
        params = self.get_params()
        params["crops"] = None  # where the training crops were; a prediction brings its own
        params["channels"] = list(self.channels)
        return tensors, {"class": type(self).__name__, "params": params, "fitted": self._fitted()}

    def _head_arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_state(cls, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
        """The fitted estimator ``to_state`` described; refuses weights that do not fit it."""
        if config.get("class") != cls.__name__:
            raise ValueError(f"state of {config.get('class')!r}, not {cls.__name__}")
        params = dict(config["params"])
        params["channels"] = tuple(params["channels"])
        model = cls(**params)
        head = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
        model._restore(config["fitted"], head)
        model.members_ = load_members(tensors, model.n_members, model._network)
        return model

    # --- prediction -------------------------------------------------------------------------

    def _member_outputs(self, X: pd.DataFrame) -> np.ndarray:
        """Every member's raw output (members x rows)."""
        return self._outputs(self._images(X), self._tabular(X))

    def _outputs(self, images: np.ndarray, tabular: np.ndarray) -> np.ndarray:
        """Every member's raw output (members x rows)."""
        chunks = self._batched(
            lambda rows: np.stack(
                [
                    m(torch.from_numpy(images[rows]), torch.from_numpy(tabular[rows])).numpy()
                    for m in self.members_
                ]
            ),
            len(images),
        )
        return np.concatenate(chunks, axis=1).astype(float)

    def _batched(self, forward: Any, n: int) -> list[np.ndarray]:
        """``forward`` over ``INFERENCE_BATCH`` rows at a time (a slice each), without
        gradients: memory holds one batch's activations whatever the number of tumours."""
        with torch_threads(self.n_threads), torch.no_grad():
            return [
                forward(slice(start, start + INFERENCE_BATCH))
                for start in range(0, n, INFERENCE_BATCH)
            ]

    def embed(self, X: pd.DataFrame) -> pd.DataFrame:
        """The image encoder's output, averaged over the members: the ``deep.*`` columns.

        Computed by a model fitted on labelled patients, so as candidate features of another
        study they would leak its outcomes: use them for patients the model did not see.
        """
        images = self._images(X)
        chunks = self._batched(
            lambda rows: np.mean(
                [m.embed(torch.from_numpy(images[rows])).numpy() for m in self.members_], axis=0
            ),
            len(images),
        )
        values = np.concatenate(chunks, axis=0)
        columns = [f"deep.image_{i}" for i in range(values.shape[1])]
        return pd.DataFrame(values, index=X.index, columns=columns)

    def explain(self, X: pd.DataFrame) -> np.ndarray:
        """Integrated gradients of the output (log-odds or log hazard ratio) with respect to the
        tabular inputs (rows x columns), from the training mean, with each tumour's image held;
        member average."""
        from captum.attr import IntegratedGradients

        image = torch.from_numpy(self._images(X))
        tabular = torch.from_numpy(self._tabular(X))
        attributions = []
        with torch_threads(self.n_threads):
            for member in self.members_:
                # Captum repeats the image along with each interpolation step of the inputs.
                gradients = IntegratedGradients(lambda t, i, net=member: net(i, t))
                attributions.append(
                    gradients.attribute(
                        tabular,
                        baselines=torch.zeros_like(tabular),
                        additional_forward_args=(image,),
                        n_steps=32,
                        internal_batch_size=64,
                    )
                    .detach()
                    .numpy()
                )
        return np.mean(attributions, axis=0)


class MultimodalClassifier(ClassifierMixin, _MultimodalNetwork):  # type: ignore[misc]
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
        self, network: _Network, tabular: np.ndarray, target: dict[str, np.ndarray]
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


class MultimodalSurvival(_MultimodalNetwork):
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
        self, network: _Network, tabular: np.ndarray, target: dict[str, np.ndarray]
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
