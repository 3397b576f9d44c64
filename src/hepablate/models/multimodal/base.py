"""What the two multimodal heads share: their parameters, their inputs, their training through
the models' one ensemble trainer (mini-batches with augmentation), prediction in batches, the
image embedding, explanations and state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.transforms.compose import Compose
from monai.transforms.spatial.array import RandAxisFlip, RandRotate90
from sklearn.base import BaseEstimator

from hepablate.features.crops import PHASES, CropStore
from hepablate.models._ensemble import (
    Member,
    Training,
    load_members,
    member_arrays,
    torch_threads,
    train_ensemble,
)
from hepablate.models.multimodal.inputs import (
    HU_WINDOW,
    CropGeometry,
    TabularScaling,
    normalise,
    tumours,
)
from hepablate.models.multimodal.network import FusionNetwork

__all__ = ["INFERENCE_BATCH", "MultimodalNetwork"]

# Rows per forward pass when predicting, embedding or computing the Breslow baseline.
INFERENCE_BATCH = 256


class MultimodalNetwork(BaseEstimator):  # type: ignore[misc]
    """Inputs, training, ensemble, explanations and state shared by the two heads; a head
    gives its loss, what its held-out rows need to be scored and how its wide term starts."""

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
        hu_window: tuple[float, float] = HU_WINDOW,
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
        self.hu_window = hu_window

    # --- inputs -------------------------------------------------------------------------------

    def _store(self) -> CropStore:
        if self.crops is None:
            raise ValueError(f"{type(self).__name__} needs `crops` (the FeatureTable's crop info)")
        return CropStore(self.crops)

    def check_crops(self, crops: dict[str, Any] | None) -> None:
        """Refuse crops made at another size or spacing than the training ones (ValueError);
        a prediction checks this before reading any image."""
        why = self.geometry_.refusal(CropStore(crops))
        if why is not None:
            raise ValueError(why)

    def _tabular(self, X: pd.DataFrame) -> np.ndarray:
        return self.scaling_.transform(X)

    def _images(self, X: pd.DataFrame) -> np.ndarray:
        """The crops of every row, checked against the training ones, windowed as in training."""
        store = self._store()
        why = self.geometry_.refusal(store)
        if why is not None:
            raise ValueError(why)
        images = store.stack(tumours(X.index), self.phases_)
        self.geometry_.check_shape(images)
        low, high = self.hu_window
        return normalise(images, (float(low), float(high)))

    # --- fitting ----------------------------------------------------------------------------

    def _prepare(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit the tabular scaling; return the images, the scaled table and the patients."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} needs a DataFrame indexed by (patient, tumour)")
        low, high = self.hu_window
        if not low < high:
            raise ValueError(
                f"hu_window {tuple(self.hu_window)}: the low end must be below the high"
            )
        self.scaling_ = TabularScaling.fit(X)
        store = self._store()
        rows = tumours(X.index)
        self.phases_ = store.phases(rows)
        images = normalise(store.stack(rows, self.phases_), (float(low), float(high)))
        self.geometry_ = CropGeometry(
            store.size_mm, store.spacing_mm, tuple(int(s) for s in images.shape[1:])
        )
        groups = X.index.get_level_values(0).astype(str).to_numpy()
        return images, self._tabular(X), groups

    def _train(
        self,
        images: np.ndarray,
        tabular: np.ndarray,
        target: dict[str, np.ndarray],
        groups: np.ndarray,
    ) -> None:
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
        family = _MiniBatches(self, images, tabular, target)
        self.members_, self.epochs_ = train_ensemble(training, family, len(images), groups)

    def _network(self) -> FusionNetwork:
        return FusionNetwork(
            self.geometry_.shape,
            len(self.scaling_.columns),
            tuple(self.channels),
            self.embedding,
            self.hidden,
            self.dropout,
        )

    def _loss(self, output: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _start_wide(
        self, network: FusionNetwork, tabular: np.ndarray, target: dict[str, np.ndarray]
    ) -> None:
        raise NotImplementedError

    def _has_events(self, target: dict[str, np.ndarray], rows: np.ndarray) -> bool:
        raise NotImplementedError

    @staticmethod
    def _set_wide(network: FusionNetwork, weights: np.ndarray, bias: float) -> None:
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
            **self.scaling_.to_fitted(),
            "crop_shape_": list(self.geometry_.shape),
            "crop_size_mm_": self.geometry_.size_mm,
            "crop_spacing_mm_": self.geometry_.spacing_mm,
            "phases_": list(self.phases_),
            "epochs_": self.epochs_,
        }

    def _restore(self, fitted: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.scaling_ = TabularScaling.from_fitted(fitted)
        # Bundles written before the crops' size and spacing were recorded: None, and only the
        # crops' shape is checked (as then).
        self.geometry_ = CropGeometry(
            fitted.get("crop_size_mm_"),
            fitted.get("crop_spacing_mm_"),
            tuple(int(s) for s in fitted["crop_shape_"]),
        )
        # Bundles written before pre-only crops were possible read both phases.
        self.phases_ = tuple(str(p) for p in fitted.get("phases_", PHASES))
        self.epochs_ = list(fitted["epochs_"])

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (every member's weights, a head's arrays) for safetensors, and a JSON-able
        config (the parameters, the CT window among them, and the fitted inputs)."""
        tensors = member_arrays(self.members_)
        tensors.update({f"head.{k}": np.asarray(v) for k, v in self._head_arrays().items()})
        params = self.get_params()
        params["crops"] = None  # where the training crops were; a prediction brings its own
        params["channels"] = list(self.channels)
        params["hu_window"] = [float(v) for v in self.hu_window]
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
        # Bundles written before the window was a parameter windowed with HU_WINDOW, then a
        # module constant: they keep predicting as they did.
        params["hu_window"] = tuple(float(v) for v in params.get("hu_window", HU_WINDOW))
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

    def _batched(self, forward: Callable[[slice], np.ndarray], n: int) -> list[np.ndarray]:
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


class _MiniBatches:
    """The multimodal family for the trainer: shuffled mini-batches, each augmented by MONAI
    flips and axial quarter turns of CT and masks together plus noise on the CT channels; the
    wide term started from a linear model of the member's training rows."""

    def __init__(
        self,
        model: MultimodalNetwork,
        images: np.ndarray,
        tabular: np.ndarray,
        target: dict[str, np.ndarray],
    ) -> None:
        self.model = model
        self.images = images
        self.tabular = tabular
        self.target = target
        self.tensors = {k: torch.from_numpy(v) for k, v in target.items()}
        self.augmenter = Compose([])

    def scorable(self, rows: np.ndarray) -> bool:
        return self.model._has_events(self.target, rows)

    def build(self, member: Member) -> FusionNetwork:
        network = self.model._network()
        train = member.train
        self.model._start_wide(
            network, self.tabular[train], {k: v[train] for k, v in self.target.items()}
        )
        self.augmenter = Compose(
            [RandAxisFlip(prob=0.5), RandRotate90(prob=0.5, spatial_axes=(1, 2))]
        )
        self.augmenter.set_random_state(member.seed)
        return network

    def batches(self, member: Member) -> Iterator[np.ndarray]:
        order = member.rng.permutation(member.train)
        for start in range(0, len(order), self.model.batch_size):
            yield order[start : start + self.model.batch_size]

    def training_loss(
        self, network: FusionNetwork, rows: np.ndarray, member: Member
    ) -> torch.Tensor:
        image = self.images[rows]
        if self.model.augment:
            image = np.stack([np.asarray(self.augmenter(i)) for i in image])
            ct = slice(0, None, 3)  # each phase's CT channel
            noise = member.rng.normal(0.0, 0.05, size=image[:, ct].shape)
            image[:, ct] += noise.astype(np.float32)
        output = network(torch.from_numpy(image), torch.from_numpy(self.tabular[rows]))
        return self.model._loss(output, {k: v[rows] for k, v in self.tensors.items()})

    def held_out_loss(self, network: FusionNetwork, rows: np.ndarray) -> torch.Tensor:
        output = network(torch.from_numpy(self.images[rows]), torch.from_numpy(self.tabular[rows]))
        return self.model._loss(output, {k: v[rows] for k, v in self.tensors.items()})
