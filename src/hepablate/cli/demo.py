"""``hepablate demo``: the whole pipeline on a virtual cohort, through the same commands a user
runs: simulate, extract, train (baselines and the multimodal network on the same folds, the
report and the bundle), then predict for a new virtual patient."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hepablate.cli.validate import EXIT_INVALID

__all__ = ["demo"]

# The new patient is drawn with another seed than the cohort's: a patient no model has seen.
NEW_PATIENT_SEED_OFFSET = 10_000
# Everything the demo writes into OUT (features.cache: the extraction's per-patient cache).
DEMO_OUTPUTS = frozenset(
    {
        "cohort",
        "features.parquet",
        "features.cache",
        "study.yaml",
        "study",
        "new_patient",
        "prediction.json",
    }
)


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
    from hepablate.outputs import OutputError, check_output_dir, staged_dir

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_dir(out, "demo", overwrite=overwrite, names=DEMO_OUTPUTS)
        with staged_dir(out, "demo", overwrite=overwrite, names=DEMO_OUTPUTS) as stage:
            console.print(f"working in {stage}; it becomes {out} when the demo is complete")
            seconds = _steps(console, stage, n=n, seed=seed, workers=workers)
    except OutputError as exc:
        console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    table = Table(title=f"hepablate demo: {sum(seconds.values()) / 60:.1f} min")
    table.add_column("what")
    table.add_column("where")
    for what, where in (
        ("virtual cohort (truth.csv: the simulator's truth)", out / "cohort"),
        ("preview slices", out / "cohort" / "preview"),
        ("features", out / "features.parquet"),
        ("study config as run", out / "study.yaml"),
        ("study report", out / "study" / "report.html"),
        ("study report (PDF)", out / "study" / "report.pdf"),
        ("metrics with CIs", out / "study" / "metrics.json"),
        ("model bundle", out / "study" / "bundle"),
        ("new patient", out / "new_patient"),
        ("prediction", out / "prediction.json"),
    ):
        table.add_row(what, str(where))
    console.print(table)
    console.print(
        "time per step: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
    )


def _steps(console: Console, out: Path, *, n: int, seed: int, workers: int) -> dict[str, float]:
    """The five steps into ``out``; the seconds each took."""
    from hepablate import configs
    from hepablate.cli.extract import extract
    from hepablate.cli.predict import predict
    from hepablate.cli.simulate import simulate
    from hepablate.cli.train import train

    cohort, features, run = out / "cohort", out / "features.parquet", out / "study"
    new_patient, prediction = out / "new_patient", out / "prediction.json"
    study = configs.path("virtual_ltp_24m")
    settings = yaml.safe_load(study.read_text(encoding="utf-8"))
    settings["validation"]["repeats"] = 1  # three repeats would take the demo past 15 minutes
    demo_study = out / "study.yaml"
    demo_study.write_text(
        f"# {study.name} with one repeat (hepablate demo)\n" + yaml.safe_dump(settings),
        encoding="utf-8",
    )
    seconds: dict[str, float] = {}

    def step(name: str) -> float:
        console.rule(f"[bold]{name}")
        return time.perf_counter()

    start = step(f"1/5 simulate {n} patients")
    simulate(out=cohort, n=n, seed=seed, preview=True, workers=workers)
    seconds["simulate"] = time.perf_counter() - start

    start = step("2/5 extract features (light config)")
    extract(cohort, out=features, workers=workers, config_file=configs.path("light_extraction"))
    seconds["extract"] = time.perf_counter() - start

    start = step("3/5 train: selection, baselines and the multimodal network, report, bundle")
    train(features, config_file=demo_study, out=run)
    seconds["train"] = time.perf_counter() - start

    start = step("4/5 a new virtual patient")
    simulate(out=new_patient, n=1, seed=seed + NEW_PATIENT_SEED_OFFSET, workers=1)
    seconds["new patient"] = time.perf_counter() - start

    start = step("5/5 predict for the new patient")
    predict(run / "bundle", new_patient, out=prediction)
    seconds["predict"] = time.perf_counter() - start
    return seconds
