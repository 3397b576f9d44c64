"""Validation of a cohort folder: every rule runs, every problem is reported at once.

:func:`validate_cohort` returns the :class:`ValidationReport`; :func:`load_cohort` returns the
typed :class:`Cohort` and raises :class:`CohortValidationError` (with the whole report) when there
is any error. Both run the same checks. Nothing is changed or guessed: a value that does not fit
its declaration is reported, never converted, clipped or dropped.

The rules, in the order they run (codes as in the report):

- ``schema.*``: ``cohort.yaml`` missing, not YAML, or not a valid schema.
- ``table.*``, ``value.*``, ``outcome.*``: see :mod:`hepablate.cohort.table_checks`.
- ``images.*``: see :mod:`hepablate.cohort.image_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from hepablate.cohort import image_checks
from hepablate.cohort.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.cohort.problems import CohortValidationError, ValidationReport
from hepablate.cohort.schema import CohortSchema, ColumnRole
from hepablate.cohort.table_checks import check_endpoint, check_links, check_table, table_ids

__all__ = ["SCHEMA_FILE", "load_cohort", "validate_cohort"]

SCHEMA_FILE = "cohort.yaml"

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
    patients = check_table(root, "patients", schema.tables.patients, schema, report)
    tumours = None
    if schema.tables.tumours is not None:
        tumours = check_table(root, "tumours", schema.tables.tumours, schema, report)
    if patients is None:
        return report, None

    patient_ids = table_ids(patients, schema.tables.patients.id_column)
    # None when the tumours table could not be read: labels cannot be checked against it then.
    tumour_ids: dict[str, set[Any]] | None = None
    if tumours is not None and schema.tables.tumours is not None:
        tumour_ids = check_links(patients, tumours, schema, report)
    for endpoint in schema.endpoints:
        frame = patients if endpoint.table == "patients" else tumours
        if frame is not None:
            check_endpoint(frame, endpoint, schema, report)

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
