"""hepablate: predict the outcome of thermal ablation of liver tumours.

The packages, from the bottom layer up; each imports only packages in the layers below it
(``docs/architecture.md``, held by the import-linter contract of ``pyproject.toml``; those on
one line of the contract do not import each other):

- :mod:`hepablate.schemas`: typed, versioned outputs (``metrics.json``, ``prediction.json``,
  the bundle manifest) and their JSON Schemas.
- :mod:`hepablate.outputs`: output folders and files, checked first and swapped in whole.
- :mod:`hepablate.configs`: the configs shipped as YAML files.
- :mod:`hepablate.imaging`: volumes and masks; ``io`` and ``segmentations`` below the cohort,
  ``registration`` and ``preprocess`` above it.
- :mod:`hepablate.cohort`: the cohort format, its validation and the DICOM import.
- :mod:`hepablate.parallel`: tasks in-process, on local processes or on a Dask cluster.
- :mod:`hepablate.features`: the FeatureTable (clinical scores, geometry, radiomics, crops).
- :mod:`hepablate.simulate`: the virtual cohort and its ground truth.
- :mod:`hepablate.selection`: feature selectors, refitted inside every training fold.
- :mod:`hepablate.models`: estimators (baselines, tabular and multimodal networks).
- :mod:`hepablate.validation`: metrics of out-of-fold predictions with bootstrap CIs.
- :mod:`hepablate.study`: a validated study (``hepablate train``).
- :mod:`hepablate.report`: the study report (HTML, PDF) with the TRIPOD+AI checklist.
- :mod:`hepablate.bundle`: the model bundle, its signature, and prediction for a new patient.
- :mod:`hepablate.app`: the jobs as plain functions, what the CLI and a service call.
- :mod:`hepablate.cli`: the ``hepablate`` command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hepablate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
