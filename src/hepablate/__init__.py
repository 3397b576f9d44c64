"""hepablate: predict the outcome of thermal ablation of liver tumours.

The packages follow the pipeline, each importing only those before it (``docs/architecture.md``,
held by the import-linter contracts of ``pyproject.toml``): :mod:`hepablate.imaging` (volumes,
masks, registration, preprocessing), :mod:`hepablate.cohort` (the cohort format, its validation
and DICOM import), :mod:`hepablate.simulate` (the virtual cohort), :mod:`hepablate.features`
(the FeatureTable), :mod:`hepablate.selection`, :mod:`hepablate.models`,
:mod:`hepablate.validation` (metrics with CIs), :mod:`hepablate.study` (``hepablate train``),
:mod:`hepablate.bundle` (the model bundle and prediction), :mod:`hepablate.report`,
:mod:`hepablate.app` (the jobs as functions) and :mod:`hepablate.cli`; beside them
:mod:`hepablate.parallel`, :mod:`hepablate.outputs` and :mod:`hepablate.configs`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hepablate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
