"""The tabular networks' inputs: numbers standardised (missing values at the training median,
with a missing-indicator input for each column that had gaps), categories one-hot, learnt at
fit, so the networks also run on raw tables; and attributions folded back onto the columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TabularEncoding", "frame_of"]


def frame_of(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame with text column names."""
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    return frame.set_axis([str(c) for c in frame.columns], axis=1)


@dataclass(frozen=True)
class TabularEncoding:
    """How a table becomes the network's input matrix (numbers, indicators, levels)."""

    columns: list[str]
    numeric: list[str]
    categories: dict[str, list[str]]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    missing: list[str]  # numeric columns with a missing indicator

    @classmethod
    def fit(cls, X: Any) -> TabularEncoding:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        categories = {
            str(c): sorted(frame[c].dropna().astype(str).unique().tolist())
            for c in frame.columns
            if c not in numeric
        }
        values = frame[numeric].to_numpy(dtype=float) if numeric else np.zeros((len(frame), 0))
        with np.errstate(all="ignore"):
            medians = np.nan_to_num(np.nanmedian(values, axis=0) if values.size else np.zeros(0))
        filled = np.where(np.isnan(values), medians, values)
        spread = filled.std(axis=0) if len(filled) else np.zeros(0)
        has_missing = np.atleast_1d(np.isnan(values).any(axis=0)).tolist()
        return cls(
            columns=[str(c) for c in frame.columns],
            numeric=[str(c) for c in numeric],
            categories=categories,
            medians=medians,
            means=filled.mean(axis=0) if len(filled) else np.zeros(0),
            scales=np.where(spread > 0, spread, 1.0),
            missing=[str(c) for c, m in zip(numeric, has_missing, strict=True) if m],
        )

    def transform(self, X: Any) -> np.ndarray:
        """The input matrix (float32) of ``X``, whose columns must be the training ones."""
        frame = frame_of(X)
        if list(frame.columns) != self.columns:
            raise ValueError(f"expected columns {self.columns}, got {list(frame.columns)}")
        values = frame[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        parts = [(np.where(np.isnan(values), self.medians, values) - self.means) / self.scales]
        parts += [frame[[c]].isna().to_numpy(dtype=float) for c in self.missing]
        for column, levels in self.categories.items():
            text = frame[column].astype("string")
            parts.append(np.column_stack([(text == level).fillna(False) for level in levels]))
        return np.column_stack(parts).astype(np.float32) if parts else np.zeros((len(frame), 0))

    def fold(self, values: np.ndarray) -> np.ndarray:
        """Per-input values (rows x inputs) summed onto their columns: a column's number, its
        missing indicator and its levels add up (rows x columns)."""
        folded = np.zeros((len(values), len(self.columns)))
        position = 0
        for column in self.numeric:
            folded[:, self.columns.index(column)] += values[:, position]
            position += 1
        for column in self.missing:
            folded[:, self.columns.index(column)] += values[:, position]
            position += 1
        for column, levels in self.categories.items():
            where = self.columns.index(column)
            folded[:, where] += values[:, position : position + len(levels)].sum(1)
            position += len(levels)
        return folded

    def to_fitted(self) -> dict[str, Any]:
        """The encoding as JSON values, under the keys bundles have always used."""
        return {
            "feature_names_in_": list(self.columns),
            "numeric_": list(self.numeric),
            "categories_": self.categories,
            "medians_": self.medians.tolist(),
            "means_": self.means.tolist(),
            "scales_": self.scales.tolist(),
            "missing_": list(self.missing),
        }

    @classmethod
    def from_fitted(cls, fitted: dict[str, Any]) -> TabularEncoding:
        return cls(
            columns=[str(c) for c in fitted["feature_names_in_"]],
            numeric=list(fitted["numeric_"]),
            categories={k: list(v) for k, v in fitted["categories_"].items()},
            medians=np.asarray(fitted["medians_"], dtype=float),
            means=np.asarray(fitted["means_"], dtype=float),
            scales=np.asarray(fitted["scales_"], dtype=float),
            missing=list(fitted["missing_"]),
        )
