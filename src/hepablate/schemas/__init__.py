"""Typed, versioned outputs: pydantic models of ``metrics.json`` (the study summary),
``prediction.json``, a bundle's ``manifest.json`` and ``segment evaluate``'s
``evaluation.json``, and their JSON Schemas.

The bottom layer: it imports nothing of hepablate but itself, so that the study (which writes
``metrics.json``), the bundle, the report, the CLI and a service all read the same types.
Writers validate what they write through these models; readers load through ``read_metrics``
/ ``read_prediction``, whose ``OutputFileError`` names the file and the field. A file of a
newer ``schema_version`` than this hepablate reads is refused; one without it (written before
the outputs were versioned) is read as version 1. ``python -m hepablate.schemas --out
docs/schemas`` writes the JSON Schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from hepablate.schemas._base import OutputFileError, describe, dump_json
from hepablate.schemas.manifest import Manifest
from hepablate.schemas.metrics import (
    METRICS_SCHEMA_VERSION,
    STUDY_SUMMARY,
    BinaryStudySummary,
    StudySummary,
    SurvivalStudySummary,
    parse_metrics,
    read_metrics,
)
from hepablate.schemas.prediction import (
    PREDICTION_SCHEMA_VERSION,
    Prediction,
    parse_prediction,
    read_prediction,
)
from hepablate.schemas.segmentation import (
    SEGMENT_EVALUATION,
    SEGMENT_EVALUATION_SCHEMA_VERSION,
    SegmentEvaluation,
    read_segment_evaluation,
)

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "PREDICTION_SCHEMA_VERSION",
    "SCHEMA_FILES",
    "SEGMENT_EVALUATION_SCHEMA_VERSION",
    "BinaryStudySummary",
    "Manifest",
    "OutputFileError",
    "Prediction",
    "SegmentEvaluation",
    "StudySummary",
    "SurvivalStudySummary",
    "describe",
    "dump_json",
    "json_schemas",
    "parse_metrics",
    "parse_prediction",
    "read_metrics",
    "read_prediction",
    "read_segment_evaluation",
    "write_json_schemas",
]

SCHEMA_FILES: dict[str, TypeAdapter[Any]] = {
    "metrics.schema.json": STUDY_SUMMARY,
    "prediction.schema.json": TypeAdapter(Prediction),
    "manifest.schema.json": TypeAdapter(Manifest),
    "segment-evaluation.schema.json": SEGMENT_EVALUATION,
}
_TITLES = {
    "metrics.schema.json": "hepablate metrics.json (the study summary)",
    "prediction.schema.json": "hepablate prediction.json",
    "manifest.schema.json": "hepablate bundle manifest.json",
    "segment-evaluation.schema.json": "hepablate segment evaluate's evaluation.json",
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12) of each output, as the models validate it."""
    out = {}
    for name, adapter in SCHEMA_FILES.items():
        schema = adapter.json_schema()
        out[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": _TITLES[name],
            **{k: v for k, v in schema.items() if k != "title"},
        }
    return out


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as its committed file holds it (stable key order, one trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_json_schemas(folder: Path) -> list[Path]:
    """Write every output's JSON Schema into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(schema_text(schema), encoding="utf-8")
        paths.append(path)
    return paths
