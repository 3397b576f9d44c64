"""Loading a bundle: verified (``manifest.py``), trusted (``signing.py``), its files parsed
from the bytes whose hashes were checked, its network rebuilt only by its kind's class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from hepablate.bundle._errors import BundleError
from hepablate.bundle._skops import load_skops
from hepablate.bundle.contents import (
    BundleMetrics,
    ModelDescription,
    SchemaFile,
    ThresholdsFile,
    json_file,
    validated,
)
from hepablate.bundle.manifest import check_files, check_versions, read_contents
from hepablate.bundle.signing import Trust, TrustStore, check_trust
from hepablate.models.registry import model_kind, network_classes
from hepablate.schemas.manifest import Manifest

__all__ = ["Bundle", "load_bundle"]


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    manifest: Manifest
    extraction: dict[str, Any] | None
    schema: dict[str, Any]
    metrics: BundleMetrics
    thresholds: dict[str, Any]
    pipeline: Pipeline
    trust: Trust  # how it was accepted: a trusted key's signature, or its pinned id

    @property
    def id(self) -> str:
        """SHA-256 of the manifest: names this exact bundle in predictions and audit logs."""
        return self.trust.bundle_id

    @property
    def survival(self) -> bool:
        return self.manifest.survival

    @property
    def created(self) -> str | None:
        """When it was signed (the manifest holds no time, so that the same models give the
        same id); None for a bundle accepted by its pinned id without a signature."""
        return self.trust.signed_at

    def rows(self, table: pd.DataFrame) -> pd.DataFrame:
        """The FeatureTable's rows as the model saw them: one per patient (its largest tumour,
        plus ``clin.n_tumours``) for a patient-level endpoint, one per tumour otherwise."""
        from hepablate.features.table import one_row_per_patient

        if self.manifest.endpoint.table == "patients":
            return one_row_per_patient(table)
        return table

    def inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns from a FeatureTable, typed as in training."""
        from hepablate.features.table import coerce_features

        missing = [c for c in self.schema["columns"] if c not in table.columns]
        if missing:
            raise BundleError(f"the FeatureTable lacks the model's columns {missing}")
        return coerce_features(table[self.schema["columns"]])

    def input_checks(self, inputs: pd.DataFrame, columns: list[str]) -> list[list[dict[str, Any]]]:
        """Per row of ``inputs``, what in its ``columns`` lies outside what the model was
        trained on: a missing value (the preparation imputes the training median or mode), a
        number outside the training values' 1st-99th percentiles (the model extrapolates), a
        category no training row had (encoded as none of the known ones). Bundles written
        before ranges and levels were recorded are checked for missing values only."""
        ranges = self.schema.get("ranges") or {}
        levels = self.schema.get("levels") or {}
        reference = self.schema.get("reference") or {}
        checks: list[list[dict[str, Any]]] = []
        for _, row in inputs.iterrows():
            found: list[dict[str, Any]] = []
            for column in columns:
                value = row[column]
                if pd.isna(value):
                    imputed = reference.get(column)
                    if isinstance(imputed, float):
                        imputed = f"{imputed:.4g}"
                    found.append(
                        {
                            "feature": column,
                            "value": None,
                            "check": "missing",
                            "message": f"{column} is missing; the model imputed the training "
                            f"{'median' if column in ranges else 'mode'} ({imputed})",
                        }
                    )
                elif ranges.get(column) is not None:
                    low, high = ranges[column]
                    if not low <= float(value) <= high:
                        found.append(
                            {
                                "feature": column,
                                "value": float(value),
                                "check": "out_of_range",
                                "message": f"{column} = {float(value):g} is outside the training "
                                f"range {low:g} to {high:g} (1st-99th percentile): the model "
                                "extrapolates",
                            }
                        )
                elif column in levels and str(value) not in levels[column]:
                    found.append(
                        {
                            "feature": column,
                            "value": str(value),
                            "check": "unseen_category",
                            "message": f"{column} = {value!r} was not seen in training "
                            f"({', '.join(levels[column])}): encoded as none of them",
                        }
                    )
            checks.append(found)
        return checks

    def set_crops(self, crops: dict[str, Any] | None) -> None:
        """Point an image model at a FeatureTable's crops (the new patient's)."""
        estimator = self.pipeline[-1]
        if "crops" in estimator.get_params():
            estimator.set_params(crops=crops)

    def risk(self, inputs: pd.DataFrame) -> np.ndarray:
        """Probability of the endpoint (binary) or the risk score (time-to-event)."""
        if self.survival:
            return np.asarray(self.pipeline.predict(inputs), dtype=float)
        return np.asarray(self.pipeline.predict_proba(inputs)[:, 1], dtype=float)

    def risk_group(self, value: float) -> str:
        groups = self.thresholds["risk_groups"]
        low, high = groups["cuts"]
        labels = groups["labels"]
        return str(labels[0] if value < low else labels[1] if value < high else labels[2])


def _extraction(path: Path, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    from hepablate.features.extract import ExtractionConfig

    if not isinstance(value, dict):
        raise BundleError(f"{path}: not a JSON object or null")
    validated(path, value, ExtractionConfig)
    return value


def _network(path: Path, files: dict[str, bytes], kind: str) -> Any:
    """The network of ``model.json`` and ``model.safetensors``, rebuilt only by the class the
    registry gives the manifest's kind."""
    from safetensors.numpy import load

    description = validated(
        path / "model.json", json_file(path / "model.json", files["model.json"]), ModelDescription
    )
    model_class = network_classes().get(description.class_)
    if model_class is None:
        raise BundleError(f"{path / 'model.json'}: unknown model class {description.class_!r}")
    expected = model_kind(kind).class_path
    if description.class_ != expected:
        raise BundleError(
            f"{path / 'model.json'}: a {description.class_} network, but the manifest's kind "
            f"{kind!r} is a {expected}"
        )
    try:
        tensors = load(files["model.safetensors"])
    # safetensors raises its own SafetensorError (and others) for a bad header or data.
    except Exception as exc:
        raise BundleError(
            f"{path / 'model.safetensors'}: not a readable safetensors file ({exc})"
        ) from None
    try:
        return model_class.from_state(tensors, description.state)
    # The state comes from the file: a missing key, a wrong shape (torch's RuntimeError) or a
    # parameter the class does not take is a bad file.
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise BundleError(
            f"{path / 'model.json'}: the network cannot be rebuilt from it and "
            f"model.safetensors ({type(exc).__name__}: {exc})"
        ) from None


def load_bundle(
    path: Path | str, *, trust: TrustStore | None = None, bundle_id: str | None = None
) -> Bundle:
    """Verify and load a bundle; a ``BundleError`` names what is wrong.

    ``trust``: the keys and pinned ids to accept (default: the user's, ``TrustStore.user()``,
    their own key included); ``bundle_id``: accept this exact bundle (SHA-256 of its manifest)
    whoever signed it, and refuse any other. ``Bundle.trust`` says how it was accepted.
    """
    path = Path(path)
    contents = read_contents(path)
    store = TrustStore.user() if trust is None else trust
    accepted = check_trust(path, contents.manifest_bytes, contents.signature, store, bundle_id)
    files = check_files(contents, authentic=True)
    manifest = contents.manifest
    check_versions(manifest.versions, path)

    def read(name: str, shape: type[BaseModel]) -> Any:
        """The file's JSON as it is, once it has the shape the loader and prediction read."""
        value = json_file(path / name, files[name])
        validated(path / name, value, shape)
        return value

    schema = read("schema.json", SchemaFile)
    metrics = validated(
        path / "metrics.json",
        json_file(path / "metrics.json", files["metrics.json"]),
        BundleMetrics,
    )
    thresholds = read("thresholds.json", ThresholdsFile)
    extraction = _extraction(
        path / "extraction.json", json_file(path / "extraction.json", files["extraction.json"])
    )
    if not isinstance(json_file(path / "study.json", files["study.json"]), dict):
        raise BundleError(f"{path / 'study.json'}: not a JSON object")
    preparation = load_skops(files["preparation.skops"], str(path / "preparation.skops"))
    if not isinstance(preparation, Pipeline):
        raise BundleError(
            f"{path / 'preparation.skops'}: holds a {type(preparation).__name__}, not a Pipeline"
        )
    if "model.skops" in files:
        estimator = load_skops(files["model.skops"], str(path / "model.skops"))
    else:
        estimator = _network(path, files, manifest.kind)
    pipeline = Pipeline([*preparation.steps, ("model", estimator)])
    return Bundle(
        path=path,
        manifest=manifest,
        extraction=extraction,
        schema=schema,
        metrics=metrics,
        thresholds=thresholds,
        pipeline=pipeline,
        trust=accepted,
    )
