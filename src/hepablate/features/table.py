"""The FeatureTable: what ``hepablate extract`` writes and every later stage reads.

One row per tumour, indexed by (patient, tumour), or per patient for a cohort without tumours;
columns ``group`` (the patient) and ``centre``, then ``clin.*``, ``geom.*``, ``rad.*``,
``deep.*`` predictors, ``qa.*`` checks and ``outcome.*``; its metadata (extraction settings,
robustness ICC, crops, warnings) in ``attrs["hepablate"]``, kept in the Parquet file. Here: reading
one with clear errors, predictors in the types the pipelines take, and the patient-level view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SIZE_COLUMNS",
    "FeatureTableError",
    "coerce_features",
    "is_feature_table",
    "one_row_per_patient",
    "read_feature_table",
]

# pandas keeps ``DataFrame.attrs`` in the Parquet schema's metadata under this key.
_ATTRS_KEY = b"PANDAS_ATTRS"


class FeatureTableError(ValueError):
    """A file that is not a readable FeatureTable, named with what it is instead."""


def _hepablate_attrs(schema_metadata: dict[bytes, bytes] | None) -> dict[str, Any] | None:
    import json

    try:
        attrs = json.loads((schema_metadata or {})[_ATTRS_KEY])
    except (KeyError, ValueError):
        return None
    info = attrs.get("hepablate") if isinstance(attrs, dict) else None
    return info if isinstance(info, dict) else None


def is_feature_table(path: Path) -> bool:
    """Whether ``path`` is a Parquet file with a FeatureTable's hepablate metadata (read from
    its footer only)."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        return _hepablate_attrs(pq.read_schema(path).metadata) is not None
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False


def read_feature_table(path: Path) -> pd.DataFrame:
    """A FeatureTable written by ``hepablate extract``; a ``FeatureTableError`` names the file
    and says what it is instead (empty, truncated, not Parquet, Parquet of something else)."""
    import pyarrow
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise FeatureTableError(f"{path}: an empty file (0 bytes), not a FeatureTable")
        schema = pq.read_schema(path)
    except OSError as exc:
        raise FeatureTableError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except (ValueError, pyarrow.ArrowException) as exc:
        raise FeatureTableError(
            f"{path}: not a readable Parquet file (truncated, or another format): {exc}"
        ) from exc
    if _hepablate_attrs(schema.metadata) is None:
        raise FeatureTableError(
            f"{path}: a Parquet file without a FeatureTable's hepablate metadata; "
            "make FeatureTables with `hepablate extract`"
        )
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise FeatureTableError(f"{path}: the FeatureTable is damaged: {exc}") from exc


def coerce_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Predictors as the pipeline takes them: numbers and booleans as float (NaN = missing),
    everything else as object columns of strings (NaN = missing)."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype("Float64").astype(float)
        else:
            values = [np.nan if pd.isna(v) else str(v) for v in column.astype(object)]
            out[name] = pd.Series(values, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index)


SIZE_COLUMNS = ("geom.tumour_volume_ml", "clin.diameter_mm", "geom.tumour_max_diameter_mm")


def one_row_per_patient(table: pd.DataFrame) -> pd.DataFrame:
    """A tumour-level FeatureTable reduced to one row per patient for a patient-level
    endpoint: the row of the patient's largest tumour (by the first size column present),
    plus ``clin.n_tumours``."""
    if "group" not in table or not isinstance(table.index, pd.MultiIndex):
        return table  # already one row per patient
    size = next((c for c in SIZE_COLUMNS if c in table), None)
    order = (
        table[size].astype("Float64").fillna(-1.0).to_numpy(dtype=float)
        if size
        else np.zeros(len(table))
    )
    ranked = table.assign(_size=order).sort_values("_size", ascending=False, kind="stable")
    largest = ranked.drop_duplicates("group").drop(columns="_size")
    largest.index = pd.Index(largest["group"].astype(str), name="patient_id")
    patients = list(dict.fromkeys(table["group"].astype(str)))
    reduced = largest.loc[patients]
    reduced.insert(2, "clin.n_tumours", table.groupby("group").size().reindex(patients).to_numpy())
    reduced.attrs = table.attrs
    return reduced
