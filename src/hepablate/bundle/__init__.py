"""Model bundles: a validated model as files that load without executing code, signed by whoever
made it.

``hepablate train`` writes ``RUN_DIR/bundle/``:

- ``manifest.json``: format and version, the model's name and kind, the endpoint, the versions
  of the packages it was fitted with, and the SHA-256 of every other file; ``manifest.sha256``
  the SHA-256 of the manifest itself (the bundle's id); ``signature.json``: the Ed25519
  signature of that id by the user's key, with the signer and the time
  (``hepablate.bundle.signing``; not in the manifest, so signing does not change the id);
- ``extraction.json``: the ExtractionConfig the FeatureTable was made with (null for a tabular
  cohort), so a new patient is measured exactly as the training rows were;
- ``study.json``: the study config as run; ``schema.json``: the FeatureTable columns the model
  reads, their types, the training medians/modes (the reference patient of the
  explanations and what-if curves: summary values, not a patient's row), each numeric
  column's 1st-99th percentile range and each categorical column's levels (what a new
  patient's inputs are checked against);
- ``metrics.json``: the model's cross-validated metrics with CIs, the comparison and the
  permutation check; ``thresholds.json``: the decision threshold, the risk-group cut points
  (tertiles of the out-of-fold predictions) and, for a time-to-event model, the months of the
  predicted survival curves (``_curve_months``: monthly while enough training rows are followed);
- ``preparation.skops`` (the fitted preparation and selection steps, skops) and the model:
  ``model.skops`` for a scikit-learn or scikit-survival estimator, or ``model.safetensors`` +
  ``model.json`` for a deep network (its ``to_state``).

Nothing in the manifest depends on when or where the bundle was written: the same fitted
models give the same bytes (``_skops.dump_skops``), hence the same id.

``load_bundle`` accepts only regular files directly in the folder (no links, folders, FIFOs or
devices), exactly the files a bundle has, each matching its hash; a manifest of the expected
shape, this format version and scikit-learn minor version; a signature by a trusted key or a
pinned id (``signing.check_trust``); JSON files of the expected shape; skops files naming only
the types hepablate writes (``trusted_types.TRUSTED_TYPES``); a network rebuilt from its
weights by an allow-listed class. Each file is read once and parsed from the bytes whose hash
was checked. Nothing is unpickled. Every refusal is a ``BundleError`` that starts with the
file at fault.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.pipeline import Pipeline

from hepablate.bundle._errors import BundleError
from hepablate.bundle._files import list_entries, read_file, write_new
from hepablate.bundle._skops import dump_skops, load_skops
from hepablate.bundle.signing import (
    SIGNATURE,
    SigningKey,
    Trust,
    TrustStore,
    check_trust,
    make_signature,
    user_key,
)
from hepablate.models.registry import model_kind, network_classes
from hepablate.schemas import describe
from hepablate.schemas.manifest import MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, Manifest
from hepablate.schemas.metrics import (
    BinaryStudySummary,
    CohortSummary,
    ModelMetrics,
    SurvivalStudySummary,
)

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "BundleMetrics",
    "Manifest",
    "Trust",
    "TrustStore",
    "bundle_id_of",
    "bundle_model_name",
    "load_bundle",
    "save_bundle",
    "sign_bundle",
]

FORMAT = MANIFEST_FORMAT
# 2: no creation time in the manifest (it is the signature's), signature.json, exact file set.
FORMAT_VERSION = MANIFEST_FORMAT_VERSION
MANIFEST = "manifest.json"
# The SHA-256 of manifest.json's bytes (the bundle's id), for people and scripts to read.
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
_COMMON = frozenset(
    {
        "extraction.json",
        "study.json",
        "schema.json",
        "metrics.json",
        "thresholds.json",
        "preparation.skops",
    }
)
# The two shapes of a bundle: a scikit-learn model, or a network's weights and description.
FILE_SETS = (_COMMON | {"model.skops"}, _COMMON | {"model.safetensors", "model.json"})
_SMALL = 1 << 20  # the manifest, its digest and the signature are a few kilobytes
_JSON_LIMIT = 64 << 20


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode("utf-8")


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


def bundle_model_name(
    summary: BinaryStudySummary | SurvivalStudySummary, wanted: str | None
) -> str:
    """The study's ``bundle_model``, or the best-ranked model of the comparison."""
    ranking = summary.comparison.ranking
    if wanted is None:
        return ranking[0]
    if wanted not in summary.models:
        raise BundleError(f"bundle_model {wanted!r} is not a model of the study ({ranking})")
    return wanted


class _Open(BaseModel):
    # Bundle files keep what they hold; only what the loader and prediction read is checked.
    model_config = ConfigDict(extra="allow", frozen=True)


class _Schema(_Open):
    columns: list[str]
    types: dict[str, Literal["number", "category"]]
    reference: dict[str, float | str | None]
    selected: list[str]
    rows: Literal["tumour", "patient"]
    ranges: dict[str, tuple[float, float] | None] = Field(default_factory=dict)
    levels: dict[str, list[str]] = Field(default_factory=dict)


class _RiskGroups(_Open):
    labels: tuple[str, str, str]
    cuts: tuple[float, float]


class _Thresholds(_Open):
    threshold: float | None
    risk_groups: _RiskGroups


class _MetricsValidation(_Open):
    scheme: Literal["kfold", "by_centre"]


class BundleMetrics(_Open):
    """``metrics.json`` of a bundle: the model's part of the study's (``fold_mean``, the
    comparison and the permutation check too, kept as written)."""

    model: str
    metrics: ModelMetrics
    cohort: CohortSummary
    validation: _MetricsValidation


class _ModelDescription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    class_: str = Field(alias="class")
    state: dict[str, Any]


_Shape = TypeVar("_Shape", bound=BaseModel)


def _first_error(exc: ValidationError) -> str:
    return describe(exc)[0]


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


# Predicted survival curves run as far as the training data support them: to the last time at
# which at least this many training rows were still followed (a Kaplan-Meier tail over fewer
# rows, and a model's baseline hazard there, rest on a handful of patients).
CURVE_MIN_AT_RISK = 10


def _curve_months(time: np.ndarray) -> dict[str, Any]:
    """The months of the predicted survival curves, and why they stop where they do."""
    ordered = np.sort(np.asarray(time, dtype=float))[::-1]
    last = float(ordered[min(CURVE_MIN_AT_RISK, len(ordered)) - 1])
    months = np.arange(1.0, np.floor(last) + 1.0) if last >= 1 else np.array([last])
    return {
        "months": months.tolist(),
        "until_months": last,
        "follow_up_months": float(ordered[0]),
        "source": f"every month up to {last:.1f} months, the last time at which at least "
        f"{min(CURVE_MIN_AT_RISK, len(ordered))} training rows were still followed (longest "
        f"follow-up {float(ordered[0]):.1f} months)",
    }


def _new_folder(out: Path) -> None:
    """Create ``out``, or accept it empty: a bundle never replaces or removes a file."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"{out}: not a folder; a bundle is written into a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise BundleError(
            f"{out}: not empty; a bundle is written into a new or empty folder (nothing is removed)"
        )
    out.mkdir(parents=True, exist_ok=True)


def save_bundle(
    result: Any,
    summary: BinaryStudySummary | SurvivalStudySummary,
    out: Path,
    *,
    extraction: dict[str, Any] | None,
    model: str | None = None,
    sign: SigningKey | bool = True,
) -> Path:
    """Write the bundle of one refitted model of ``result`` (a StudyResult with ``final``) into
    ``out``, a folder that does not exist yet or is empty (anything else is a BundleError), and
    sign it: ``sign=True`` with the user's key (made on first use), a ``SigningKey`` with that
    one, ``False`` not at all (the bundle then loads only by its pinned id)."""
    from hepablate.study.results import mean_prediction

    name = bundle_model_name(summary, model if model is not None else result.config.bundle_model)
    if name not in result.final:
        raise BundleError(f"model {name!r} was not refitted on all rows (run_study(refit=True))")
    pipeline: Pipeline = result.final[name]
    data = result.data
    spec = next(s for s in result.config.models_for(data.survival) if s.name == name)
    key = user_key() if sign is True else sign if isinstance(sign, SigningKey) else None
    out = Path(out)
    _new_folder(out)
    columns = list(data.X[data.clinical].columns) if spec.clinical_only else list(data.X.columns)
    inputs = data.X[columns]
    oof = mean_prediction(result.models[name])
    oof = oof[~np.isnan(oof)]
    cuts = [float(np.quantile(oof, 1 / 3)), float(np.quantile(oof, 2 / 3))]
    scored = summary.models[name]
    ranges, levels = _training_domain(inputs)
    files: dict[str, bytes] = {
        "extraction.json": _json_bytes(extraction),
        "study.json": _json_bytes(result.config.model_dump(mode="json")),
        "schema.json": _json_bytes(
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
            )
        ),
        "metrics.json": _json_bytes(
            {
                "model": name,
                "metrics": scored.metrics.model_dump(mode="json"),
                "fold_mean": None
                if scored.fold_mean is None
                else scored.fold_mean.model_dump(mode="json"),
                "comparison": summary.comparison.model_dump(mode="json"),
                "permutation": None
                if summary.permutation is None
                else summary.permutation.model_dump(mode="json"),
                "cohort": summary.cohort.model_dump(mode="json"),
                "validation": summary.validation.model_dump(mode="json"),
            }
        ),
        "thresholds.json": _json_bytes(
            _plain(
                {
                    "threshold": summary.validation.threshold,
                    "threshold_source": summary.validation.threshold_source,
                    "risk_groups": {
                        "labels": ["low", "intermediate", "high"],
                        "cuts": cuts,
                        "source": "tertiles of the cross-validated (out-of-fold) predictions"
                        + (" of the risk score" if data.survival else " of the probability"),
                    },
                    "evaluation_times_months": summary.validation.evaluation_times_months,
                    "survival_curve": _curve_months(data.y["time"]) if data.survival else None,
                }
            )
        ),
        "preparation.skops": dump_skops(pipeline[:-1]),
    }
    estimator = pipeline[-1]
    if hasattr(estimator, "to_state"):
        from safetensors.numpy import save

        tensors, state = estimator.to_state()
        files["model.safetensors"] = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
        # The registry's name of the class (its public import path), whatever module
        # defines it: old bundles keep loading when the code moves.
        model_class = model_kind(spec.kind).class_path
        files["model.json"] = _json_bytes({"class": model_class, "state": _plain(state)})
    else:
        files["model.skops"] = dump_skops(estimator)
    manifest = _json_bytes(
        Manifest.model_validate(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": name,
                "kind": spec.kind,
                "clinical_only": spec.clinical_only,
                "endpoint": _plain(data.endpoint),
                "survival": data.survival,
                "versions": _versions(),
                "files": {n: _sha256(files[n]) for n in sorted(files)},
            }
        ).model_dump(mode="json")
    )
    for file_name, content in files.items():
        write_new(out / file_name, content)
    write_new(out / MANIFEST, manifest)
    write_new(out / MANIFEST_DIGEST, (_sha256(manifest) + "\n").encode("ascii"))
    if key is not None:
        write_new(out / SIGNATURE, make_signature(_sha256(manifest), key))
    return out


def sign_bundle(path: Path | str, key: SigningKey | None = None, signer: str | None = None) -> str:
    """Sign a bundle (replacing its signature) with ``key`` (default: the user's), after
    checking that its files are whole; returns its id. Signing vouches for the bundle: sign
    only what you made or reviewed."""
    path = Path(path)
    contents = _read(path)
    _check_files(contents, authentic=False)
    key = user_key() if key is None else key
    if (path / SIGNATURE).exists():
        (path / SIGNATURE).unlink()
    write_new(path / SIGNATURE, make_signature(contents.id, key, signer))
    return contents.id


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


@dataclass(frozen=True)
class _Contents:
    """A bundle folder's manifest and signature, read and parsed but not yet trusted."""

    path: Path
    names: frozenset[str]
    manifest_bytes: bytes
    manifest: Manifest
    signature: bytes | None

    @property
    def id(self) -> str:
        return _sha256(self.manifest_bytes)


def _parse_manifest(path: Path, data: bytes) -> Manifest:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: not a JSON object; not a hepablate bundle manifest")
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: format {raw.get('format')!r} version {raw.get('format_version')!r}; this "
            f"hepablate reads {FORMAT} {FORMAT_VERSION}"
            + (" (retrain to write it)" if raw.get("format") == FORMAT else "")
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{path}: {_first_error(exc)}") from None
    if frozenset(manifest.files) not in FILE_SETS:
        expected = " or ".join(", ".join(sorted(s)) for s in FILE_SETS)
        raise BundleError(
            f"{path}: lists {', '.join(sorted(manifest.files))}; a bundle lists {expected}"
        )
    return manifest


def _read(path: Path) -> _Contents:
    names = frozenset(list_entries(path))
    if MANIFEST not in names:
        raise BundleError(f"{path}: no {MANIFEST}; not a hepablate bundle")
    manifest_bytes = read_file(path / MANIFEST, _SMALL)
    manifest = _parse_manifest(path / MANIFEST, manifest_bytes)
    signature = read_file(path / SIGNATURE, _SMALL) if SIGNATURE in names else None
    return _Contents(path, names, manifest_bytes, manifest, signature)


def _check_files(contents: _Contents, *, authentic: bool) -> dict[str, bytes]:
    """Every listed file, read once and matching its hash; nothing else in the folder.
    ``authentic``: the manifest is vouched for (signature or pin), so a digest that differs
    from it is the digest file's fault."""
    path, names = contents.path, contents.names
    digest_file = path / MANIFEST_DIGEST
    if MANIFEST_DIGEST not in names:
        raise BundleError(f"{digest_file}: missing")
    digest = read_file(digest_file, _SMALL).decode("ascii", errors="replace").strip()
    if digest != contents.id:
        raise BundleError(
            f"{digest_file}: changed since the bundle was written (manifest.json's SHA-256 is "
            f"{contents.id})"
            if authentic
            else f"{digest_file}: does not match manifest.json (one of them changed since the "
            "bundle was written)"
        )
    listed = contents.manifest.files
    extra = sorted(names - set(listed) - {MANIFEST, MANIFEST_DIGEST, SIGNATURE})
    if extra:
        raise BundleError(f"{path}: files not in the manifest: {', '.join(extra)}")
    missing = sorted(set(listed) - names)
    if missing:
        raise BundleError(f"{path}: files missing: {', '.join(missing)}")
    files: dict[str, bytes] = {}
    for name, expected in listed.items():
        data = read_file(path / name)
        if _sha256(data) != expected:
            raise BundleError(f"{path / name}: changed since the bundle was written (SHA-256)")
        files[name] = data
    return files


def _json_file(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None


def _validated(path: Path, value: Any, shape: type[_Shape]) -> _Shape:
    try:
        return shape.model_validate(value)
    except ValidationError as exc:
        raise BundleError(f"{path}: {_first_error(exc)}") from None


def _extraction(path: Path, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    from hepablate.features.extract import ExtractionConfig

    if not isinstance(value, dict):
        raise BundleError(f"{path}: not a JSON object or null")
    _validated(path, value, ExtractionConfig)
    return value


def _network(path: Path, files: dict[str, bytes]) -> Any:
    from safetensors.numpy import load

    description = _validated(
        path / "model.json", _json_file(path / "model.json", files["model.json"]), _ModelDescription
    )
    model_class = network_classes().get(description.class_)
    if model_class is None:
        raise BundleError(f"{path / 'model.json'}: unknown model class {description.class_!r}")
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


def bundle_id_of(path: Path | str) -> str:
    """The id of the bundle in ``path`` (the SHA-256 of its manifest.json), not verified: what
    to compare with the id its author gave (then pin it)."""
    path = Path(path)
    return _sha256(read_file(path / MANIFEST, _SMALL))


def load_bundle(
    path: Path | str, *, trust: TrustStore | None = None, bundle_id: str | None = None
) -> Bundle:
    """Verify and load a bundle; a ``BundleError`` names what is wrong.

    ``trust``: the keys and pinned ids to accept (default: the user's, ``TrustStore.user()``,
    their own key included); ``bundle_id``: accept this exact bundle (SHA-256 of its manifest)
    whoever signed it, and refuse any other. ``Bundle.trust`` says how it was accepted.
    """
    path = Path(path)
    contents = _read(path)
    store = TrustStore.user() if trust is None else trust
    accepted = check_trust(path, contents.manifest_bytes, contents.signature, store, bundle_id)
    files = _check_files(contents, authentic=True)
    manifest = contents.manifest
    _check_versions(manifest.versions, path)

    def read(name: str, shape: type[BaseModel]) -> Any:
        """The file's JSON as it is, once it has the shape the loader and prediction read."""
        value = _json_file(path / name, files[name])
        _validated(path / name, value, shape)
        return value

    schema = read("schema.json", _Schema)
    metrics = _validated(
        path / "metrics.json",
        _json_file(path / "metrics.json", files["metrics.json"]),
        BundleMetrics,
    )
    thresholds = read("thresholds.json", _Thresholds)
    extraction = _extraction(
        path / "extraction.json", _json_file(path / "extraction.json", files["extraction.json"])
    )
    if not isinstance(_json_file(path / "study.json", files["study.json"]), dict):
        raise BundleError(f"{path / 'study.json'}: not a JSON object")
    preparation = load_skops(files["preparation.skops"], str(path / "preparation.skops"))
    if not isinstance(preparation, Pipeline):
        raise BundleError(
            f"{path / 'preparation.skops'}: holds a {type(preparation).__name__}, not a Pipeline"
        )
    if "model.skops" in files:
        estimator = load_skops(files["model.skops"], str(path / "model.skops"))
    else:
        estimator = _network(path, files)
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


def _minor(text: str | None) -> tuple[str, ...]:
    return tuple((text or "").split(".")[:2])


def _check_versions(saved: dict[str, str | None], path: Path) -> None:
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
