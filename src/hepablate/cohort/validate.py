"""Validation of a cohort folder: every rule runs, every problem is reported at once.

:func:`validate_cohort` returns the :class:`ValidationReport`; :func:`load_cohort` returns the
typed :class:`Cohort` and raises :class:`CohortValidationError` (with the whole report) when there
is any error. Both run the same checks. Nothing is changed or guessed: a value that does not fit
its declaration is reported, never converted, clipped or dropped.

The rules, in the order they run (codes as in the report):

- ``schema.*``: ``cohort.yaml`` missing, not YAML, or not a valid schema.
- ``table.*``: a table file missing or unreadable; declared columns absent, undeclared columns
  present; duplicate ids; tumours whose patient is not in the patients table.
- ``value.*``: cells of the wrong type, required values missing, values outside the valid range,
  a column whose values contradict its declared unit.
- ``outcome.*``: an event without a time, a time without an event, negative times, times beyond
  the study's follow-up; rows that cannot be labelled at a binary endpoint's horizon (warning).
- ``images.*``: see :mod:`hepablate.cohort.image_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from hepablate.cohort import image_checks
from hepablate.cohort.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.cohort.concepts import CONCEPTS, guess_unit_from_median
from hepablate.cohort.problems import CohortValidationError, ValidationReport
from hepablate.cohort.schema import (
    TIME_UNITS_IN_MONTHS,
    BinaryEndpoint,
    CohortSchema,
    ColumnRole,
    ColumnSpec,
    TableSpec,
)
from hepablate.cohort.tables import HEADER_ROWS, TableReadError, parse_column, read_raw_table

__all__ = ["SCHEMA_FILE", "load_cohort", "validate_cohort"]

SCHEMA_FILE = "cohort.yaml"
# The unit check compares a column's median with its declared unit; fewer values say too little.
_MIN_VALUES_FOR_UNIT_CHECK = 5
# How many ids an aggregated warning lists before "and N more".
_IDS_SHOWN = 8

ProgressCallback = Callable[[int, int], None]


def validate_cohort(
    cohort_dir: Path | str,
    *,
    check_images: bool = True,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Check a cohort folder against its ``cohort.yaml`` and return every problem found.

    ``progress(done, total)`` is called after each patient's images are checked.
    """
    report, _ = _inspect(Path(cohort_dir), check_images=check_images, progress=progress)
    return report


def load_cohort(
    cohort_dir: Path | str,
    *,
    check_images: bool = True,
    progress: ProgressCallback | None = None,
) -> Cohort:
    """Validate and load a cohort; raise :class:`CohortValidationError` if it has any error."""
    report, cohort = _inspect(Path(cohort_dir), check_images=check_images, progress=progress)
    if cohort is None or not report.ok:
        raise CohortValidationError(report)
    return cohort


def _inspect(
    root: Path, *, check_images: bool, progress: ProgressCallback | None
) -> tuple[ValidationReport, Cohort | None]:
    report = ValidationReport(cohort_dir=str(root))
    if not root.is_dir():
        report.error("cohort.missing_directory", f"{root} is not a folder", file=str(root))
        return report, None
    schema = _read_schema(root, report)
    if schema is None:
        return report, None

    _warn_images_without_tumours(schema, report)
    patients = _check_table(root, "patients", schema.tables.patients, schema, report)
    tumours = None
    if schema.tables.tumours is not None:
        tumours = _check_table(root, "tumours", schema.tables.tumours, schema, report)
    if patients is None:
        return report, None

    patient_ids = _ids(patients, schema.tables.patients.id_column)
    # None when the tumours table could not be read: labels cannot be checked against it then.
    tumour_ids: dict[str, set[Any]] | None = None
    if tumours is not None and schema.tables.tumours is not None:
        tumour_ids = _check_links(patients, tumours, schema, report)
    for endpoint in schema.endpoints:
        frame = patients if endpoint.table == "patients" else tumours
        if frame is not None:
            _check_endpoint(frame, endpoint, schema, report)

    images: dict[str, dict[str, Path]] = {}
    if schema.images is not None and check_images:
        images = image_checks.check_images(root, schema, patient_ids, tumour_ids, report, progress)

    cohort = Cohort(
        root=root,
        schema=schema,
        patients=_index_patients(patients, schema),
        tumours=None if tumours is None else _index_tumours(tumours, schema),
        images=images,
        report=report,
    )
    report.summary = _summary(schema, patients, tumours, images)
    report.summary["endpoints"] = {
        e.name: _endpoint_summary(cohort, e.name)
        for e in schema.endpoints
        if e.table == "patients" or cohort.tumours is not None
    }
    for endpoint in schema.endpoints:
        if endpoint.name in report.summary["endpoints"]:
            _warn_single_outcome(
                endpoint, report.summary["endpoints"][endpoint.name], schema, report
            )
    return report, cohort


def _warn_images_without_tumours(schema: CohortSchema, report: ValidationReport) -> None:
    """Images that extraction cannot measure: without a tumours table, or without a mask
    labelled by tumour, a FeatureTable has clinical columns only."""
    if schema.images is None:
        return
    if schema.tables.tumours is None:
        report.warning(
            "schema.images_without_tumours",
            "images are declared but there is no tumours table: `hepablate extract` will give "
            "the clinical columns only (no geometry, radiomics or crops, which need a tumours "
            "table and a tumour mask labelled by tumour_id)",
            file=SCHEMA_FILE,
        )
    elif not any(m.labels == "tumour_id" for m in schema.images.masks.values()):
        report.warning(
            "schema.images_without_tumour_mask",
            "no mask has labels: tumour_id: `hepablate extract` will measure no tumour "
            "(no geometry, radiomics or crops; declare the tumour mask, e.g. pre_tumours)",
            file=SCHEMA_FILE,
        )


def _warn_single_outcome(
    endpoint: Any, counts: dict[str, Any], schema: CohortSchema, report: ValidationReport
) -> None:
    """A warning for an endpoint whose known outcomes are all alike: nothing can learn it."""
    binary = counts["kind"] == "binary"
    known = counts["labelled"] if binary else counts["events"] + counts["censored"]
    if not known or 0 < counts["events"] < known or (not binary and counts["events"]):
        return
    events = "every row is an event" if counts["events"] else "0 events"
    report.warning(
        "outcome.single_outcome",
        f"endpoint {endpoint.name!r}: {events} among the {known} rows with a known outcome; "
        "no model can be trained or validated on it",
        file=schema.table(endpoint.table).file,
        field=endpoint.event,
    )


# --- cohort.yaml ---------------------------------------------------------------------------------


def _read_schema(root: Path, report: ValidationReport) -> CohortSchema | None:
    path = root / SCHEMA_FILE
    if not path.is_file():
        report.error(
            "schema.missing",
            f"no {SCHEMA_FILE} in {root}; every cohort folder needs one (docs/cohort-format.md)",
            file=SCHEMA_FILE,
        )
        return None
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        report.error("schema.not_yaml", f"not valid YAML{where}: {problem}", file=SCHEMA_FILE)
        return None
    if not isinstance(content, dict):
        report.error("schema.not_mapping", "the file must hold a YAML mapping", file=SCHEMA_FILE)
        return None
    try:
        return CohortSchema.model_validate(content)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or None
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (misspelt?)"
            report.error("schema.invalid", message, file=SCHEMA_FILE, field=field)
        return None


# --- tables --------------------------------------------------------------------------------------


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


def _check_table(
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


def _ids(frame: pd.DataFrame, column: str) -> list[str]:
    """Valid, unique ids in file order, as text (folder names under images/)."""
    ids = [str(v) for v in frame[column].dropna()]
    return list(dict.fromkeys(ids))


def _check_links(
    patients: pd.DataFrame, tumours: pd.DataFrame, schema: CohortSchema, report: ValidationReport
) -> dict[str, set[Any]]:
    """Every tumour's patient exists; returns the tumour ids of each patient."""
    spec = schema.tables.tumours
    assert spec is not None and spec.patient_id_column is not None
    link, tumour_id = spec.patient_id_column, spec.id_column
    known = set(_ids(patients, schema.tables.patients.id_column))
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


def _check_endpoint(
    frame: pd.DataFrame,
    endpoint: Any,
    schema: CohortSchema,
    report: ValidationReport,
) -> None:
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


# --- typed result --------------------------------------------------------------------------------


def _index_patients(frame: pd.DataFrame, schema: CohortSchema) -> pd.DataFrame:
    column = schema.tables.patients.id_column
    index = pd.Index([None if pd.isna(v) else str(v) for v in frame[column]], name=PATIENT_INDEX)
    return frame.set_axis(index)


def _index_tumours(frame: pd.DataFrame, schema: CohortSchema) -> pd.DataFrame:
    spec = schema.tables.tumours
    assert spec is not None and spec.patient_id_column is not None
    patients = [None if pd.isna(v) else str(v) for v in frame[spec.patient_id_column]]
    index = pd.MultiIndex.from_arrays(
        [patients, list(frame[spec.id_column])], names=[PATIENT_INDEX, TUMOUR_INDEX]
    )
    return frame.set_axis(index)


def _summary(
    schema: CohortSchema,
    patients: pd.DataFrame,
    tumours: pd.DataFrame | None,
    images: dict[str, dict[str, Path]],
) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": schema.name, "patients": len(patients)}
    if tumours is not None:
        summary["tumours"] = len(tumours)
    centre = schema.tables.patients.centre_column
    if centre is not None:
        counts = patients[centre].astype("string").value_counts(dropna=False)
        summary["centres"] = {str(k): int(v) for k, v in counts.items()}
    predictors: dict[str, float] = {}
    for table_name, frame in (("patients", patients), ("tumours", tumours)):
        if frame is None:
            continue
        spec = schema.table(table_name)
        for column in spec.columns_with_role(ColumnRole.PREDICTOR):
            predictors[column] = round(float(frame[column].isna().mean()) * 100, 1)
    summary["missing_pct"] = {k: v for k, v in predictors.items() if v > 0}
    summary["predictors"] = len(predictors)
    summary["images"] = sum(len(found) for found in images.values())
    return summary


def _endpoint_summary(cohort: Cohort, name: str) -> dict[str, Any]:
    outcomes = cohort.outcomes(name)
    if "label" in outcomes:
        labels = outcomes["label"]
        return {
            "kind": "binary",
            "rows": len(labels),
            "labelled": int(labels.notna().sum()),
            "events": int(labels.fillna(0).sum()),
        }
    known = outcomes.dropna()
    return {
        "kind": "time_to_event",
        "rows": len(outcomes),
        "events": int(known["event"].astype(bool).sum()),
        "censored": int((~known["event"].astype(bool)).sum()),
        "median_time_months": round(float(known["time_months"].median()), 1)
        if len(known)
        else None,
    }
