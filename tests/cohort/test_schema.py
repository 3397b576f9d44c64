"""The typed schema of cohort.yaml: what it accepts and the errors it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hepablate.cohort.schema import CohortSchema, ColumnSpec


def _column(**kwargs: Any) -> ColumnSpec:
    return ColumnSpec.model_validate({"role": "predictor", **kwargs})


def test_example_schema_loads(example_cohort: Path) -> None:
    content = yaml.safe_load((example_cohort / "cohort.yaml").read_text(encoding="utf-8"))

    schema = CohortSchema.model_validate(content)

    assert schema.tables.patients.id_column == "patient_id"
    assert schema.tables.tumours is not None
    assert schema.tables.tumours.patient_id_column == "patient_id"
    assert schema.tables.patients.centre_column == "centre"
    assert [e.name for e in schema.endpoints] == ["ltp_24m", "ltp", "rfs"]
    assert schema.images is not None
    assert schema.images.masks["post_ablation"].scan == "post_ct"


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("umol/L", "µmol/L"), ("μmol/L", "µmol/L"), ("x10^9/L", "10^9/L"), ("G/L", "10^9/L")],
)
def test_unit_spellings_are_made_canonical(typed: str, canonical: str) -> None:
    assert _column(type="number", unit=typed).unit == canonical


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"type": "category"}, "needs 'levels'"),
        ({"type": "number", "levels": ["a"]}, "only for category columns"),
        ({"type": "number", "range": [5, 1]}, "low end above its high end"),
        ({"type": "boolean", "range": [0, 1]}, "only for number or integer"),
        ({"type": "number", "concept": "bilirubin"}, "unknown concept 'bilirubin'"),
        ({"type": "number", "concept": "albumin"}, "needs a unit, one of: g/L, g/dL"),
        ({"type": "number", "concept": "albumin", "unit": "mg/dL"}, "not a unit of 'albumin'"),
        (
            {"type": "category", "levels": ["yes", "no"], "concept": "ascites"},
            "levels: none, mild, moderate_severe",
        ),
        ({"type": "number", "role": "id"}, "must be of type string or integer"),
    ],
)
def test_inconsistent_columns_are_refused(column: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _column(**column)


def _schema(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "tables": {
            "patients": {
                "file": "p.csv",
                "columns": {
                    "pid": {"role": "id", "type": "string"},
                    "os_months": {"role": "outcome", "type": "number", "unit": "months"},
                    "death": {"role": "outcome", "type": "boolean"},
                },
            }
        },
        "endpoints": [
            {
                "name": "os",
                "kind": "time_to_event",
                "table": "patients",
                "time": "os_months",
                "event": "death",
            }
        ],
    }
    base.update(changes)
    return base


def test_tabular_cohort_without_images_or_tumours_is_valid() -> None:
    schema = CohortSchema.model_validate(_schema())

    assert schema.images is None and schema.tables.tumours is None


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"time": "os_weeks"}, "no column 'os_weeks'"),
        ({"event": "pid"}, "must have role outcome, type boolean"),
        ({"table": "tumours"}, "no table"),
        ({"kind": "binary", "horizon_months": 0}, "greater than 0"),
    ],
)
def test_endpoints_must_reference_outcome_columns(endpoint: dict[str, Any], message: str) -> None:
    content = _schema()
    content["endpoints"][0].update(endpoint)

    with pytest.raises(ValidationError, match=message):
        CohortSchema.model_validate(content)


def test_time_unit_is_required_for_an_endpoint_time() -> None:
    content = _schema()
    del content["tables"]["patients"]["columns"]["os_months"]["unit"]

    with pytest.raises(ValidationError, match="needs a unit, one of: days, weeks, months, years"):
        CohortSchema.model_validate(content)


def test_masks_must_be_on_a_declared_scan() -> None:
    content = _schema(images={"scans": {"pre_ct": {}}, "masks": {"liver": {"scan": "post_ct"}}})

    with pytest.raises(ValidationError, match="mask 'liver' is on 'post_ct'"):
        CohortSchema.model_validate(content)
