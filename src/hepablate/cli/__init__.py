"""The ``hepablate`` command line: one sub-command per pipeline stage.

Sub-commands are added only when they work; ``hepablate --help`` lists them.
Exit codes: 0 success, 2 invalid input (with a list of problems, no traceback),
1 an internal error (set ``HEPABLATE_DEBUG=1`` to see its traceback), 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import hepablate
from hepablate.cli.bundle import bundle_app
from hepablate.cli.demo import demo
from hepablate.cli.extract import extract
from hepablate.cli.import_dicom import import_dicom
from hepablate.cli.predict import predict
from hepablate.cli.segment import segment_app
from hepablate.cli.simulate import simulate
from hepablate.cli.train import train
from hepablate.cli.validate import validate

__all__ = ["app", "main"]

EXIT_STOPPED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells report it

app = typer.Typer(
    name="hepablate",
    help="Predict the outcome of thermal ablation of liver tumours from clinical data and CT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(validate)
app.command()(simulate)
app.command()(extract)
app.command(name="import-dicom")(import_dicom)
app.command()(train)
app.command()(predict)
app.command()(demo)
app.add_typer(bundle_app)
app.add_typer(segment_app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hepablate {hepablate.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Predict the outcome of thermal ablation of liver tumours from clinical data and CT."""


def main() -> None:
    """Entry point of the ``hepablate`` script."""
    for stream in (sys.stdout, sys.stderr):  # a terminal without UTF-8 gets "?" for "µ" and "·"
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        app()
    except SystemExit as done:
        # Typer turns Ctrl-C inside a command into a silent exit 130: say what is left.
        if done.code == EXIT_STOPPED:
            _stopped()
        raise
    except KeyboardInterrupt:  # while the command line itself was starting up
        _stopped()
        sys.exit(EXIT_STOPPED)
    except Exception as exc:  # an unexpected failure is a bug: say so in one line
        if os.environ.get("HEPABLATE_DEBUG"):
            raise
        Console(stderr=True).print(
            f"[red]internal error:[/red] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
            "This is a bug in hepablate; rerun with HEPABLATE_DEBUG=1 for the traceback "
            "and report it.",
            markup=True,
            highlight=False,
        )
        sys.exit(1)


def _stopped() -> None:
    """The Ctrl-C message, on stderr whether it is a terminal or a pipe."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        "stopped: train, extract, predict and demo write nothing half-done, their previous "
        "outputs are as they were; extract resumes from its cache"
    )
