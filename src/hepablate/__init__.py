"""hepablate: predict the outcome of thermal ablation of liver tumours.

The packages follow the pipeline: :mod:`hepablate.cohort` (the cohort format and its
validation), :mod:`hepablate.imaging` (volumes, masks and their processing), then features,
selection, models, validation, report, bundle and service as they are built. See
``docs/architecture.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hepablate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
