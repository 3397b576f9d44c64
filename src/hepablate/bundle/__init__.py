"""Model bundles: a validated model as files that load without executing code.

``hepablate train`` writes ``RUN_DIR/bundle/``:

- ``manifest.json``: format and version, the model's name and kind, the endpoint, the versions
  of the packages it was fitted with, and the SHA-256 of every other file; ``manifest.sha256``
  the SHA-256 of the manifest itself (the bundle's id);
- ``extraction.json``: the ExtractionConfig the FeatureTable was made with (null for a tabular
  cohort), so a new patient is measured exactly as the training rows were;
- ``study.json``: the study config as run; ``schema.json``: the FeatureTable columns the model
  reads, their types, the training medians/modes (the reference patient of the
  explanations and what-if curves: summary values, not a patient's row), each numeric
  column's 1st-99th percentile range and each categorical column's levels (what a new
  patient's inputs are checked against);
- ``metrics.json``: the model's cross-validated metrics with CIs, the comparison and the
  permutation check; ``thresholds.json``: the decision threshold and the risk-group cut points
  (tertiles of the out-of-fold predictions);
- ``preparation.skops`` (the fitted preparation and selection steps, skops) and the model:
  ``model.skops`` for a scikit-learn or scikit-survival estimator, or ``model.safetensors`` +
  ``model.json`` for a deep network (its ``to_state``).

``load_bundle`` checks every hash, refuses any extra or missing file, an unknown format version
or a scikit-learn of another minor version (its estimators' internals change between them), and
loads skops files with the explicit list of their types, each of which must come from an
allowed package; deep networks are rebuilt from weights by an allowed class. Nothing is
unpickled.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "bundle_model_name",
    "load_bundle",
    "save_bundle",
]

FORMAT = "hepablate-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The SHA-256 of manifest.json's bytes: a changed byte in the manifest is caught too.
MANIFEST_DIGEST = "manifest.sha256"
# Packages whose version decides how a bundle's objects behave.
PACKAGES = (
    "hepablate",
    "scikit-learn",
    "scikit-survival",
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "monai",
    "skops",
    "safetensors",
    "mirp",
    "SimpleITK",
)
# Modules whose types a bundle's skops files may hold.
ALLOWED_MODULES = ("sklearn.", "sksurv.", "numpy.", "scipy.", "hepablate.")
# Plain Python types skops reports as untrusted by default; they carry no code.
ALLOWED_BUILTINS = frozenset({"builtins.slice", "builtins.tuple", "builtins.frozenset"})


class BundleError(ValueError):
    """A bundle that cannot be trusted or used: tampered, incomplete or incompatible."""


def _deep_classes() -> dict[str, Any]:
    """Deep networks a bundle may rebuild from weights (name -> class); nothing else."""
    from hepablate.models.multimodal import MultimodalClassifier, MultimodalSurvival
    from hepablate.models.tabular import DeepDiscreteTime, DeepSurv, MLPClassifier

    classes = (
        MultimodalClassifier,
        MultimodalSurvival,
        MLPClassifier,
        DeepSurv,
        DeepDiscreteTime,
    )
    return {f"{c.__module__}.{c.__qualname__}": c for c in classes}


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    """NaN/inf to None and numpy scalars to Python, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def bundle_model_name(summary: dict[str, Any], wanted: str | None) -> str:
    """The study's ``bundle_model``, or the best-ranked model of the comparison."""
    ranking = summary["comparison"]["ranking"]
    if wanted is None:
        return str(ranking[0])
    if wanted not in summary["models"]:
        raise BundleError(f"bundle_model {wanted!r} is not a model of the study ({ranking})")
    return wanted


def _reference(inputs: pd.DataFrame) -> dict[str, Any]:
    """Training medians (numbers) and modes (categories): the reference patient."""
    reference: dict[str, Any] = {}
    for column in inputs.columns:
        values = inputs[column]
        if pd.api.types.is_numeric_dtype(values):
            median = values.median()
            reference[column] = None if pd.isna(median) else float(median)
        else:
            modes = values.dropna().mode()
            reference[column] = None if modes.empty else str(modes.iloc[0])
    return reference


# The share of training values outside the range a new patient's value is checked against.
RANGE_QUANTILES = (0.01, 0.99)


def _training_domain(inputs: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per numeric column its central 98% of training values (the 1st and 99th percentiles,
    not any one patient's value), per categorical column the categories seen in training."""
    ranges: dict[str, Any] = {}
    levels: dict[str, Any] = {}
    for column in inputs.columns:
        values = inputs[column].dropna()
        if pd.api.types.is_numeric_dtype(inputs[column]):
            quantiles = [float(values.quantile(q)) for q in RANGE_QUANTILES]
            ranges[column] = None if values.empty else quantiles
        else:
            levels[column] = sorted({str(v) for v in values})
    return ranges, levels


def save_bundle(
    result: Any,
    summary: dict[str, Any],
    out: Path,
    *,
    extraction: dict[str, Any] | None,
    model: str | None = None,
) -> Path:
    """Write the bundle of one refitted model of ``result`` (a StudyResult with ``final``)."""
    from hepablate.study.results import _mean_prediction

    name = bundle_model_name(summary, model if model is not None else result.config.bundle_model)
    if name not in result.final:
        raise BundleError(f"model {name!r} was not refitted on all rows (run_study(refit=True))")
    pipeline: Pipeline = result.final[name]
    data = result.data
    spec = next(s for s in result.config.models_for(data.survival) if s.name == name)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    columns = list(data.X[data.clinical].columns) if spec.clinical_only else list(data.X.columns)
    inputs = data.X[columns]
    oof = _mean_prediction(result.models[name])
    oof = oof[~np.isnan(oof)]
    cuts = [float(np.quantile(oof, 1 / 3)), float(np.quantile(oof, 2 / 3))]
    scored = summary["models"][name]
    ranges, levels = _training_domain(inputs)
    _json(out / "extraction.json", extraction)
    _json(out / "study.json", result.config.model_dump(mode="json"))
    _json(
        out / "schema.json",
        _plain(
            {
                "columns": columns,
                "types": {
                    c: ("number" if pd.api.types.is_numeric_dtype(inputs[c]) else "category")
                    for c in columns
                },
                "reference": _reference(inputs),
                "ranges": ranges,
                "ranges_source": "1st and 99th percentiles of the training values",
                "levels": levels,
                "selected": [str(c) for c in pipeline[:-1].get_feature_names_out()],
                "rows": "tumour" if isinstance(data.X.index, pd.MultiIndex) else "patient",
            }
        ),
    )
    _json(
        out / "metrics.json",
        _plain(
            {
                "model": name,
                "metrics": scored["metrics"],
                "fold_mean": scored.get("fold_mean"),
                "comparison": summary["comparison"],
                "permutation": summary.get("permutation"),
                "cohort": summary["cohort"],
                "validation": summary["validation"],
            }
        ),
    )
    _json(
        out / "thresholds.json",
        _plain(
            {
                "threshold": summary["validation"]["threshold"],
                "threshold_source": summary["validation"]["threshold_source"],
                "risk_groups": {
                    "labels": ["low", "intermediate", "high"],
                    "cuts": cuts,
                    "source": "tertiles of the cross-validated (out-of-fold) predictions"
                    + (" of the risk score" if data.survival else " of the probability"),
                },
                "evaluation_times_months": summary["validation"]["evaluation_times_months"],
            }
        ),
    )
    import skops.io as sio

    sio.dump(pipeline[:-1], out / "preparation.skops")
    estimator = pipeline[-1]
    if hasattr(estimator, "to_state"):
        from safetensors.numpy import save_file

        tensors, state = estimator.to_state()
        save_file(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()}, out / "model.safetensors"
        )
        model_class = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
        _json(out / "model.json", {"class": model_class, "state": _plain(state)})
    else:
        sio.dump(estimator, out / "model.skops")
    files = {
        p.name: _sha256(p)
        for p in sorted(out.iterdir())
        if p.name not in (MANIFEST, MANIFEST_DIGEST)
    }
    _json(
        out / MANIFEST,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": name,
            "kind": spec.kind,
            "clinical_only": spec.clinical_only,
            "endpoint": _plain(data.endpoint),
            "survival": data.survival,
            "versions": _versions(),
            "files": files,
        },
    )
    (out / MANIFEST_DIGEST).write_text(_sha256(out / MANIFEST) + "\n", encoding="utf-8")
    return out


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    types = sio.get_untrusted_types(file=path)
    refused = [t for t in types if not t.startswith(ALLOWED_MODULES) and t not in ALLOWED_BUILTINS]
    if refused:
        raise BundleError(f"{path.name}: holds types from outside the allowed packages: {refused}")
    return sio.load(path, trusted=types)


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    manifest: dict[str, Any]
    extraction: dict[str, Any] | None
    schema: dict[str, Any]
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    pipeline: Pipeline

    @property
    def id(self) -> str:
        """SHA-256 of the manifest: names this exact bundle in predictions and audit logs."""
        return (self.path / MANIFEST_DIGEST).read_text(encoding="utf-8").strip()

    @property
    def survival(self) -> bool:
        return bool(self.manifest["survival"])

    def rows(self, table: pd.DataFrame) -> pd.DataFrame:
        """The FeatureTable's rows as the model saw them: one per patient (its largest tumour,
        plus ``clin.n_tumours``) for a patient-level endpoint, one per tumour otherwise."""
        from hepablate.study.data import one_row_per_patient

        if self.manifest["endpoint"].get("table") == "patients":
            return one_row_per_patient(table)
        return table

    def inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns from a FeatureTable, typed as in training."""
        from hepablate.study.data import coerce_features

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


def load_bundle(path: Path | str) -> Bundle:
    """Verify and load a bundle; a ``BundleError`` names what is wrong."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise BundleError(f"{path}: no {MANIFEST}; not a hepablate bundle")
    digest_file = path / MANIFEST_DIGEST
    if not digest_file.is_file():
        raise BundleError(f"{path}: no {MANIFEST_DIGEST}; the manifest cannot be checked")
    if digest_file.read_text(encoding="utf-8").strip() != _sha256(manifest_file):
        raise BundleError(f"{manifest_file}: changed since the bundle was written (SHA-256)")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_file}: not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_file}: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this hepablate reads {FORMAT} {FORMAT_VERSION}"
        )
    listed: dict[str, str] = manifest.get("files") or {}
    present = {
        p.name for p in path.iterdir() if p.is_file() and p.name not in (MANIFEST, MANIFEST_DIGEST)
    }
    if present - set(listed):
        raise BundleError(f"{path}: files not in the manifest: {sorted(present - set(listed))}")
    if set(listed) - present:
        raise BundleError(f"{path}: files missing: {sorted(set(listed) - present)}")
    for name, digest in listed.items():
        if _sha256(path / name) != digest:
            raise BundleError(f"{path / name}: changed since the bundle was written (SHA-256)")
    _check_versions(manifest, path)

    def read(name: str) -> Any:
        return json.loads((path / name).read_text(encoding="utf-8"))

    preparation = _load_skops(path / "preparation.skops")
    if "model.skops" in listed:
        estimator = _load_skops(path / "model.skops")
    else:
        from safetensors.numpy import load_file

        description = read("model.json")
        model_class = _deep_classes().get(description.get("class"))
        if model_class is None:
            raise BundleError(
                f"{path / 'model.json'}: unknown model class {description.get('class')!r}"
            )
        try:
            estimator = model_class.from_state(
                load_file(path / "model.safetensors"), description["state"]
            )
        except (ValueError, KeyError) as exc:
            raise BundleError(f"{path / 'model.safetensors'}: {exc}") from exc
    pipeline = Pipeline([*preparation.steps, ("model", estimator)])
    return Bundle(
        path=path,
        manifest=manifest,
        extraction=read("extraction.json"),
        schema=read("schema.json"),
        metrics=read("metrics.json"),
        thresholds=read("thresholds.json"),
        pipeline=pipeline,
    )


def _minor(text: str | None) -> tuple[str, ...]:
    return tuple((text or "").split(".")[:2])


def _check_versions(manifest: dict[str, Any], path: Path) -> None:
    saved = manifest.get("versions") or {}
    now = _versions()
    if _minor(saved.get("scikit-learn")) != _minor(now["scikit-learn"]):
        raise BundleError(
            f"{path}: fitted with scikit-learn {saved.get('scikit-learn')}, this environment has "
            f"{now['scikit-learn']}; estimators change between minor versions: install "
            f"scikit-learn=={saved.get('scikit-learn')} or retrain"
        )
    changed = [
        f"{p} {saved.get(p)} -> {now.get(p)}"
        for p in PACKAGES
        if saved.get(p) and now.get(p) and saved.get(p) != now.get(p)
    ]
    if changed:
        warnings.warn(
            f"{path}: package versions differ from the bundle's: {', '.join(changed)}",
            stacklevel=2,
        )
