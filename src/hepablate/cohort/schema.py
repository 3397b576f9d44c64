"""The typed schema of ``cohort.yaml``.

``cohort.yaml`` says, for every column of every table, what the column is for (its role), what
values it may hold (type, levels, valid range), in which unit, and which clinical concept it
records; it names the study's endpoints and the images each patient has. Everything else in
hepablate reads the cohort through this schema, so a column is never interpreted by its name.

The human documentation of the same format is ``docs/cohort-format.md``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from hepablate.cohort.concepts import CONCEPTS, canonical_unit

__all__ = [
    "TIME_UNITS_IN_MONTHS",
    "BinaryEndpoint",
    "CohortSchema",
    "ColumnRole",
    "ColumnSpec",
    "ColumnType",
    "Endpoint",
    "ImagesSpec",
    "MaskSpec",
    "ScanSpec",
    "TableSpec",
    "TimeToEventEndpoint",
]

# Months per unit; a month is a twelfth of a Julian year (30.4375 days).
TIME_UNITS_IN_MONTHS: dict[str, float] = {
    "days": 12.0 / 365.25,
    "weeks": 7.0 * 12.0 / 365.25,
    "months": 1.0,
    "years": 12.0,
}

# Names used for files and folders: patient ids become folder names under images/.
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_written(values: object) -> object:
    """Numbers in a list of values (levels, missing-value codes) as the text YAML read them from.

    ``levels: [0, 1]`` and ``missing_values: [-999]`` are numbers to YAML; they are kept as the
    text ``"0"``, ``"-999"``, which is what they are compared as. Unquoted ``yes``/``no``/``on``/
    ``off``/``true``/``false`` are booleans to YAML 1.1 and its original spelling is lost, so a
    boolean is refused with the fix rather than guessed back.
    """
    if not isinstance(values, list):
        return values
    converted: list[object] = []
    for value in values:
        if isinstance(value, bool):
            raise ValueError(
                f"{value!r} here is a YAML true/false: unquoted yes, no, on, off, true, false are "
                'read as booleans; quote the value as written in the table (e.g. "yes")'
            )
        converted.append(str(value) if isinstance(value, int | float) else value)
    return converted


def _scalar_as_written(value: object) -> object:
    """A sheet name YAML read as a number (``sheet: 2019``) is the name ``"2019"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_Values = Annotated[list[str], BeforeValidator(_as_written)]


class ColumnRole(StrEnum):
    """What a column is for."""

    ID = "id"  # the row's identifier: patient id in patients, tumour id in tumours
    PATIENT_ID = "patient_id"  # link from a tumour row to its patient
    CENTRE = "centre"  # hospital or scanner site, for external validation by centre
    PREDICTOR = "predictor"  # a candidate feature
    OUTCOME = "outcome"  # an endpoint's time or event column
    IGNORE = "ignore"  # present in the file, deliberately not used


class ColumnType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    CATEGORY = "category"
    STRING = "string"


class ColumnSpec(_Strict):
    """One column of a table."""

    role: ColumnRole
    type: ColumnType
    unit: str | None = None
    valid_range: tuple[float, float] | None = Field(default=None, alias="range")
    levels: _Values | None = None
    concept: str | None = None
    required: bool = False
    description: str | None = None

    @field_validator("unit")
    @classmethod
    def _canonical_unit(cls, unit: str | None) -> str | None:
        return None if unit is None else canonical_unit(unit)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type is ColumnType.CATEGORY:
            if not self.levels:
                raise ValueError("a category column needs 'levels' (the allowed values)")
            if len(set(self.levels)) != len(self.levels):
                raise ValueError("'levels' lists a value twice")
        elif self.levels is not None:
            raise ValueError(f"'levels' is only for category columns, not {self.type.value}")
        numeric = self.type in (ColumnType.NUMBER, ColumnType.INTEGER)
        if self.valid_range is not None:
            if not numeric:
                raise ValueError(f"'range' is only for number or integer columns, not {self.type}")
            low, high = self.valid_range
            if low > high:
                raise ValueError(f"'range' [{low}, {high}] has its low end above its high end")
        if self.unit is not None and self.unit != "1" and not numeric:
            raise ValueError(f"'unit' is only for number or integer columns, not {self.type}")
        if self.concept is not None:
            concept = CONCEPTS.get(self.concept)
            if concept is None:
                known = ", ".join(sorted(CONCEPTS))
                raise ValueError(f"unknown concept {self.concept!r}; known concepts: {known}")
            if concept.value_type == "number":
                if not numeric:
                    raise ValueError(f"concept {concept.name!r} needs a number or integer column")
                if self.unit is None:
                    units = ", ".join(concept.units)
                    raise ValueError(f"concept {concept.name!r} needs a unit, one of: {units}")
                if self.unit not in concept.units:
                    units = ", ".join(concept.units)
                    raise ValueError(
                        f"unit {self.unit!r} is not a unit of {concept.name!r}; use one of: {units}"
                    )
            elif self.type is not ColumnType.CATEGORY or set(self.levels or ()) != set(
                concept.levels
            ):
                levels = ", ".join(concept.levels)
                raise ValueError(
                    f"concept {concept.name!r} needs a category column with levels: {levels}"
                )
        if self.role in (ColumnRole.ID, ColumnRole.PATIENT_ID) and self.type not in (
            ColumnType.STRING,
            ColumnType.INTEGER,
        ):
            raise ValueError(f"an {self.role.value} column must be of type string or integer")
        return self

    @property
    def is_required(self) -> bool:
        """Ids and links may never be missing; other columns only when declared required."""
        return self.required or self.role in (ColumnRole.ID, ColumnRole.PATIENT_ID)


class TableSpec(_Strict):
    """A table file and its columns, in any order in the file."""

    file: str
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    sheet: Annotated[str | None, BeforeValidator(_scalar_as_written)] = None  # XLSX: by name
    columns: dict[str, ColumnSpec]

    @field_validator("file")
    @classmethod
    def _known_format(cls, file: str) -> str:
        if not file.lower().endswith((".csv", ".tsv", ".xlsx", ".parquet")):
            raise ValueError("a table file must end in .csv, .tsv, .xlsx or .parquet")
        return file

    @model_validator(mode="after")
    def _sheet_only_for_xlsx(self) -> TableSpec:
        if self.sheet is not None and not self.file.lower().endswith(".xlsx"):
            raise ValueError(f"'sheet' is only for .xlsx files, not {self.file}")
        return self

    def columns_with_role(self, role: ColumnRole) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.role is role]

    @property
    def id_column(self) -> str:
        return self.columns_with_role(ColumnRole.ID)[0]

    @property
    def patient_id_column(self) -> str | None:
        links = self.columns_with_role(ColumnRole.PATIENT_ID)
        return links[0] if links else None

    @property
    def centre_column(self) -> str | None:
        centres = self.columns_with_role(ColumnRole.CENTRE)
        return centres[0] if centres else None

    @model_validator(mode="after")
    def _one_id(self) -> TableSpec:
        ids = self.columns_with_role(ColumnRole.ID)
        if len(ids) != 1:
            raise ValueError(f"a table needs exactly one column with role 'id', found {len(ids)}")
        for role in (ColumnRole.PATIENT_ID, ColumnRole.CENTRE):
            if len(self.columns_with_role(role)) > 1:
                raise ValueError(f"a table may have at most one column with role {role.value!r}")
        return self


class _EndpointBase(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    table: Literal["patients", "tumours"]
    description: str | None = None


class BinaryEndpoint(_EndpointBase):
    """An event by a horizon (e.g. local tumour progression within 24 months).

    With a ``time`` column, the label is 1 when the event happened at or before the horizon,
    0 when the row was followed beyond the horizon without it, and undetermined (excluded from
    this endpoint, with a warning) when follow-up ended earlier without the event. Without a
    ``time`` column the event column is taken as the label at the horizon as it stands.
    """

    kind: Literal["binary"]
    event: str
    horizon_months: float = Field(gt=0)
    time: str | None = None


class TimeToEventEndpoint(_EndpointBase):
    """Time from ablation to the event or to censoring, and whether the event happened."""

    kind: Literal["time_to_event"]
    time: str
    event: str


Endpoint = Annotated[BinaryEndpoint | TimeToEventEndpoint, Field(discriminator="kind")]


class ScanSpec(_Strict):
    """An image volume each patient has (e.g. ``pre_ct``)."""

    modality: Literal["CT", "MR"] = "CT"
    required: bool = True
    description: str | None = None


class MaskSpec(_Strict):
    """A mask drawn on one of the scans, on that scan's voxel grid.

    ``labels: tumour_id`` means voxel value = the ``id`` of a row in the tumours table
    (0 = background); ``labels: binary`` means 0 and 1 only.
    """

    scan: str  # not "on": YAML 1.1 reads a bare `on` key as the boolean true
    labels: Literal["tumour_id", "binary"] = "binary"
    required: bool = True
    description: str | None = None


class ImagesSpec(_Strict):
    """Which images and masks each patient has, under ``<directory>/<patient id>/``."""

    directory: str = "images"
    scans: dict[str, ScanSpec]
    masks: dict[str, MaskSpec] = {}

    @model_validator(mode="after")
    def _masks_on_known_scans(self) -> ImagesSpec:
        for name in [*self.scans, *self.masks]:
            if not _is_name(name):
                raise ValueError(f"image name {name!r} must be letters, digits, '_', '.', '-'")
        overlap = set(self.scans) & set(self.masks)
        if overlap:
            raise ValueError(f"{sorted(overlap)} named both as scan and as mask")
        for mask_name, mask in self.masks.items():
            if mask.scan not in self.scans:
                raise ValueError(
                    f"mask {mask_name!r} is on {mask.scan!r}, which is not one of the scans "
                    f"({', '.join(self.scans)})"
                )
        return self


class Tables(_Strict):
    patients: TableSpec
    tumours: TableSpec | None = None


class CohortSchema(_Strict):
    """The whole of ``cohort.yaml``."""

    format_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str | None = None
    follow_up_months: float | None = Field(default=None, gt=0)
    missing_values: _Values = ["", "NA"]
    tables: Tables
    endpoints: list[Endpoint] = []
    images: ImagesSpec | None = None

    def table(self, name: str) -> TableSpec:
        spec = self.tables.patients if name == "patients" else self.tables.tumours
        if spec is None:
            raise KeyError(f"the cohort has no {name} table")
        return spec

    def endpoint(self, name: str) -> BinaryEndpoint | TimeToEventEndpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        known = ", ".join(e.name for e in self.endpoints) or "none"
        raise KeyError(f"no endpoint named {name!r}; the cohort defines: {known}")

    @model_validator(mode="after")
    def _cross_references(self) -> CohortSchema:
        tumours = self.tables.tumours
        if tumours is not None and tumours.patient_id_column is None:
            raise ValueError("the tumours table needs a column with role 'patient_id'")
        if self.tables.patients.patient_id_column is not None:
            raise ValueError(
                "in the patients table the patient id is the column with role 'id', "
                "not 'patient_id'"
            )
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("two endpoints have the same name")
        for endpoint in self.endpoints:
            self._check_endpoint(endpoint)
        if self.images is not None:
            for mask_name, mask in self.images.masks.items():
                if mask.labels != "tumour_id":
                    continue
                if tumours is None:
                    raise ValueError(
                        f"mask {mask_name!r} has tumour_id labels but there is no tumours table"
                    )
                if tumours.columns[tumours.id_column].type is not ColumnType.INTEGER:
                    raise ValueError(
                        f"mask {mask_name!r} has tumour_id labels, so the tumours table's id "
                        f"column {tumours.id_column!r} must be of type integer"
                    )
        return self

    def _check_endpoint(self, endpoint: BinaryEndpoint | TimeToEventEndpoint) -> None:
        if endpoint.table == "tumours" and self.tables.tumours is None:
            raise ValueError(f"endpoint {endpoint.name!r} is on tumours but there is no table")
        table = self.table(endpoint.table)
        where = f"endpoint {endpoint.name!r}"
        event_spec = table.columns.get(endpoint.event)
        if event_spec is None:
            raise ValueError(f"{where}: no column {endpoint.event!r} in the {endpoint.table} table")
        if event_spec.role is not ColumnRole.OUTCOME or event_spec.type is not ColumnType.BOOLEAN:
            raise ValueError(
                f"{where}: event column {endpoint.event!r} must have role outcome, type boolean"
            )
        if endpoint.time is None:
            return
        time_spec = table.columns.get(endpoint.time)
        if time_spec is None:
            raise ValueError(f"{where}: no column {endpoint.time!r} in the {endpoint.table} table")
        if time_spec.role is not ColumnRole.OUTCOME or time_spec.type not in (
            ColumnType.NUMBER,
            ColumnType.INTEGER,
        ):
            raise ValueError(
                f"{where}: time column {endpoint.time!r} must have role outcome, type number"
            )
        if time_spec.unit not in TIME_UNITS_IN_MONTHS:
            units = ", ".join(TIME_UNITS_IN_MONTHS)
            raise ValueError(
                f"{where}: time column {endpoint.time!r} needs a unit, one of: {units}"
            )


def _is_name(text: str) -> bool:
    return re.fullmatch(_NAME_PATTERN, text) is not None
