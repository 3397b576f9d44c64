"""Writing a bundle (``save_bundle``) and signing one (``sign_bundle``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from hepablate.bundle._errors import BundleError
from hepablate.bundle._files import write_new
from hepablate.bundle._skops import dump_skops
from hepablate.bundle.contents import json_bytes, plain
from hepablate.bundle.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    check_files,
    read_contents,
    sha256,
    versions,
)
from hepablate.bundle.signing import SIGNATURE, SigningKey, make_signature, user_key
from hepablate.models.registry import model_kind
from hepablate.schemas.manifest import Manifest
from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary
from hepablate.validation.metrics import risk_tertiles

__all__ = [
    "CURVE_MIN_AT_RISK",
    "RANGE_QUANTILES",
    "bundle_model_name",
    "save_bundle",
    "sign_bundle",
]


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
    cuts = risk_tertiles(mean_prediction(result.models[name]))
    scored = summary.models[name]
    ranges, levels = _training_domain(inputs)
    files: dict[str, bytes] = {
        "extraction.json": json_bytes(extraction),
        "study.json": json_bytes(result.config.model_dump(mode="json")),
        "schema.json": json_bytes(
            plain(
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
        "metrics.json": json_bytes(
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
        "thresholds.json": json_bytes(
            plain(
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
        files["model.json"] = json_bytes({"class": model_class, "state": plain(state)})
    else:
        files["model.skops"] = dump_skops(estimator)
    manifest = json_bytes(
        Manifest.model_validate(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": name,
                "kind": spec.kind,
                "clinical_only": spec.clinical_only,
                "endpoint": plain(data.endpoint),
                "survival": data.survival,
                "versions": versions(),
                "files": {n: sha256(files[n]) for n in sorted(files)},
            }
        ).model_dump(mode="json")
    )
    for file_name, content in files.items():
        write_new(out / file_name, content)
    write_new(out / MANIFEST, manifest)
    write_new(out / MANIFEST_DIGEST, (sha256(manifest) + "\n").encode("ascii"))
    if key is not None:
        write_new(out / SIGNATURE, make_signature(sha256(manifest), key))
    return out


def sign_bundle(path: Path | str, key: SigningKey | None = None, signer: str | None = None) -> str:
    """Sign a bundle (replacing its signature) with ``key`` (default: the user's), after
    checking that its files are whole; returns its id. Signing vouches for the bundle: sign
    only what you made or reviewed."""
    path = Path(path)
    contents = read_contents(path)
    check_files(contents, authentic=False)
    key = user_key() if key is None else key
    if (path / SIGNATURE).exists():
        (path / SIGNATURE).unlink()
    write_new(path / SIGNATURE, make_signature(contents.id, key, signer))
    return contents.id
