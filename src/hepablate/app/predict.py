"""The job ``predict``: one new patient through a verified model bundle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.app.validate import load_valid_cohort
from hepablate.bundle import BundleError, Trust, load_bundle
from hepablate.bundle import predict as bundle_predict
from hepablate.outputs import check_output_file, staged_file
from hepablate.schemas import Prediction, dump_json

__all__ = ["BundleAccepted", "BundleRefusedError", "PredictResult", "is_prediction", "predict"]


class BundleRefusedError(BundleError):
    """The bundle itself was refused (a file, its signature or trust), before any patient was
    read; other ``BundleError``\\ s of ``predict`` concern the patient."""


@dataclass(frozen=True)
class BundleAccepted:
    """The bundle a prediction uses, verified, and why it is trusted (a part of the predict
    job's progress: known before the patient is read)."""

    id: str
    trust: Trust


@dataclass(frozen=True)
class PredictResult:
    """A written prediction (``prediction.json``) and the bundle that made it."""

    out: Path
    bundle: BundleAccepted
    prediction: Prediction


def predict(
    bundle_dir: Path,
    patient: Path,
    out: Path,
    *,
    bundle_id: str | None = None,
    allow_imputed_margin: bool = False,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> PredictResult:
    """Predict the bundle's endpoint for the patient (a one-patient cohort folder) and write it
    to ``out``: per tumour the probability (or risk score and survival curve), its spread, the
    risk group, the contributions, the what-if curve and the input checks.

    In this order: ``out`` is checked (``OutputError``: replaced only if a prediction, or with
    ``overwrite``); the bundle is verified (``BundleRefusedError``: signed by a key the user
    trusts or pinned, or exactly ``bundle_id``); the patient is validated
    (``CohortValidationError``) and extracted with the bundle's settings; a patient the model
    cannot predict for is a ``BundleError`` (a ``PredictionRefusedError`` with the reason).
    """
    check_output_file(out, overwrite=overwrite, recognise=is_prediction, what="a prediction")
    progress.step("verifying the bundle")
    try:
        bundle = load_bundle(bundle_dir, bundle_id=bundle_id)
    except BundleError as exc:
        raise BundleRefusedError(str(exc)) from exc
    accepted = BundleAccepted(bundle.id, bundle.trust)
    progress.part(accepted)
    cohort = load_valid_cohort(patient, progress)
    progress.step("predicting")
    # through the module, at call time: a test stands in for the extraction of a patient
    prediction = bundle_predict.predict_cohort(
        bundle, cohort, allow_imputed_margin=allow_imputed_margin
    )
    with staged_file(out) as partial:
        partial.write_text(dump_json(prediction), encoding="utf-8")
    return PredictResult(out, accepted, prediction)


def is_prediction(path: Path) -> bool:
    """Whether ``path`` holds a prediction hepablate wrote (JSON with its keys)."""
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"bundle", "predictions", "validation"} <= set(written)
