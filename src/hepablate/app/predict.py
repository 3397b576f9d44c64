"""The job ``predict``: one new patient through a verified model bundle."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hepablate.app.extract import load_segmenter_for, segment_patients
from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.app.validate import load_valid_cohort
from hepablate.bundle import Bundle, BundleError, Trust, load_bundle
from hepablate.bundle import predict as bundle_predict
from hepablate.features.config import ExtractionConfig, SegmenterRef
from hepablate.features.extract import ExtractionConfigError
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
    segmenter: Path | None = None,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> PredictResult:
    """Predict the bundle's endpoint for the patient (a one-patient cohort folder) and write it
    to ``out``: per tumour the probability (or risk score and survival curve), its spread, the
    risk group, the contributions, the what-if curve and the input checks.

    With ``segmenter`` (a segmentation bundle), the masks the patient lacks are drawn by it
    (``masks: manual_else_auto``; a patient folder with only ``pre_ct`` and ``post_ct`` is
    segmented whole), and each row of the prediction says which masks were automatic. A bundle
    trained on automatic masks draws them with its own segmenter (its extraction's
    ``segmenter``, the same bundle by id), or with ``segmenter`` if that is the same bundle.

    In this order: ``out`` is checked (``OutputError``: replaced only if a prediction, or with
    ``overwrite``); the bundle is verified (``BundleRefusedError``: signed by a key the user
    trusts or pinned, or exactly ``bundle_id``); the segmenter is verified
    (``ExtractionConfigError``); the patient is validated (``CohortValidationError``),
    segmented and extracted with the bundle's settings; a patient the model cannot predict for
    is a ``BundleError`` (a ``PredictionRefusedError`` with the reason).
    """
    check_output_file(out, overwrite=overwrite, recognise=is_prediction, what="a prediction")
    progress.step("verifying the bundle")
    try:
        bundle = load_bundle(bundle_dir, bundle_id=bundle_id)
    except BundleError as exc:
        raise BundleRefusedError(str(exc)) from exc
    accepted = BundleAccepted(bundle.id, bundle.trust)
    progress.part(accepted)
    config = _mask_settings(bundle, segmenter)
    loaded = load_segmenter_for(config)
    cohort = load_valid_cohort(patient, progress)
    with tempfile.TemporaryDirectory(prefix="hepablate-masks-") as folder:
        auto_masks = None
        if loaded is not None:
            auto_masks = segment_patients(cohort, config, loaded, Path(folder), progress)
        progress.step("predicting")
        # through the module, at call time: a test stands in for the extraction of a patient
        prediction = bundle_predict.predict_cohort(
            bundle, cohort, allow_imputed_margin=allow_imputed_margin, auto_masks=auto_masks
        )
    with staged_file(out) as partial:
        partial.write_text(dump_json(prediction), encoding="utf-8")
    return PredictResult(out, accepted, prediction)


def _mask_settings(bundle: Bundle, segmenter: Path | None) -> ExtractionConfig:
    """The bundle's extraction settings with where the patient's masks come from: its own
    (manual), the segmenter's for the masks it lacks (``segmenter`` given to a bundle trained
    on manual masks), or the bundle's segmenter (a bundle trained on automatic masks; its id
    pinned, so another segmenter is refused)."""
    config = ExtractionConfig.model_validate(bundle.extraction or {})
    if config.masks == "manual":
        if segmenter is None:
            return config
        ref = SegmenterRef(bundle=segmenter)
        return config.model_copy(update={"masks": "manual_else_auto", "segmenter": ref})
    assert config.segmenter is not None  # the config's own rule
    if config.segmenter.id is None:
        raise ExtractionConfigError(
            f"the bundle's extraction used masks: {config.masks} without recording its "
            "segmenter's id: which segmenter drew its training masks is unknown"
        )
    if segmenter is not None:
        return config.model_copy(
            update={"segmenter": SegmenterRef(bundle=segmenter, id=config.segmenter.id)}
        )
    return config


def is_prediction(path: Path) -> bool:
    """Whether ``path`` holds a prediction hepablate wrote (JSON with its keys)."""
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"bundle", "predictions", "validation"} <= set(written)
