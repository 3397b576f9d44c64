"""The validated, typed cohort that every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hepablate.cohort.problems import ValidationReport
from hepablate.cohort.schema import (
    TIME_UNITS_IN_MONTHS,
    BinaryEndpoint,
    CohortSchema,
    TimeToEventEndpoint,
)

__all__ = ["PATIENT_INDEX", "TUMOUR_INDEX", "Cohort", "label_at_horizon"]

# Index names of the typed tables, whatever the columns are called in the files.
PATIENT_INDEX = "patient_id"
TUMOUR_INDEX = "tumour_id"


@dataclass
class Cohort:
    """A cohort that passed validation.

    ``patients`` is indexed by patient id (text, as in folder names); ``tumours`` by
    (patient id, tumour id). Both keep every declared column, typed as declared, under the
    names of the files. ``images[patient][name]`` is the path of each image or mask found.
    """

    root: Path
    schema: CohortSchema
    patients: pd.DataFrame
    tumours: pd.DataFrame | None
    images: dict[str, dict[str, Path]] = field(default_factory=dict)
    report: ValidationReport | None = None

    @property
    def patient_ids(self) -> list[str]:
        return [str(p) for p in self.patients.index]

    def centres(self) -> pd.Series:
        """The centre of each patient (one centre, ``"all"``, when none is declared)."""
        column = self.schema.tables.patients.centre_column
        if column is None:
            return pd.Series("all", index=self.patients.index, name="centre")
        return self.patients[column].astype("string").rename("centre")

    def outcomes(self, endpoint_name: str) -> pd.DataFrame:
        """The endpoint's outcome per row of its table.

        Binary: column ``label`` (nullable 0/1; NA where the row cannot be labelled, e.g. when
        follow-up ended before the horizon without the event). Time-to-event: ``time_months``
        and ``event``; rows with either missing are NA.
        """
        endpoint = self.schema.endpoint(endpoint_name)
        frame = self.patients if endpoint.table == "patients" else self.tumours
        if frame is None:
            raise KeyError(f"endpoint {endpoint_name!r} needs the {endpoint.table} table")
        table = self.schema.table(endpoint.table)
        event = frame[endpoint.event].astype("boolean")
        time = None
        if endpoint.time is not None:
            unit = table.columns[endpoint.time].unit or "months"
            time = frame[endpoint.time].astype("float64") * TIME_UNITS_IN_MONTHS[unit]
        if isinstance(endpoint, TimeToEventEndpoint):
            assert time is not None
            return pd.DataFrame({"time_months": time, "event": event}, index=frame.index)
        return pd.DataFrame({"label": binary_label(endpoint, event, time)}, index=frame.index)


def binary_label(
    endpoint: BinaryEndpoint, event: pd.Series, time_months: pd.Series | None
) -> pd.Series:
    """The 0/1 label at the endpoint's horizon (NA where it cannot be known)."""
    if time_months is None:
        return event.astype("Int64")
    return label_at_horizon(event, time_months, endpoint.horizon_months)


def label_at_horizon(event: pd.Series, time_months: pd.Series, horizon_months: float) -> pd.Series:
    """1 if the event happened by the horizon, 0 if followed to it without, else NA.

    A row censored before the horizon cannot be labelled: whether its event would have come in
    time is unknown. An event after the horizon counts as 0.
    """
    happened = event.fillna(False).to_numpy(dtype=bool)
    known_time = time_months.notna().to_numpy()
    times = time_months.to_numpy(dtype=float, na_value=np.nan)
    label = pd.Series(pd.NA, index=event.index, dtype="Int64")
    positive = happened & known_time & (times <= horizon_months)
    negative = known_time & event.notna().to_numpy() & (times >= horizon_months)
    label[positive] = 1
    label[negative & ~positive] = 0
    return label
