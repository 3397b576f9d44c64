"""The typed schema of cohort.yaml: what it accepts and the errors it gives."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from hepablate.cohort.schema import (
    BinaryEndpoint,
    CohortSchema,
    ColumnSpec,
    ImagesSpec,
    MaskSpec,
    ScanSpec,
    Tables,
    TableSpec,
    TimeToEventEndpoint,
)
from tests.conftest import REPO


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


def test_numeric_levels_and_codes_are_kept_as_the_text_yaml_read() -> None:
    content = yaml.safe_load(
        "name: t\nmissing_values: ['', -999, 9.5]\ntables:\n  patients:\n    file: p.xlsx\n"
        "    sheet: 2019\n    columns:\n      pid: {role: id, type: string}\n"
        "      ecog: {role: predictor, type: category, levels: [0, 1, 2]}\n"
    )

    schema = CohortSchema.model_validate(content)

    assert schema.missing_values == ["", "-999", "9.5"]
    assert schema.tables.patients.columns["ecog"].levels == ["0", "1", "2"]
    assert schema.tables.patients.sheet == "2019"


def test_unquoted_yes_no_levels_are_refused_with_the_fix() -> None:
    content = yaml.safe_load("{role: predictor, type: category, levels: [yes, no]}")

    with pytest.raises(ValidationError, match=r'read as booleans; quote the value .*"yes"'):
        ColumnSpec.model_validate(content)


def test_a_sheet_is_only_for_xlsx() -> None:
    content = _schema()
    content["tables"]["patients"]["sheet"] = "clinical"

    with pytest.raises(ValidationError, match=r"'sheet' is only for \.xlsx files, not p\.csv"):
        CohortSchema.model_validate(content)


# Each model of cohort.yaml and the section of docs/cohort-format.md whose tables document its
# keys, one row `| `key` | ...` per key.
_DOCUMENTED_IN = {
    CohortSchema: "## 2. `cohort.yaml`",
    Tables: "### Tables",
    TableSpec: "### Tables",
    ColumnSpec: "### Columns",
    BinaryEndpoint: "## 4. Endpoints",
    TimeToEventEndpoint: "## 4. Endpoints",
    ImagesSpec: "## 5. Images",
    ScanSpec: "## 5. Images",
    MaskSpec: "## 5. Images",
}


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n") + len(heading)
    following = re.search(r"^#{2,3} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """``model`` and every model its fields hold, through lists, dicts and unions."""
    found = {model}
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= _models(kind)
            stack.extend(typing.get_args(kind))
    return found


def test_every_key_of_cohort_yaml_is_documented() -> None:
    text = (REPO / "docs" / "cohort-format.md").read_text(encoding="utf-8")
    assert _models(CohortSchema) == set(_DOCUMENTED_IN)  # a new model needs a doc section too

    undocumented = [
        f"{model.__name__}.{field.alias or name}"
        for model, heading in _DOCUMENTED_IN.items()
        for name, field in model.model_fields.items()
        if f"| `{field.alias or name}` |" not in _section(text, heading)
    ]

    assert undocumented == []
