"""Checks of a cohort's tables and outcomes against ``cohort.yaml``, each problem into the
:class:`ValidationReport` with its file, row, patient and field.

Rules (codes as in the report):

- ``table.*``: a table file missing or unreadable; declared columns absent, undeclared columns
  present; duplicate ids; tumours whose patient is not in the patients table.
- ``value.*``: cells of the wrong type, required values missing, values outside the valid range,
  a column whose values contradict its declared unit.
- ``outcome.*``: an event without a time, a time without an event, negative times, times beyond
  the study's follow-up; rows that cannot be labelled at a binary endpoint's horizon (warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.cohort.concepts import CONCEPTS, guess_unit_from_median
from hepablate.cohort.problems import ValidationReport
from hepablate.cohort.schema import (
    TIME_UNITS_IN_MONTHS,
    BinaryEndpoint,
    CohortSchema,
    ColumnSpec,
    TableSpec,
)
from hepablate.cohort.tables import HEADER_ROWS, TableReadError, parse_column, read_raw_table

__all__ = ["check_endpoint", "check_links", "check_table", "table_ids"]

# The unit check compares a column's median with its declared unit; fewer values say too little.
_MIN_VALUES_FOR_UNIT_CHECK = 5
# How many ids an aggregated warning lists before "and N more".
_IDS_SHOWN = 8


def _row(position: int) -> int:
    return position + HEADER_ROWS + 1


def _patient_of_rows(raw: pd.DataFrame, spec: TableSpec) -> list[str | None]:
    """The patient each row belongs to, as written in the file, for locating problems."""
    column = spec.patient_id_column or spec.id_column
    if column not in raw.columns:
        return [None] * len(raw)
    return [_cell_text(v) for v in raw[column]]


def _cell_text(value: Any) -> str | None:
    text = f"{value:g}" if isinstance(value, float) else str(value).strip()
    return text or None


def check_table(
    root: Path, name: str, spec: TableSpec, schema: CohortSchema, report: ValidationReport
) -> pd.DataFrame | None:
    """Read, parse and check one table; return it typed (positional index = file order)."""
    file = spec.file
    try:
        raw = read_raw_table(root / file, spec)
    except TableReadError as exc:
        code = "table.missing_file" if str(exc) == "file not found" else "table.unreadable"
        hint = ""
        if code == "table.missing_file":
            others = sorted(p.name for p in root.glob(f"{Path(file).stem}.*") if p.name != file)
            hint = f" (found {', '.join(others)}: update 'file' in cohort.yaml)" if others else ""
        report.error(code, f"the {name} table cannot be read: {exc}{hint}", file=file)
        return None

    declared = set(spec.columns)
    present = list(raw.columns)
    for column in present:
        if column not in declared:
            report.error(
                "table.unknown_column",
                f"column {column!r} is not declared in cohort.yaml; declare it "
                "(role: ignore keeps it unused)",
                file=file,
                field=column,
            )
    for column in spec.columns:
        if column not in present:
            report.error(
                "table.missing_column",
                f"declared column {column!r} is not in the file",
                file=file,
                field=column,
            )

    patients = _patient_of_rows(raw, spec)
    typed: dict[str, pd.Series] = {}
    for column, column_spec in spec.columns.items():
        if column not in present:
            typed[column] = pd.Series(pd.NA, index=raw.index, dtype="object", name=column)
            continue
        series = _check_column(raw[column], column, column_spec, file, patients, schema, report)
        typed[column] = series.set_axis(raw.index)
    frame = pd.DataFrame(typed, index=raw.index)
    _check_duplicates(frame, spec, file, patients, report)
    return frame


def _check_column(
    raw: pd.Series,
    column: str,
    spec: ColumnSpec,
    file: str,
    patients: list[str | None],
    schema: CohortSchema,
    report: ValidationReport,
) -> pd.Series:
    values, issues = parse_column(raw, spec, schema.missing_values)
    for issue in issues:
        report.error(
            "value.wrong_type",
            f"{issue.reason} (column type: {spec.type.value})",
            patient=patients[issue.position],
            file=file,
            row=_row(issue.position),
            field=column,
        )
    bad_positions = {issue.position for issue in issues}
    if spec.is_required:
        for position in np.flatnonzero(values.isna().to_numpy()):
            if position not in bad_positions:
                report.error(
                    "value.missing",
                    "a required value is missing",
                    patient=patients[position],
                    file=file,
                    row=_row(int(position)),
                    field=column,
                )
    if spec.valid_range is not None:
        low, high = spec.valid_range
        unit = f" {spec.unit}" if spec.unit and spec.unit != "1" else ""
        numbers = values.astype("float64")
        for position in np.flatnonzero(((numbers < low) | (numbers > high)).to_numpy()):
            report.error(
                "value.out_of_range",
                f"{numbers.iloc[position]:g}{unit} is outside the valid range "
                f"[{low:g}, {high:g}]{unit}",
                patient=patients[position],
                file=file,
                row=_row(int(position)),
                field=column,
            )
    _check_unit(values, column, spec, file, report)
    return values


def _check_unit(
    values: pd.Series, column: str, spec: ColumnSpec, file: str, report: ValidationReport
) -> None:
    """Flag a column whose values sit in another unit's range than the one declared."""
    concept = CONCEPTS.get(spec.concept or "")
    if concept is None or spec.unit is None or len(concept.units) < 2:
        return
    numbers = values.astype("float64").dropna()
    if len(numbers) < _MIN_VALUES_FOR_UNIT_CHECK:
        return
    median = float(numbers.median())
    low, high = concept.typical_median[spec.unit]
    if low <= median <= high:
        return
    spread = f"median {median:.3g}, range {numbers.min():.3g} to {numbers.max():.3g}"
    likely = guess_unit_from_median(concept, median)
    if likely is not None:
        report.error(
            "value.unit_contradicted",
            f"declared in {spec.unit} but the values ({spread}) look like {likely}; "
            f"convert them to {spec.unit} or declare unit: {likely}",
            file=file,
            field=column,
        )
    else:
        report.warning(
            "value.implausible_median",
            f"the values ({spread}) are unusual for {concept.description.lower()} in "
            f"{spec.unit} (a cohort median is usually {low:g} to {high:g}); check the unit",
            file=file,
            field=column,
        )


def _check_duplicates(
    frame: pd.DataFrame,
    spec: TableSpec,
    file: str,
    patients: list[str | None],
    report: ValidationReport,
) -> None:
    key = [c for c in (spec.patient_id_column, spec.id_column) if c is not None]
    keyed = frame[key].dropna()
    duplicated = keyed[keyed.duplicated(keep=False)]
    for _, group in duplicated.groupby(key, sort=False):
        positions = list(group.index)
        rows = ", ".join(str(_row(p)) for p in positions)
        what = "tumour id" if spec.patient_id_column else "patient id"
        value = group.iloc[0][spec.id_column]
        report.error(
            "table.duplicate_id",
            f"{what} {value} appears in {len(positions)} rows ({rows}); ids must be unique",
            patient=patients[positions[0]],
            file=file,
            row=_row(positions[0]),
            field=spec.id_column,
        )


def table_ids(frame: pd.DataFrame, column: str) -> list[str]:
    """Valid, unique ids in file order, as text (folder names under images/)."""
    ids = [str(v) for v in frame[column].dropna()]
    return list(dict.fromkeys(ids))


def check_links(
    patients: pd.DataFrame, tumours: pd.DataFrame, schema: CohortSchema, report: ValidationReport
) -> dict[str, set[Any]]:
    """Every tumour's patient exists; returns the tumour ids of each patient."""
    spec = schema.tables.tumours
    assert spec is not None and spec.patient_id_column is not None
    link, tumour_id = spec.patient_id_column, spec.id_column
    known = set(table_ids(patients, schema.tables.patients.id_column))
    by_patient: dict[str, set[Any]] = {}
    for position, (patient, tumour) in enumerate(
        zip(tumours[link], tumours[tumour_id], strict=True)
    ):
        if pd.isna(patient):
            continue
        patient = str(patient)
        if patient not in known:
            report.error(
                "table.orphan_tumour",
                f"tumour {tumour} belongs to patient {patient}, who is not in "
                f"{schema.tables.patients.file}",
                patient=patient,
                file=spec.file,
                row=_row(position),
                field=link,
            )
            continue
        if not pd.isna(tumour):
            by_patient.setdefault(patient, set()).add(int(tumour) if _is_int(tumour) else tumour)
    without = [p for p in known if p not in by_patient]
    if without:
        report.warning(
            "table.patient_without_tumours",
            f"{len(without)} patient(s) have no row in {spec.file}: {_list_ids(without)}",
            file=spec.file,
        )
    return by_patient


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer)


def _list_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:_IDS_SHOWN])
    return shown if len(ids) <= _IDS_SHOWN else f"{shown} and {len(ids) - _IDS_SHOWN} more"


# --- outcomes ------------------------------------------------------------------------------------


def check_endpoint(
    frame: pd.DataFrame,
    endpoint: Any,
    schema: CohortSchema,
    report: ValidationReport,
) -> None:
    """The ``outcome.*`` rules of one endpoint on its table's rows."""
    spec = schema.table(endpoint.table)
    file = spec.file
    patient_column = spec.patient_id_column or spec.id_column
    patients = [None if pd.isna(p) else str(p) for p in frame[patient_column]]
    event = frame[endpoint.event]
    if endpoint.time is None:
        return
    unit = spec.columns[endpoint.time].unit or "months"
    time = frame[endpoint.time].astype("float64")
    time_months = time * TIME_UNITS_IN_MONTHS[unit]
    unlabelled: list[str] = []
    for position in range(len(frame)):
        has_event, has_time = not pd.isna(event.iloc[position]), not pd.isna(time.iloc[position])
        where = {"patient": patients[position], "file": file, "row": _row(position)}
        if has_event and bool(event.iloc[position]) and not has_time:
            report.error(
                "outcome.event_without_time",
                f"the event is recorded but its time ({endpoint.time}) is missing",
                field=endpoint.time,
                **where,
            )
        elif has_time and not has_event:
            report.error(
                "outcome.time_without_event",
                f"a follow-up time is recorded but {endpoint.event} (event yes/no) is missing",
                field=endpoint.event,
                **where,
            )
        if not has_time:
            continue
        value, months = time.iloc[position], time_months.iloc[position]
        if value < 0:
            report.error(
                "outcome.negative_time",
                f"time {value:g} {unit} is negative",
                field=endpoint.time,
                **where,
            )
        elif schema.follow_up_months is not None and months > schema.follow_up_months:
            report.error(
                "outcome.beyond_follow_up",
                f"time {value:g} {unit} ({months:.1f} months) is beyond the study's follow-up "
                f"of {schema.follow_up_months:g} months (follow_up_months in cohort.yaml)",
                field=endpoint.time,
                **where,
            )
        if (
            isinstance(endpoint, BinaryEndpoint)
            and has_event
            and not bool(event.iloc[position])
            and 0 <= months < endpoint.horizon_months
        ):
            unlabelled.append(f"{patients[position]} (row {_row(position)})")
    if unlabelled:
        report.warning(
            "outcome.censored_before_horizon",
            f"{len(unlabelled)} row(s) were followed for less than {endpoint.horizon_months:g} "
            f"months without the event, so endpoint {endpoint.name!r} cannot label them; they "
            f"are left out of it (but kept for time-to-event endpoints): {_list_ids(unlabelled)}",
            file=file,
            field=endpoint.event,
        )
