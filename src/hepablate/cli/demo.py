"""``hepablate demo``: the whole pipeline on a virtual cohort, through the same jobs a user
runs: simulate, extract, train (baselines and the multimodal network on the same folds, the
report and the bundle), then predict for a new virtual patient (:func:`hepablate.app.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hepablate.cli._errors import input_errors
from hepablate.cli._progress import progress_bar

__all__ = ["demo"]


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")] = (
        Path("runs/demo")
    ),
    n: Annotated[int, typer.Option("--n", min=20, help="Virtual patients.")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed of the cohort.")] = 1,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Processes (0, the default: the CPU count).")
    ] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Write into a non-empty OUT that is not an earlier demo (other files are kept).",
        ),
    ] = False,
) -> None:
    """Simulate a cohort, extract its features (the light config), validate the baselines and
    the multimodal network on the same folds (virtual_ltp_24m study, one repeat), write the
    report and the model bundle, and predict for a new virtual patient.

    Each step is the command of the same name; the end prints where everything is. The demo
    works in a folder beside OUT that takes OUT's place when every step is done, so a rerun
    replaces an earlier demo whole.
    """
    from hepablate.app import demo as run_demo

    console = Console(highlight=False, soft_wrap=True)
    with input_errors(console), progress_bar(lambda part: _show(console, part)) as progress:
        result = run_demo(
            out, n=n, seed=seed, workers=workers, overwrite=overwrite, progress=progress
        )
    seconds = result.seconds
    table = Table(title=f"hepablate demo: {sum(seconds.values()) / 60:.1f} min")
    table.add_column("what")
    table.add_column("where")
    for what, where in result.places:
        table.add_row(what, str(where))
    console.print(table)
    console.print(
        "time per step: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
    )


def _show(console: Console, part: object) -> None:
    """A step of the demo as its own command prints it, under the step's title."""
    from hepablate.app import (
        DemoStarted,
        DemoStep,
        ExtractResult,
        PredictResult,
        SimulateResult,
        TrainResult,
    )
    from hepablate.cli.extract import print_extraction
    from hepablate.cli.predict import print_accepted, print_prediction
    from hepablate.cli.simulate import print_simulation
    from hepablate.cli.train import print_plan, print_training

    if isinstance(part, DemoStarted):
        console.print(f"working in {part.stage}; it becomes {part.out} when the demo is complete")
        return
    if not isinstance(part, DemoStep):
        return
    console.rule(f"[bold]{part.title}")
    result = part.result
    if isinstance(result, SimulateResult):
        print_simulation(Console(highlight=False), result)  # as `hepablate simulate` prints it
    elif isinstance(result, ExtractResult):
        print_extraction(console, result)
    elif isinstance(result, TrainResult):
        print_plan(console, result.plan)
        print_training(console, result)
    elif isinstance(result, PredictResult):
        print_accepted(console, result.bundle)
        print_prediction(console, result)
