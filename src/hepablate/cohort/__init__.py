"""The cohort format: ``cohort.yaml``, the patient and tumour tables, images and outcomes.

``load_cohort`` / ``validate_cohort`` (``validate``) run every rule and give the typed
``Cohort`` (``cohort``) or the ``ValidationReport`` of every ``Problem`` (``problems``): the
schema (``schema``), clinical concepts and units (``concepts``), table reading and cell parsing
(``tables``), the tables' and outcomes' checks (``table_checks``), the images' checks
(``image_checks``, with ``image_plausibility``). ``dicom_import`` turns a folder of DICOM
studies into a de-identified cohort folder (``hepablate import-dicom``).

>>> from hepablate.cohort import load_cohort
>>> cohort = load_cohort("examples/minimal_cohort")  # doctest: +SKIP
>>> cohort.outcomes("ltp_24m").label.value_counts()  # doctest: +SKIP
"""

from hepablate.cohort.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.cohort.problems import CohortValidationError, Problem, Severity, ValidationReport
from hepablate.cohort.schema import CohortSchema
from hepablate.cohort.validate import SCHEMA_FILE, load_cohort, validate_cohort

__all__ = [
    "PATIENT_INDEX",
    "SCHEMA_FILE",
    "TUMOUR_INDEX",
    "Cohort",
    "CohortSchema",
    "CohortValidationError",
    "Problem",
    "Severity",
    "ValidationReport",
    "load_cohort",
    "validate_cohort",
]
