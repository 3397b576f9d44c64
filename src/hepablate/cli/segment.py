"""``hepablate segment``: train a segmenter on a cohort's own masks, and segment new scans."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from hepablate.segment.patient import ScanRecord

__all__ = ["segment_app"]

EXIT_INVALID = 2
TRAIN_KIND = "segment-train"
PREDICT_KIND = "segment-predict"
LARGEST_SHOWN = 5  # lesion volumes printed per scan

segment_app = typer.Typer(
    name="segment",
    help="Segment the liver, tumours and ablation zones with a network trained on a cohort.",
    no_args_is_help=True,
)


def _refuse(message: str) -> NoReturn:
    out = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in message.splitlines():
        out.print(f"[red]error:[/red] {escape(line)}")
    raise typer.Exit(EXIT_INVALID)


@contextmanager
def _bar(label: str) -> Iterator[Callable[[str, int, int | None], None]]:
    """A ``(description, done, total)`` callback driving a bar on stderr."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda text, done, total: bar.update(
            task, description=text, completed=done, total=total
        )


@segment_app.command("train")
def train(
    cohort_dir: Annotated[Path, typer.Argument(help="The cohort folder (holding cohort.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="The segmentation bundle folder to write.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="A YAML file of plan fields to override.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Where to keep the per-epoch checkpoint (default: .OUT.checkpoint beside OUT); "
            "a run finds it there and resumes.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a folder hepablate did not write.")
    ] = False,
) -> None:
    """Train a network per task (liver and tumours on pre_ct; liver and ablation zone on
    post_ct) from the cohort's own masks, and write it as a segmentation bundle.

    The dataset fingerprint becomes a plan (spacing, patch, normalisation, network, batch,
    schedule) that --config may override. Stopped (Ctrl-C or a crash), the same command
    resumes from the last finished epoch.
    """
    from hepablate.cli._errors import input_errors
    from hepablate.cohort import load_cohort
    from hepablate.outputs import OutputError, check_output_dir, staged_dir
    from hepablate.segment.bundle import save_segmenter
    from hepablate.segment.errors import SegmentError
    from hepablate.segment.plan import fingerprint, load_overrides, plan
    from hepablate.segment.train import TrainEvent, train_segmenter

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_dir(out, TRAIN_KIND, overwrite=overwrite)
    except OutputError as exc:
        _refuse(str(exc))
    overrides: dict[str, Any] = {}
    try:
        if config is not None:
            overrides = load_overrides(config)
        with input_errors(console):  # an invalid cohort: its report, exit 2
            cohort = load_cohort(cohort_dir)
        with _bar("measuring the cohort") as show:
            found = fingerprint(cohort, progress=lambda d, t: show("measuring the cohort", d, t))
        planned = plan(found, overrides, source=str(config or "config"))
    except SegmentError as exc:
        _refuse(str(exc))
    for task, why in found.skipped.items():
        console.print(f"task {task}: no network ({escape(why)})")
    place = checkpoint or out.parent / f".{out.name}.checkpoint"
    epochs = planned.training.max_epochs
    try:
        with _bar("training") as show:

            def report(event: TrainEvent) -> None:
                text = f"{event.task}: epoch {event.epoch}/{epochs}, loss {event.loss:.3f}"
                if event.dice is not None:
                    text += " · Dice " + ", ".join(f"{k} {v:.3f}" for k, v in event.dice.items())
                show(text, event.iteration, event.iterations)

            result = train_segmenter(
                cohort,
                planned,
                {t: f.patients for t, f in found.tasks.items()},
                checkpoint_dir=place,
                progress=report,
            )
    except SegmentError as exc:
        _refuse(str(exc))
    except KeyboardInterrupt:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"training stopped; its last finished epoch is in {place}: the same command resumes"
        )
        raise
    with staged_dir(out, TRAIN_KIND, overwrite=overwrite) as stage:
        save_segmenter(result, found, overrides, stage)
    for task in result.tasks:
        (place / f"{task}.pt").unlink(missing_ok=True)
    if place.is_dir() and not any(place.iterdir()):
        shutil.rmtree(place)
    console.print(f"Wrote the segmentation bundle {escape(str(out))}")
    for name, trained in result.tasks.items():
        dice = ", ".join(f"{k} {v:.3f}" for k, v in trained.best_dice.items())
        console.print(
            f"  {name}: best epoch {trained.best_epoch} of {len(trained.history)}, validation "
            f"Dice {dice} on {len(trained.validation_patients)} held-out patients"
        )


@segment_app.command("predict")
def predict(
    bundle: Annotated[Path, typer.Argument(help="The segmentation bundle folder.")],
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="A scan (file or DICOM folder), a patient folder or a cohort."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The folder to write the masks to.")],
    task: Annotated[
        str | None,
        typer.Option("--task", help="For a single scan: the task (pre or post; default pre)."),
    ] = None,
    tta: Annotated[
        bool | None,
        typer.Option(
            "--tta/--no-tta",
            help="Average over the scan's mirror images (8 passes; default: the plan's "
            "inference.tta, false unless trained with it).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a folder hepablate did not write.")
    ] = False,
) -> None:
    """Segment a scan, a patient folder (its pre_ct and post_ct) or every patient of a cohort,
    writing the cohort format's mask files (liver, pre_tumours, post_liver, post_ablation;
    one label per lesion, each ablation zone labelled with the tumour it treats) and
    segmentation.json; a DICOM-SEG beside them for a scan read from a DICOM series.

    A patient folder's own pre_tumours (manual) are the tumours the zones are matched to."""
    from hepablate.outputs import OutputError, check_output_dir, staged_dir
    from hepablate.segment.bundle import load_segmenter
    from hepablate.segment.errors import SegmentError
    from hepablate.segment.patient import PatientSegmentation, segment_patient
    from hepablate.segment.predict import with_tta

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_dir(out, PREDICT_KIND, overwrite=overwrite)
        segmenter = load_segmenter(bundle)
        if tta is not None:
            segmenter = with_tta(segmenter, tta)
        jobs = _jobs(segmenter, source, task)
    except (OutputError, SegmentError) as exc:
        _refuse(str(exc))
    results: dict[str, PatientSegmentation] = {}
    try:
        with (
            staged_dir(out, PREDICT_KIND, overwrite=overwrite) as stage,
            _bar("segmenting") as show,
        ):
            for done, (folder, (scans, manual)) in enumerate(jobs.items()):
                show(f"segmenting {folder or source.name}", done, len(jobs))
                target = stage / folder if folder else stage
                results[folder] = segment_patient(segmenter, scans, target, manual)
    except SegmentError as exc:
        _refuse(str(exc))
    console.print(f"Wrote the masks to {escape(str(out))}")
    for folder, found in results.items():
        where = f"{folder}: " if folder else ""
        for name, scan in found.record.scans.items():
            lesion = segmenter.plan.tasks[name].spec.lesion_name
            console.print(f"  {escape(where)}{name}: {escape(_summary(scan, lesion))}")


def _summary(scan: ScanRecord, lesion: str) -> str:
    """One line of what was written for a scan."""
    lesions = scan.lesions[:LARGEST_SHOWN]
    more = ", ..." if len(scan.lesions) > LARGEST_SHOWN else ""
    if scan.numbering == "manual":
        text = f"{len(scan.lesions)} manual {lesion}(s)"
        predicted = scan.predicted or []
        text += (
            f"; the network's {len(predicted) + len(scan.unmatched)} {lesion}(s) cover "
            f"{len(predicted)} of them"
        )
    elif scan.numbering == "tumours":
        shown = ", ".join(
            f"{lesion} {item.label} {item.volume_ml:.2f} mL (p {item.probability:.2f})"
            for item in lesions
        )
        text = f"{len(scan.lesions)} {lesion}(s) matched to tumours" + (
            f": {shown}{more}" if shown else ""
        )
    else:
        shown = ", ".join(f"{item.volume_ml:.2f}" for item in lesions)
        text = f"{len(scan.lesions)} {lesion}(s) by volume" + (
            f", largest {shown}{more} mL" if shown else ""
        )
    if scan.unmatched:
        text += f"; {len(scan.unmatched)} unmatched (in segmentation.json)"
    if scan.dicom_seg:
        text += f"; DICOM-SEG {scan.dicom_seg}"
    return text


def _jobs(
    segmenter: Any, source: Path, task: str | None
) -> dict[str, tuple[dict[str, Path], Path | None]]:
    """Output subfolder ('' for OUT itself) -> the scans to segment there by task, and the
    folder's manual tumour mask (None if it has none)."""
    from hepablate.segment.errors import SegmentError
    from hepablate.segment.predict import task_of_folder

    if not source.exists():
        raise SegmentError(f"{source}: no such file or folder")
    if source.is_dir() and (source / "cohort.yaml").is_file():
        images = source / _images_directory(source / "cohort.yaml")
        jobs = {}
        for folder in sorted(p for p in images.iterdir() if p.is_dir()):
            scans = task_of_folder(segmenter, folder)
            if scans:
                jobs[f"images/{folder.name}"] = (scans, _manual(segmenter, folder, scans))
        if not jobs:
            raise SegmentError(f"{images}: no patient folder holds a scan the bundle segments")
        return jobs
    if source.is_dir():
        scans = task_of_folder(segmenter, source)
        if scans:
            if task is not None:
                scans = {t: p for t, p in scans.items() if t == task}
            return {"": (scans, _manual(segmenter, source, scans))}
    chosen = task or "pre"
    if chosen not in segmenter.plan.tasks:
        raise SegmentError(
            f"--task {chosen}: the bundle has networks for {', '.join(segmenter.plan.tasks)}"
        )
    return {"": ({chosen: source}, None)}


def _manual(segmenter: Any, folder: Path, scans: dict[str, Path]) -> Path | None:
    """The patient folder's own tumour mask, when its pre CT is segmented."""
    from hepablate.imaging.io import find_image
    from hepablate.segment.errors import SegmentError
    from hepablate.segment.patient import PRE

    if PRE not in scans:
        return None
    name = segmenter.plan.tasks[PRE].spec.lesion
    candidates = find_image(folder, name)
    if len(candidates) > 1:
        raise SegmentError(
            f"{folder}: two candidates for {name}: " + ", ".join(p.name for p in candidates)
        )
    return candidates[0] if candidates else None


def _images_directory(path: Path) -> str:
    import yaml

    from hepablate.segment.errors import SegmentError

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SegmentError(f"{path}: cannot be read ({exc})") from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict):
        raise SegmentError(f"{path}: declares no images")
    return str(images.get("directory", "images"))


EVALUATION_FILE = "evaluation.json"


@segment_app.command("evaluate")
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="The segmentation bundle folder.")],
    cohort_dir: Annotated[
        Path, typer.Argument(help="A cohort with manual masks (the folder holding cohort.yaml).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The evaluation file to write.")] = Path(
        EVALUATION_FILE
    ),
    predicted: Annotated[
        Path | None,
        typer.Option(
            "--predicted",
            help="Read the masks from this folder (as segment predict writes them for a cohort: "
            "DIR/images/<patient>/) instead of segmenting.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a file hepablate did not write.")
    ] = False,
) -> None:
    """Compare the bundle's masks with the cohort's manual ones: liver Dice, HD95 and mean
    surface distance; tumour and zone Dice, lesion detection by size, false positives; the
    error of each tumour's minimal ablative margin."""
    from hepablate.cli._errors import input_errors
    from hepablate.cohort import load_cohort
    from hepablate.outputs import OutputError, check_output_file, staged_file
    from hepablate.schemas import dump_json
    from hepablate.segment.bundle import load_segmenter
    from hepablate.segment.errors import SegmentError
    from hepablate.segment.evaluate import evaluate_segmenter, is_segment_evaluation

    console = Console(highlight=False, soft_wrap=True)
    try:
        check_output_file(
            out, overwrite=overwrite, recognise=is_segment_evaluation, what="an evaluation"
        )
        segmenter = load_segmenter(bundle)
        with input_errors(console):  # an invalid cohort: its report, exit 2
            cohort = load_cohort(cohort_dir)
        with _bar("evaluating") as show:
            evaluation = evaluate_segmenter(
                segmenter,
                cohort,
                predicted=predicted,
                progress=lambda done, total: show("evaluating", done, total),
            )
    except (OutputError, SegmentError) as exc:
        _refuse(str(exc))
    with staged_file(out) as stage:
        stage.write_text(dump_json(evaluation), encoding="utf-8")
    _print_evaluation(console, evaluation)
    console.print(f"Wrote {escape(str(out))}")


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _stats(summary: Any, digits: int = 3) -> tuple[str, str, str]:
    """``n``, ``median [q1, q3]`` and ``mean (CI)`` of a ``schemas.segmentation.Summary``."""
    if summary.n == 0:
        return "0", "-", "-"
    median = f"{_number(summary.median, digits)} [{_number(summary.q1, digits)}, "
    median += f"{_number(summary.q3, digits)}]"
    mean = _number(summary.mean, digits)
    if summary.mean_ci is not None:
        low, high = summary.mean_ci
        mean += f" ({_number(low, digits)} to {_number(high, digits)})"
    return str(summary.n), median, mean


def _print_evaluation(console: Console, evaluation: Any) -> None:
    from rich.table import Table

    table = Table(title="Segmentation against the manual masks")
    table.add_column("task")
    table.add_column("measure")
    for column in ("n", "value or median [IQR]", "mean (95% CI)"):
        table.add_column(column, no_wrap=True)
    for name, task in evaluation.tasks.items():
        label = name
        lesions, lesion = task.lesions, task.lesion_name
        rows: list[tuple[str, tuple[str, str, str]]] = []
        if task.liver is not None:
            rows += [
                ("liver Dice", _stats(task.liver.dice)),
                ("liver HD95 (mm)", _stats(task.liver.hd95_mm, 1)),
                ("liver mean surface distance (mm)", _stats(task.liver.asd_mm, 2)),
            ]
        rows += [
            (f"{lesion} Dice, all voxels pooled", ("", _number(lesions.global_dice), "")),
            (f"{lesion} Dice per case", _stats(lesions.dice)),
        ]
        rows += [
            (f"{lesion} recall, {b.size}", (str(b.lesions), _number(b.recall, 2), ""))
            for b in lesions.recall_by_size
        ]
        rows += [
            (
                "false positives per case",
                (str(len(task.cases)), _number(lesions.false_positives_per_case, 2), ""),
            ),
            (f"Dice of each detected {lesion}", _stats(lesions.detected_dice)),
        ]
        for number, (measure, values) in enumerate(rows):
            table.add_row(label if number == 0 else "", measure, *values)
    margins = evaluation.margins
    if margins is not None:
        table.add_row(
            "margin",
            "|auto - manual| minimal margin (mm)",
            *_stats(margins.absolute_error_mm, 2),
        )
        table.add_row("", "auto - manual (mm)", *_stats(margins.signed_error_mm, 2))
        table.add_row("", "tumours missed", str(len(margins.tumours)), str(margins.missed), "")
        table.add_row(
            "", "tumours not measured", str(len(margins.tumours)), str(margins.not_measured), ""
        )
    console.print(table)
    if margins is not None and margins.absolute_error_mm.median_ci is not None:
        low, high = margins.absolute_error_mm.median_ci
        console.print(
            f"median absolute margin error {_number(margins.absolute_error_mm.median, 2)} mm "
            f"(95% CI {_number(low, 2)} to {_number(high, 2)})"
        )
    for name, why in evaluation.skipped.items():
        console.print(f"task {name}: not evaluated ({escape(why)})")
