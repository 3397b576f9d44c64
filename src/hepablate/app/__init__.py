"""The jobs of hepablate as plain functions: what the command line calls, and the service will.

One module per job: :func:`validate`, :func:`simulate`, :func:`import_dicom`,
:func:`extract_cohort` (and :func:`extract_features` for a loaded cohort),
:func:`train`, :func:`predict` and :func:`demo`. Each takes paths and typed options and returns
a typed result (``TrainResult`` with the study's typed summary, the paths written and the
warnings gathered; ``PredictResult`` with the typed prediction; ...). Progress goes to a
:class:`Progress` (a step's label, counts done of a total, parts of the result known early),
never to the terminal, so that a command line and a web page show the same bar; the default
reports nowhere. Errors are the packages' typed exceptions (``OutputError``,
``CohortValidationError`` with its report, ``StudyConfigError``, ``ExtractionConfigError``,
``BundleError``, ``DicomImportError``, ``SchedulerError``), raised before any long work where
they can be; the CLI maps them to exit code 2, the service to HTTP errors.
"""

from __future__ import annotations

from hepablate.app.demo import DEMO_OUTPUTS, DemoResult, DemoStarted, DemoStep, demo
from hepablate.app.extract import (
    ExtractResult,
    extract_cohort,
    extract_features,
    load_feature_table,
)
from hepablate.app.import_dicom import DicomImportResult, import_dicom
from hepablate.app.predict import (
    BundleAccepted,
    BundleRefusedError,
    PredictResult,
    is_prediction,
    predict,
)
from hepablate.app.progress import NO_PROGRESS, NoProgress, Progress, Within
from hepablate.app.simulate import PREVIEWS, SimulateResult, simulate
from hepablate.app.train import TRAIN_OUTPUTS, StudyPlan, TrainResult, gathered_warnings, train
from hepablate.app.validate import load_valid_cohort, validate

__all__ = [
    "DEMO_OUTPUTS",
    "NO_PROGRESS",
    "PREVIEWS",
    "TRAIN_OUTPUTS",
    "BundleAccepted",
    "BundleRefusedError",
    "DemoResult",
    "DemoStarted",
    "DemoStep",
    "DicomImportResult",
    "ExtractResult",
    "NoProgress",
    "PredictResult",
    "Progress",
    "SimulateResult",
    "StudyPlan",
    "TrainResult",
    "Within",
    "demo",
    "extract_cohort",
    "extract_features",
    "gathered_warnings",
    "import_dicom",
    "is_prediction",
    "load_feature_table",
    "load_valid_cohort",
    "predict",
    "simulate",
    "train",
    "validate",
]
