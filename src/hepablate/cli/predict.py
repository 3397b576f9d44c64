"""``hepablate predict``: one new patient through a verified model bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli.validate import EXIT_INVALID, load_cohort_or_exit

__all__ = ["predict"]


def predict(
    bundle_dir: Annotated[
        Path, typer.Argument(help="The model bundle (RUN_DIR/bundle of `hepablate train`).")
    ],
    patient: Annotated[
        Path, typer.Argument(help="The new patient: a cohort folder (cohort.yaml, tables, images).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The prediction to write (JSON).")] = Path(
        "prediction.json"
    ),
    bundle_id: Annotated[
        str | None,
        typer.Option(
            "--bundle-id",
            metavar="SHA256",
            help="Accept this exact bundle (the SHA-256 of its manifest.json, as its author "
            "gave it), signed or not; any other bundle is refused.",
        ),
    ] = None,
    allow_imputed_margin: Annotated[
        bool,
        typer.Option(
            "--allow-imputed-margin",
            help="Predict also when the minimal ablative margin, an input of the model, could "
            "not be measured: the training median stands in for it, and the output says so.",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing OUT that is not a prediction."),
    ] = False,
) -> None:
    """Predict the endpoint for a new patient, per tumour: the probability (or risk score and
    survival curve), its uncertainty, the risk group, the top contributions and the what-if
    curve over the achieved minimal ablative margin (model-based, not causal).

    The bundle is verified first: signed by a trusted key (yours, or one added with `hepablate
    bundle trust`) or its id pinned (`--bundle-id`, `hepablate bundle pin`), every file whole,
    the same scikit-learn; the output says which way it was accepted. The patient is validated
    and measured by the bundle's own extraction settings. Inputs the model uses that are
    missing (imputed), outside the training range or an unseen category are listed under each
    tumour.
    """
    from hepablate.bundle import BundleError, load_bundle
    from hepablate.bundle.predict import predict_cohort
    from hepablate.outputs import OutputError, check_output_file, staged_file
    from hepablate.schemas import dump_json
    from hepablate.schemas.prediction import BinaryPrediction

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_file(out, overwrite=overwrite, recognise=_is_prediction, what="a prediction")
    except OutputError as exc:
        console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    try:
        bundle = load_bundle(bundle_dir, bundle_id=bundle_id)
    except BundleError as exc:
        console.print(f"[red]ERROR[/] bundle refused: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    console.print(f"bundle {bundle.id} accepted: {escape(bundle.trust.describe())}")
    cohort = load_cohort_or_exit(patient, console)
    try:
        prediction = predict_cohort(bundle, cohort, allow_imputed_margin=allow_imputed_margin)
    except BundleError as exc:
        console.print(f"[red]ERROR[/] {escape(str(patient))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    try:
        with staged_file(out) as partial:
            partial.write_text(dump_json(prediction), encoding="utf-8")
    except OutputError as exc:
        console.print(f"[red]ERROR[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    validation = prediction.validation
    console.print(
        f"model {prediction.bundle.model} ({prediction.bundle.kind}), validated "
        f"{validation.metric} {validation.value:.3f} "
        + ("" if validation.ci is None else f"({validation.ci[0]:.3f} to {validation.ci[1]:.3f})")
    )
    for row in prediction.predictions:
        what = "probability" if isinstance(row, BinaryPrediction) else "risk score"
        tumour = "" if row.tumour_id is None else f" tumour {row.tumour_id}"
        spread = "" if row.uncertainty is None else f" ± {row.uncertainty:.3f}"
        top = ", ".join(c.feature for c in row.contributions[:3])
        console.print(
            f"{row.patient_id}{tumour}: {what} {row.value:.3f}{spread}, {row.risk_group} "
            f"risk; main contributions: {top}"
        )
        for check in row.input_checks:
            console.print(f"  [yellow]CHECK[/] {check.message}")
    for warning in prediction.warnings:
        tumour = "" if warning.tumour is None else f" tumour {warning.tumour}"
        console.print(
            f"[yellow]WARNING[/] {escape(str(warning.patient))}{tumour}, "
            f"{escape(warning.step)}: {escape(warning.reason)}"
        )
    console.print(f"  prediction: {out}")


def _is_prediction(path: Path) -> bool:
    """Whether ``path`` holds a prediction this command wrote (JSON with its keys)."""
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"bundle", "predictions", "validation"} <= set(written)
