"""The JSON files of a bundle: how they are written (strict JSON, no NaN) and the shapes the
loader and prediction check them against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hepablate.bundle._errors import BundleError
from hepablate.schemas import describe
from hepablate.schemas.metrics import CohortSummary, ModelMetrics

__all__ = [
    "BundleMetrics",
    "ModelDescription",
    "SchemaFile",
    "ThresholdsFile",
    "first_error",
    "json_bytes",
    "json_file",
    "plain",
    "validated",
]


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode("utf-8")


def plain(value: Any) -> Any:
    """NaN/inf to None and numpy scalars to Python, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class OpenFile(BaseModel):
    # Bundle files keep what they hold; only what the loader and prediction read is checked.
    model_config = ConfigDict(extra="allow", frozen=True)


class SchemaFile(OpenFile):
    columns: list[str]
    types: dict[str, Literal["number", "category"]]
    reference: dict[str, float | str | None]
    selected: list[str]
    rows: Literal["tumour", "patient"]
    ranges: dict[str, tuple[float, float] | None] = Field(default_factory=dict)
    levels: dict[str, list[str]] = Field(default_factory=dict)


class RiskGroups(OpenFile):
    labels: tuple[str, str, str]
    cuts: tuple[float, float]


class ThresholdsFile(OpenFile):
    threshold: float | None
    risk_groups: RiskGroups


class MetricsValidation(OpenFile):
    scheme: Literal["kfold", "by_centre"]


class BundleMetrics(OpenFile):
    """``metrics.json`` of a bundle: the model's part of the study's (``fold_mean``, the
    comparison and the permutation check too, kept as written)."""

    model: str
    metrics: ModelMetrics
    cohort: CohortSummary
    validation: MetricsValidation


class ModelDescription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    class_: str = Field(alias="class")
    state: dict[str, Any]


Shape = TypeVar("Shape", bound=BaseModel)


def first_error(exc: ValidationError) -> str:
    return describe(exc)[0]


def json_file(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None


def validated(path: Path, value: Any, shape: type[Shape]) -> Shape:
    try:
        return shape.model_validate(value)
    except ValidationError as exc:
        raise BundleError(f"{path}: {first_error(exc)}") from None
