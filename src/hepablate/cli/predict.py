"""``hepablate predict``: one new patient through a verified model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._errors import input_errors, refuse
from hepablate.cli._progress import progress_bar

if TYPE_CHECKING:
    from hepablate.app import BundleAccepted, PredictResult

__all__ = ["predict", "print_accepted", "print_prediction"]


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
    segmenter: Annotated[
        Path | None,
        typer.Option(
            "--segmenter",
            help="A segmentation bundle (`hepablate segment train`) that draws the masks the "
            "patient lacks (all of them for a patient with only its CTs); the output says which "
            "masks were automatic.",
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
    from hepablate.app import BundleAccepted, BundleRefusedError
    from hepablate.app import predict as run_predict
    from hepablate.bundle import BundleError

    console = Console(highlight=False, soft_wrap=True)

    def show(part: object) -> None:
        if isinstance(part, BundleAccepted):
            print_accepted(console, part)

    with input_errors(console), progress_bar(show) as progress:
        try:
            result = run_predict(
                bundle_dir,
                patient,
                out,
                bundle_id=bundle_id,
                allow_imputed_margin=allow_imputed_margin,
                segmenter=segmenter,
                overwrite=overwrite,
                progress=progress,
            )
        except BundleRefusedError:
            raise
        except BundleError as exc:  # this patient cannot be predicted for
            refuse(console, f"{patient}: {exc}")
    print_prediction(console, result)


def print_accepted(console: Console, accepted: BundleAccepted) -> None:
    """The bundle's id and why it is trusted."""
    console.print(f"bundle {accepted.id} accepted: {escape(accepted.trust.describe())}")


def print_prediction(console: Console, result: PredictResult) -> None:
    """The model and its validated performance, then per tumour the prediction, its risk
    group, main contributions and input checks, the warnings, and where it was written."""
    from hepablate.schemas.prediction import BinaryPrediction

    prediction = result.prediction
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
        if row.masks is not None and row.masks.source != "manual":
            drawn = [
                name
                for name in ("tumours", "ablation", "liver", "post_liver")
                if getattr(row.masks, name) == "auto"
            ]
            console.print(f"  masks: {row.masks.source} (automatic: {', '.join(drawn)})")
        for check in row.input_checks:
            console.print(f"  [yellow]CHECK[/] {check.message}")
    for warning in prediction.warnings:
        tumour = "" if warning.tumour is None else f" tumour {warning.tumour}"
        console.print(
            f"[yellow]WARNING[/] {escape(str(warning.patient))}{tumour}, "
            f"{escape(warning.step)}: {escape(warning.reason)}"
        )
    if prediction.segmenter is not None:
        console.print(f"  automatic masks by segmenter {prediction.segmenter.id}")
    console.print(f"  prediction: {result.out}")
