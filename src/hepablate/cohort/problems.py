"""Problems found in a cohort, and the report that collects all of them.

Validation never stops at the first problem: every rule runs and adds what it finds to one
:class:`ValidationReport`, so a data manager sees the whole list at once. Each problem names
where it is (patient, file, row, field) so that it can be fixed without reading code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["CohortValidationError", "Problem", "Severity", "ValidationReport"]


class Severity(StrEnum):
    """An error makes the cohort unusable; a warning is shown but does not block."""

    ERROR = "error"
    WARNING = "warning"


class Problem(BaseModel):
    """One finding, located as precisely as the rule that found it can.

    ``code`` is a stable, dotted identifier (``value.out_of_range``) for scripts and tests;
    ``message`` is the sentence for people. ``row`` is the row as a spreadsheet shows it
    (the header is row 1, the first patient row 2); ``tumour`` the tumour (its label in a
    ``tumour_id`` mask) an image finding is about.
    """

    model_config = ConfigDict(frozen=True)

    severity: Severity
    code: str
    message: str
    patient: str | None = None
    file: str | None = None
    row: int | None = None
    field: str | None = None
    tumour: int | None = None

    def location(self) -> str:
        """Where the problem is, e.g. ``patient P003 · tumours.csv row 5 · field diameter_mm``."""
        parts = []
        if self.patient is not None:
            parts.append(f"patient {self.patient}")
        if self.tumour is not None:
            parts.append(f"tumour {self.tumour}")
        if self.file is not None:
            parts.append(self.file if self.row is None else f"{self.file} row {self.row}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        return " · ".join(parts) if parts else "cohort"

    def __str__(self) -> str:
        return f"{self.severity.value.upper()} [{self.code}] {self.location()}: {self.message}"


class ValidationReport(BaseModel):
    """All problems of one cohort, plus what was checked."""

    cohort_dir: str
    problems: list[Problem] = []
    summary: dict[str, Any] = {}

    def add(
        self,
        severity: Severity,
        code: str,
        message: str,
        *,
        patient: str | None = None,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
        tumour: int | None = None,
    ) -> None:
        self.problems.append(
            Problem(
                severity=severity,
                code=code,
                message=message,
                patient=patient,
                file=file,
                row=row,
                field=field,
                tumour=tumour,
            )
        )

    def error(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.ERROR, code, message, **where)

    def warning(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.WARNING, code, message, **where)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def counts_by_code(self) -> dict[str, int]:
        return dict(Counter(p.code for p in self.problems))

    def __iter__(self) -> Iterator[Problem]:  # type: ignore[override]
        return iter(self.problems)


class CohortValidationError(Exception):
    """Raised by :func:`hepablate.cohort.load_cohort` when a cohort has errors.

    The full report is attached, so callers can print every problem, not just the first.
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        n = len(report.errors)
        first = report.errors[0] if report.errors else None
        super().__init__(
            f"cohort {report.cohort_dir} has {n} error(s)" + (f"; first: {first}" if first else "")
        )
