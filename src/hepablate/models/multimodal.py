"""A multimodal network: a 3D CNN over each tumour's crops fused with its tabular features.

The image branch is a MONAI ``Regressor`` (residual convolutions, stride 2) over the six crop
channels of a tumour (``hepablate.features.crops``: pre CT, tumour and ablation-zone masks in
the pre frame; post CT, zone and tumour in the post frame sampled through the registration),
32³ voxels of 2 mm by default: what trains on two CPU cores. It yields an embedding (the
``deep.*`` columns of :meth:`MultimodalClassifier.embed`), concatenated with a small dense
branch over the tabular features; a linear head gives the log-odds, added to a linear ("wide")
term over the tabular features. Training starts from a ridge logistic regression of the
training rows (the wide term) with the deep head at zero, so the network begins where the
logistic baseline is and early stopping keeps what the image and the dense branch add on
held-out patients.

Training: Adam with weight decay, positives up-weighted by the class ratio with the intercept
corrected back afterwards (King & Zeng 2001's prior correction), so probabilities stay
calibrated; early stopping on a held-out 20% of the training *patients*; MONAI augmentation
(random flips and axial quarter turns, applied to CT and masks together, and Gaussian noise on
the CT channels); a deep ensemble of ``n_members`` networks, seeded, whose spread is the
predictive uncertainty.

The estimator follows scikit-learn: ``X`` is a DataFrame indexed by (patient, tumour), as the
study's pipeline passes it; ``crops`` says where the FeatureTable's crops are (its
``attrs["hepablate"]["crops"]``) and is set by the study. Fitted state is saved without pickle
(``to_state``: tensors for safetensors and a JSON config).
"""

from __future__ import annotations

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
from torch import nn

from hepablate.features.cache import FeatureCache
from hepablate.models._ensemble import load_members, member_arrays, torch_threads

__all__ = ["CropSource", "MultimodalClassifier"]

# CT channels are windowed to soft tissue and scaled to about [-1, 1]; masks stay 0/1.
_HU_WINDOW = (-100.0, 250.0)
_CT_CHANNELS = (0, 3)


class CropSource:
    """The crops of a FeatureTable: its cache folder and each patient's cache key."""

    def __init__(self, info: dict[str, Any]) -> None:
        if not info.get("cache"):
            raise ValueError(
                "the FeatureTable has no crops on disk: extract it with a cache "
                "(hepablate extract --cache DIR) and crops enabled"
            )
        self.cache = FeatureCache(Path(info["cache"]))
        self.keys: dict[str, str] = dict(info.get("keys") or {})

    def load(self, patient: str, tumour: int) -> np.ndarray:
        """The tumour's six channels (pre, then post), float32, CT windowed and scaled."""
        key = self.keys.get(str(patient))
        if key is None:
            raise KeyError(f"patient {patient}: no crops in the FeatureTable's cache")
        path = self.cache.crops_path(str(patient), key)
        with np.load(path, allow_pickle=False) as archive:
            names = [f"{tumour}_pre", f"{tumour}_post"]
            missing = [n for n in names if n not in archive.files]
            if missing:
                raise KeyError(f"patient {patient}, tumour {tumour}: no crop in {path}")
            image = np.concatenate([archive[n] for n in names]).astype(np.float32)
        low, high = _HU_WINDOW
        for channel in _CT_CHANNELS:
            ct = np.clip(image[channel], low, high)
            image[channel] = (ct - (low + high) / 2) / ((high - low) / 2)
        return image

    def stack(self, index: pd.Index) -> np.ndarray:
        if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
            raise ValueError("the multimodal model needs rows indexed by (patient, tumour)")
        return np.stack([self.load(str(p), int(t)) for p, t in index])


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


class MultimodalClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary outcome from a tumour's crops and its tabular features (see the module doc)."""

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

    # --- tabular inputs -------------------------------------------------------------------

    def _tabular(self, X: pd.DataFrame) -> np.ndarray:
        values = X[self.columns_].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.medians_, values)
        return ((values - self.means_) / self.scales_).astype(np.float32)

    def _images(self, X: pd.DataFrame) -> np.ndarray:
        if self.crops is None:
            raise ValueError("MultimodalClassifier needs `crops` (the FeatureTable's crop info)")
        return CropSource(self.crops).stack(X.index)

    # --- fitting ----------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: Any) -> MultimodalClassifier:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("MultimodalClassifier needs a DataFrame indexed by (patient, tumour)")
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError(f"a binary outcome is needed, got classes {self.classes_.tolist()}")
        target = (labels == self.classes_[1]).astype(np.float32)
        self.columns_ = [str(c) for c in X.columns]
        numeric = X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        self.medians_ = np.nan_to_num(np.nanmedian(numeric, axis=0))
        filled = np.where(np.isnan(numeric), self.medians_, numeric)
        self.means_ = filled.mean(axis=0)
        self.scales_ = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        images = self._images(X)
        self.crop_shape_ = tuple(int(s) for s in images.shape[1:])
        tabular = self._tabular(X)
        groups = X.index.get_level_values(0).astype(str).to_numpy()
        positives = float(target.sum())
        self.pos_weight_ = (len(target) - positives) / max(positives, 1.0)
        self.members_: list[_Network] = []
        self.epochs_: list[int] = []
        with torch_threads(self.n_threads):
            for member in range(self.n_members):
                network, epochs = self._fit_member(images, tabular, target, groups, member)
                self.members_.append(network)
                self.epochs_.append(epochs)
        return self

    def _network(self) -> _Network:
        return _Network(
            self.crop_shape_,
            len(self.columns_),
            tuple(self.channels),
            self.embedding,
            self.hidden,
            self.dropout,
        )

    def _fit_member(
        self,
        images: np.ndarray,
        tabular: np.ndarray,
        target: np.ndarray,
        groups: np.ndarray,
        member: int,
    ) -> tuple[_Network, int]:
        seed = self.seed * 1000 + member
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
        train, held = next(split.split(images, target, groups))
        if target[held].min() == target[held].max():  # no event held out: use the training loss
            train, held = np.arange(len(target)), np.arange(len(target))
        network = self._network()
        self._start_from_logistic(network, tabular[train], target[train])
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(self.pos_weight_))
        augment = Compose([RandAxisFlip(prob=0.5), RandRotate90(prob=0.5, spatial_axes=(1, 2))])
        augment.set_random_state(seed)
        held_image = torch.from_numpy(images[held])
        held_tab = torch.from_numpy(tabular[held])
        held_y = torch.from_numpy(target[held])
        best, best_state, best_epoch, waited = np.inf, network.state_dict(), 0, 0
        for epoch in range(self.epochs):
            network.train()
            order = rng.permutation(train)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                image = images[batch]
                if self.augment:
                    image = np.stack([np.asarray(augment(i)) for i in image])
                    noise = rng.normal(0.0, 0.05, size=image[:, _CT_CHANNELS].shape)
                    image[:, _CT_CHANNELS] += noise.astype(np.float32)
                optimiser.zero_grad()
                value = loss(
                    network(torch.from_numpy(image), torch.from_numpy(tabular[batch])),
                    torch.from_numpy(target[batch]),
                )
                value.backward()
                optimiser.step()
            network.eval()
            with torch.no_grad():
                score = float(loss(network(held_image, held_tab), held_y))
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

    def _start_from_logistic(
        self, network: _Network, tabular: np.ndarray, target: np.ndarray
    ) -> None:
        """The wide part set to a ridge logistic regression of the training rows and the deep
        head to zero: training starts at the logistic model and early stopping keeps it unless
        the image and the dense branch improve on it. The intercept is shifted by
        log(pos_weight), the optimum of the weighted loss (undone at prediction)."""
        logistic = LogisticRegression(C=self.wide_c, max_iter=5000).fit(tabular, target)
        with torch.no_grad():
            network.wide.weight.copy_(torch.from_numpy(logistic.coef_.astype(np.float32)))
            bias = logistic.intercept_ + np.log(max(self.pos_weight_, 1e-6))
            network.wide.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
            network.head.weight.zero_()
            network.head.bias.zero_()

    # --- persistence (no pickle) -------------------------------------------------------------

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (every member's weights) for safetensors, and a JSON-able config."""
        tensors = member_arrays(self.members_)
        params = self.get_params()
        params["crops"] = None  # where the training crops were; a prediction brings its own
        params["channels"] = list(self.channels)
        fitted = {
            "columns_": self.columns_,
            "medians_": self.medians_.tolist(),
            "means_": self.means_.tolist(),
            "scales_": self.scales_.tolist(),
            "crop_shape_": list(self.crop_shape_),
            "pos_weight_": self.pos_weight_,
            "classes_": self.classes_.tolist(),
            "epochs_": self.epochs_,
        }
        return tensors, {"class": type(self).__name__, "params": params, "fitted": fitted}

    @classmethod
    def from_state(
        cls, tensors: dict[str, np.ndarray], config: dict[str, Any]
    ) -> MultimodalClassifier:
        """The fitted estimator ``to_state`` described; refuses weights that do not fit it."""
        if config.get("class") != cls.__name__:
            raise ValueError(f"state of {config.get('class')!r}, not {cls.__name__}")
        params = dict(config["params"])
        params["channels"] = tuple(params["channels"])
        model = cls(**params)
        fitted = config["fitted"]
        model.columns_ = list(fitted["columns_"])
        model.medians_ = np.asarray(fitted["medians_"], dtype=float)
        model.means_ = np.asarray(fitted["means_"], dtype=float)
        model.scales_ = np.asarray(fitted["scales_"], dtype=float)
        model.crop_shape_ = tuple(int(s) for s in fitted["crop_shape_"])
        model.pos_weight_ = float(fitted["pos_weight_"])
        model.classes_ = np.asarray(fitted["classes_"])
        model.epochs_ = list(fitted["epochs_"])
        model.members_ = load_members(tensors, model.n_members, model._network)
        return model

    # --- prediction -------------------------------------------------------------------------

    def _member_logits(self, X: pd.DataFrame) -> np.ndarray:
        image = torch.from_numpy(self._images(X))
        tabular = torch.from_numpy(self._tabular(X))
        # Prior correction: the positives' weight multiplied the fitted odds by pos_weight_.
        correction = float(np.log(self.pos_weight_)) if self.pos_weight_ > 0 else 0.0
        with torch_threads(self.n_threads), torch.no_grad():
            return np.stack(
                [m(image, tabular).numpy().astype(float) - correction for m in self.members_]
            )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        probability = (1.0 / (1.0 + np.exp(-self._member_logits(X)))).mean(axis=0)
        return np.column_stack([1.0 - probability, probability])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def predict_uncertainty(self, X: pd.DataFrame) -> np.ndarray:
        """The standard deviation of the members' probabilities (the ensemble's spread)."""
        return np.asarray((1.0 / (1.0 + np.exp(-self._member_logits(X)))).std(axis=0))

    def embed(self, X: pd.DataFrame) -> pd.DataFrame:
        """The image encoder's output, averaged over the members: the ``deep.*`` columns.

        Computed by a model fitted on labelled patients, so as candidate features of another
        study they would leak its outcomes: use them for patients the model did not see.
        """
        image = torch.from_numpy(self._images(X))
        with torch_threads(self.n_threads), torch.no_grad():
            values = np.mean([m.embed(image).numpy() for m in self.members_], axis=0)
        columns = [f"deep.image_{i}" for i in range(values.shape[1])]
        return pd.DataFrame(values, index=X.index, columns=columns)

    def explain(self, X: pd.DataFrame) -> np.ndarray:
        """Integrated gradients of the log-odds with respect to the tabular inputs (rows x
        columns), from the training mean, with each tumour's image held; member average."""
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
