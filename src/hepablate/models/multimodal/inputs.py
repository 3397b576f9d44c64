"""The multimodal network's inputs: its tabular columns scaled, and its images as the network
was trained on them (the CT window, and the crops' size, spacing and shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hepablate.features.crops import CropStore

__all__ = ["HU_WINDOW", "CropGeometry", "TabularScaling", "normalise", "tumours"]

# The CT window of the crops, in HU: soft tissue, scaled to [-1, 1]; masks stay 0/1. The
# default of the ``hu_window`` parameter; models saved before it was one used this window.
HU_WINDOW = (-100.0, 250.0)


def tumours(index: pd.Index) -> list[tuple[str, int]]:
    """The (patient, tumour) of every row."""
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError("the multimodal model needs rows indexed by (patient, tumour)")
    return [(str(p), int(t)) for p, t in index]


def normalise(images: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Each phase's CT channel (every third, from the first) clipped to ``window`` and scaled
    to [-1, 1], in place; ``images`` is tumours x channels x voxels, float32."""
    low, high = window
    ct = np.clip(images[:, 0::3], low, high)
    images[:, 0::3] = (ct - (low + high) / 2) / ((high - low) / 2)
    return images


@dataclass(frozen=True)
class CropGeometry:
    """The crops a model was trained on: cube size and spacing (mm; None when the FeatureTable
    did not record them) and the array shape (channels, voxels)."""

    size_mm: float | None
    spacing_mm: float | None
    shape: tuple[int, ...]

    def refusal(self, store: CropStore) -> str | None:
        """Why crops of ``store`` do not fit the model (None: they do, or cannot be told)."""
        known = None not in (self.size_mm, self.spacing_mm, store.size_mm, store.spacing_mm)
        if known and (store.size_mm, store.spacing_mm) != (self.size_mm, self.spacing_mm):
            return (
                f"the crops are {store.size_mm:g} mm cubes at {store.spacing_mm:g} mm; the model "
                f"was trained on {self.size_mm:g} mm at {self.spacing_mm:g} mm: extract the "
                "patients with the bundle's extraction config"
            )
        return None

    def check_shape(self, images: np.ndarray) -> None:
        shape = tuple(int(s) for s in images.shape[1:])
        if shape != self.shape:
            raise ValueError(
                f"the crops have shape {shape}; the model was trained on {self.shape} (channels "
                "x voxels): extract the patients with the bundle's extraction config"
            )


@dataclass(frozen=True)
class TabularScaling:
    """Numbers at the training median where missing, then standardised."""

    columns: list[str]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, X: pd.DataFrame) -> TabularScaling:
        numeric = X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        medians = np.nan_to_num(np.nanmedian(numeric, axis=0))
        filled = np.where(np.isnan(numeric), medians, numeric)
        spread = filled.std(axis=0)
        return cls(
            columns=[str(c) for c in X.columns],
            medians=medians,
            means=filled.mean(axis=0),
            scales=np.where(spread > 0, spread, 1.0),
        )

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        values = X[self.columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.medians, values)
        return ((values - self.means) / self.scales).astype(np.float32)

    def to_fitted(self) -> dict[str, Any]:
        return {
            "columns_": list(self.columns),
            "medians_": self.medians.tolist(),
            "means_": self.means.tolist(),
            "scales_": self.scales.tolist(),
        }

    @classmethod
    def from_fitted(cls, fitted: dict[str, Any]) -> TabularScaling:
        return cls(
            columns=list(fitted["columns_"]),
            medians=np.asarray(fitted["medians_"], dtype=float),
            means=np.asarray(fitted["means_"], dtype=float),
            scales=np.asarray(fitted["scales_"], dtype=float),
        )
