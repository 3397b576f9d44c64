"""Input errors of the jobs as the command line shows them: one line per problem, exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["EXIT_INVALID", "input_errors", "refuse"]

EXIT_INVALID = 2


def refuse(console: Console, message: str) -> NoReturn:
    """Print an input error, ``ERROR`` before each of its lines, and exit 2."""
    for line in message.splitlines():
        console.print(f"[red]ERROR[/] {escape(line)}")
    raise typer.Exit(EXIT_INVALID)


@contextmanager
def input_errors(console: Console) -> Iterator[None]:
    """Map the typed input errors of :mod:`hepablate.app` to their message and exit code 2:
    an invalid cohort prints its whole validation report, a refused DICOM import every
    problem, a refused bundle ``bundle refused: ...``; any other exception is not an input
    error and goes on (``hepablate.cli.main`` calls it a bug)."""
    # Imported here, when a command runs: `hepablate --help` stays quick.
    from hepablate.app import BundleRefusedError
    from hepablate.bundle import BundleError
    from hepablate.cli.validate import print_report
    from hepablate.cohort import CohortValidationError
    from hepablate.cohort.dicom_import import DicomImportError
    from hepablate.features.extract import ExtractionConfigError
    from hepablate.outputs import OutputError
    from hepablate.parallel import SchedulerError
    from hepablate.study.config import StudyConfigError

    try:
        yield
    except CohortValidationError as invalid:
        print_report(invalid.report, console)
        raise typer.Exit(EXIT_INVALID) from None
    except DicomImportError as exc:
        for problem in exc.problems:
            console.print(f"[bold red]ERROR[/] {escape(problem)}")
        console.print("Nothing was written.")
        raise typer.Exit(EXIT_INVALID) from None
    except BundleRefusedError as exc:
        refuse(console, f"bundle refused: {exc}")
    except (
        OutputError,
        StudyConfigError,
        ExtractionConfigError,
        BundleError,
        SchedulerError,
    ) as exc:
        refuse(console, str(exc))
