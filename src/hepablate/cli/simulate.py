"""``hepablate simulate``: write a virtual ablation cohort with its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from hepablate.cli._progress import progress_bar

if TYPE_CHECKING:
    from hepablate.app import SimulateResult

__all__ = ["print_simulation", "simulate"]

# hepablate.app.simulate.PREVIEWS (a test keeps them equal): the help text is made when the
# command line starts, which imports no job.
PREVIEWS = 6
# Below this many patients the cohort's Kaplan-Meier rates and the oracle's AUC and C-index
# describe a handful of outcomes (one patient: 0% or 100%, and no C-index at all), so the
# summary leaves them out and says so; simulation.json still has every number.
MIN_PATIENTS_FOR_RATES = 10


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the cohort to.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of patients.")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 1,
    size: Annotated[
        str,
        typer.Option("--size", help="Image size: small (1.5x1.5x2.5 mm) or full (0.8x0.8x2.5)."),
    ] = "small",
    centres: Annotated[int, typer.Option("--centres", min=1, help="Number of centres.")] = 1,
    preview: Annotated[
        bool, typer.Option("--preview", help=f"Write PNG slices of the first {PREVIEWS} patients.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Processes (0, the default: the CPU count).")
    ] = 0,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Tables and truth only (fast).")
    ] = False,
    appearance: Annotated[
        str,
        typer.Option(
            "--appearance",
            help="CT appearance: plain (one look, as before) or varied (contrast phase, "
            "kernel, noise, slice thickness 1-5 mm, tumour looks, cysts; same tables).",
        ),
    ] = "plain",
) -> None:
    """Simulate a cohort (tables, CT images, masks, outcomes) whose truth is known.

    Writes DIR/cohort.yaml, patients.csv, tumours.csv, images/ and truth.csv (the ground
    truth, never read by training or prediction), then prints the cohort's rates and the
    oracle's AUC and C-index, measured on what was written.
    """
    from hepablate.app import simulate as run_simulate
    from hepablate.simulate.generate import SimulationConfig

    if size not in ("small", "full"):
        raise typer.BadParameter("--size must be small or full")
    chosen: Literal["small", "full"] = "small" if size == "small" else "full"
    if appearance not in ("plain", "varied"):
        raise typer.BadParameter("--appearance must be plain or varied")
    look: Literal["plain", "varied"] = "plain" if appearance == "plain" else "varied"
    config = SimulationConfig(
        n=n, seed=seed, size=chosen, centres=centres, images=not no_images, appearance=look
    )
    with progress_bar() as progress:
        result = run_simulate(config, out, preview=preview, workers=workers, progress=progress)
    print_simulation(Console(highlight=False), result)


def print_simulation(console: Console, result: SimulateResult) -> None:
    """Where the cohort is and its rates."""
    _print_rates(console, result.out, result.rates, result.seconds)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _print_rates(out: Console, folder: Path, r: dict, seconds: float) -> None:  # type: ignore[type-arg]
    out.print(
        f"Wrote {_plural(r['patients'], 'patient')}, {_plural(r['tumours'], 'tumour')} to "
        f"{folder} in {seconds:.1f} s (truth in {folder / 'truth.csv'})"
    )
    low, high = r["margin_iqr_mm"]
    out.print(
        f"  true minimal ablative margin: median {r['margin_median_mm']:.1f} mm "
        f"(IQR {low:.1f} to {high:.1f}), {r['margin_below_0_pct']:.1f}% below 0 mm, "
        f"{r['margin_below_5_pct']:.1f}% below 5 mm"
    )
    if r["patients"] < MIN_PATIENTS_FOR_RATES:
        out.print(
            f"  follow-up: median {r['follow_up_median_months']:.1f} months; no progression "
            f"rates or oracle scores below {MIN_PATIENTS_FOR_RATES} patients (too few "
            "outcomes; see simulation.json)"
        )
        return
    out.print(f"  local tumour progression by 2 years (Kaplan-Meier): {100 * r['ltp_24m_km']:.1f}%")
    out.print(f"  intrahepatic recurrence by 2 years (Kaplan-Meier): {100 * r['rfs_24m_km']:.1f}%")
    out.print(
        f"  follow-up: median {r['follow_up_median_months']:.1f} months, "
        f"{r['lost_before_24m_pct']:.1f}% lost before 2 years, "
        f"{r['ltp_censored_pct']:.1f}% of tumours censored for progression"
    )
    out.print(
        f"  oracle: AUC {_fmt(r['ltp_24m_auc'])} (2-year progression), C-index "
        f"{_fmt(r['ltp_c_index'])} (progression), AUC {_fmt(r['rfs_24m_auc'])} and C-index "
        f"{_fmt(r['rfs_c_index'])} (recurrence)"
    )
