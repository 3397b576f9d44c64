"""The rows, predictors and outcome of a study, taken from a FeatureTable.

``hepablate train`` accepts a FeatureTable (``.parquet`` from ``hepablate extract``) or a cohort
folder, which is extracted first (a cohort of tables without images is valid: its FeatureTable
holds the clinical columns). Rows whose outcome is unknown for the endpoint (e.g. censored
before a binary endpoint's horizon) are left out and counted.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.study.config import StudyConfig, StudyConfigError

__all__ = ["StudyData", "coerce_features", "load_feature_table", "study_data"]


@dataclass
class StudyData:
    """Everything the validation needs, row-aligned."""

    X: pd.DataFrame  # candidate predictors: float columns and object (category) columns
    y: np.ndarray  # 0/1 ints, or a structured array (event, time) for time-to-event
    groups: np.ndarray  # patient id of each row: folds never split a patient
    centres: np.ndarray
    survival: bool
    endpoint: dict[str, Any]
    clinical: list[str]  # the columns of clinical-only models
    icc: dict[str, float] = field(default_factory=dict)
    excluded_rows: int = 0
    table: pd.DataFrame | None = None  # the analysed rows of the FeatureTable (for table 1)
    # Where the FeatureTable's deep-model crops are (its attrs), for image models; None: none.
    crops: dict[str, Any] | None = None
    log: list[str] = field(default_factory=list)  # columns taken as log(1 + x) (features.log)

    @property
    def events(self) -> np.ndarray:
        return self.y["event"] if self.survival else self.y.astype(bool)


def load_feature_table(source: Path, config: StudyConfig) -> pd.DataFrame:
    """A FeatureTable from a ``.parquet`` file, or extracted from a cohort folder."""
    source = Path(source)
    if source.is_file():
        if source.suffix != ".parquet":
            raise StudyConfigError(f"{source}: expected a FeatureTable (.parquet) or a cohort")
        return pd.read_parquet(source)
    if not (source / "cohort.yaml").is_file():
        raise StudyConfigError(f"{source}: neither a FeatureTable nor a cohort folder")
    import os

    from hepablate.cohort import load_cohort
    from hepablate.features.extract import ExtractionConfig, extract

    cohort = load_cohort(source)
    extraction = ExtractionConfig.model_validate(config.extraction or {})
    return extract(cohort, extraction, workers=config.workers or os.cpu_count() or 1)


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


def _matching(columns: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if any(fnmatch.fnmatchcase(c, p) for p in patterns)]


def _endpoint(table: pd.DataFrame, name: str) -> dict[str, Any]:
    declared = {e["name"]: e for e in table.attrs.get("hepablate", {}).get("endpoints", [])}
    if name in declared:
        return dict(declared[name])
    if f"outcome.{name}" in table:
        return {"name": name, "kind": "binary"}
    if f"outcome.{name}.time_months" in table:
        return {"name": name, "kind": "time_to_event"}
    available = sorted(
        {c.split(".")[1] for c in table.columns if c.startswith("outcome.") and "." in c}
    )
    raise StudyConfigError(
        f"endpoint {name!r} is not in the FeatureTable (endpoints: {', '.join(available) or '-'})"
    )


SIZE_COLUMNS = ("geom.tumour_volume_ml", "clin.diameter_mm", "geom.tumour_max_diameter_mm")


def one_row_per_patient(table: pd.DataFrame) -> pd.DataFrame:
    """A tumour-level FeatureTable reduced to one row per patient for a patient-level
    endpoint: the row of the patient's largest tumour (by the first size column present),
    plus ``clin.n_tumours``."""
    if "group" not in table or table["group"].is_unique:
        return table
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


def study_data(table: pd.DataFrame, config: StudyConfig) -> StudyData:
    """Rows with a known outcome, the candidate predictors, groups and centres."""
    endpoint = _endpoint(table, config.endpoint)
    if endpoint.get("table") == "patients":
        table = one_row_per_patient(table)
    survival = endpoint["kind"] == "time_to_event"
    name = config.endpoint
    if survival:
        time = table[f"outcome.{name}.time_months"].astype("Float64")
        event = table[f"outcome.{name}.event"].astype("boolean")
        known = (time.notna() & event.notna()).to_numpy(dtype=bool)
    else:
        label = table[f"outcome.{name}"].astype("Int64")
        known = label.notna().to_numpy(dtype=bool)
    rows = table.loc[known]
    if survival:
        y = np.array(
            list(
                zip(
                    event[known].to_numpy(dtype=bool),
                    time[known].to_numpy(dtype=float),
                    strict=True,
                )
            ),
            dtype=[("event", bool), ("time", float)],
        )
    else:
        y = label[known].to_numpy(dtype=int)
    columns = [str(c) for c in table.columns]
    candidates = [
        c
        for c in _matching(columns, config.features.include)
        if c not in _matching(columns, config.features.exclude)
        and not c.startswith(("outcome.", "qa."))
        and c not in ("group", "centre")
    ]
    if not candidates:
        raise StudyConfigError(
            f"no predictor matches features.include {list(config.features.include)}"
        )
    empty = [c for c in candidates if rows[c].isna().all()]
    candidates = [c for c in candidates if c not in empty]
    X = coerce_features(rows[candidates])
    groups = (
        rows["group"].astype(str).to_numpy()
        if "group" in rows
        else np.asarray([str(i) for i in rows.index])
    )
    centres = (
        rows["centre"].astype(str).to_numpy() if "centre" in rows else np.full(len(rows), "all")
    )
    robustness = table.attrs.get("hepablate", {}).get("robustness") or {}
    events = int(y["event"].sum()) if survival else int(y.sum())
    if events < 2 or events > len(y) - 2:
        raise StudyConfigError(
            f"endpoint {name!r}: {events} events in {len(y)} rows; too few to validate a model"
        )
    return StudyData(
        X=X,
        y=y,
        groups=groups,
        centres=centres,
        survival=survival,
        endpoint={**endpoint, "rows": len(y), "events": events, "dropped_empty": empty},
        clinical=_matching(candidates, config.features.clinical),
        icc={str(k): float(v) for k, v in (robustness.get("icc") or {}).items()},
        excluded_rows=int((~known).sum()),
        table=rows,
        crops=table.attrs.get("hepablate", {}).get("crops"),
        log=_log_columns(X, config.features.log),
    )


def _log_columns(X: pd.DataFrame, patterns: tuple[str, ...]) -> list[str]:
    """The candidate columns of ``features.log``: numeric and never negative, or an error."""
    columns = _matching([str(c) for c in X.columns], patterns)
    for column in columns:
        if not pd.api.types.is_numeric_dtype(X[column]):
            raise StudyConfigError(f"features.log: {column} is not numeric")
        if (X[column].dropna() < 0).any():
            raise StudyConfigError(
                f"features.log: {column} has negative values; log(1 + x) needs x >= 0"
            )
    return columns
