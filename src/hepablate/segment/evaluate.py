"""``hepablate segment evaluate``: a segmentation bundle's masks against a cohort's manual ones.

Every patient with a task's scan and manual lesion mask is segmented with the bundle (or its
masks are read from a folder of predicted masks, the layout ``segment predict`` writes for a
cohort: ``<folder>/images/<patient>/<mask>``) and compared (:mod:`hepablate.segment.metrics`):
the liver (Dice, HD95, mean surface distance), the lesions (per-case and pooled Dice, lesion
detection by size, false positives, the Dice of each detected lesion) and, for a patient with
both scans, the error of each tumour's minimal ablative margin.

**The margin error.** Per manual tumour, the margin is measured twice with the function
extraction uses (:func:`hepablate.features.margin.minimal_ablative_margin_mm`), on one
registration of the post CT onto the pre CT (the manual livers guide it, as in extraction), so
that the registration's error is not in the difference: from the manual tumour, its manual zone
(the zone of the same label) and the manual liver; and from the predicted tumour matched to it
(``metrics.DETECTION_RULE``), the predicted zone and the predicted liver. The predicted zone of a
tumour is the union of the predicted zone's connected components (on the pre grid, after the
registration) that overlap the tumour's manual zone; matching predicted zones to tumours without
the manual masks is the job of ``segment predict``, and is not measured here. A tumour whose
predicted tumour or zone is not found (or whose automatic masks the surface fit fails on) is
*missed*; a failed registration, a manual zone that leaves nothing on the pre grid or a fit
that fails on the manual masks leaves the tumour *not measured*.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from hepablate.cohort import Cohort
from hepablate.features.margin import minimal_ablative_margin_mm
from hepablate.imaging.io import ImageReadError, Volume, find_image, read_volume
from hepablate.imaging.registration import RegistrationConfig, register, resample_onto
from hepablate.schemas.segmentation import (
    BootstrapSettings,
    CaseEvaluation,
    LesionEvaluation,
    LesionRecord,
    MarginEvaluation,
    MarginRecord,
    OrganEvaluation,
    SegmentEvaluation,
    TaskEvaluation,
)
from hepablate.segment.bundle import Segmenter, segmenter_id
from hepablate.segment.data import DEFAULT_TASKS, TaskSpec
from hepablate.segment.errors import SegmentError
from hepablate.segment.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    DETECTION_RULE,
    LesionMatch,
    dice,
    lesion_instances,
    lesion_records,
    match_lesions,
    recall_by_size,
    summarise,
    surface_scores,
)
from hepablate.segment.predict import segment_scan

__all__ = ["ZONE_RULE", "evaluate_segmenter", "is_segment_evaluation"]

ZONE_RULE = (
    "the predicted zone of a manual tumour is the union of the predicted zone's connected "
    "components (26-connectivity, on the pre-CT grid after registering the post CT, guided by "
    "the manual livers) that overlap the tumour's manual zone; the predicted tumour is the one "
    "matched to it by the detection rule; both margins by "
    "hepablate.features.margin.minimal_ablative_margin_mm on the same registration"
)
# The tasks whose lesions are tumours and zones (the margin needs one of each).
TUMOUR_TASK, ZONE_TASK = "pre", "post"

_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True, eq=False)
class _Masks:
    """One task's masks of a patient on the scan's grid: the liver (None: no liver mask) and
    the lesions as a label map (manual: the cohort's labels; predicted: one per component)."""

    liver: np.ndarray | None
    lesions: np.ndarray


@dataclass
class _Patient:
    """What one patient gives the evaluation, per task."""

    cases: dict[str, CaseEvaluation] = field(default_factory=dict)
    lesions: dict[str, list[LesionRecord]] = field(default_factory=dict)
    margins: list[MarginRecord] = field(default_factory=list)


def _read(path: Path) -> Volume:
    try:
        return read_volume(path)
    except ImageReadError as exc:
        raise SegmentError(str(exc)) from None


def _spacing_zyx(volume: Volume) -> tuple[float, float, float]:
    sx, sy, sz = volume.grid.spacing_mm
    return (sz, sy, sx)


def _tasks(segmenter: Segmenter, cohort: Cohort) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The tasks to evaluate (task -> its patients: a scan and a manual lesion mask) and the
    tasks left out (task -> why); a SegmentError naming the file when nothing is left."""
    tasks: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for name, task in segmenter.plan.tasks.items():
        spec = task.spec
        patients = [
            p
            for p in cohort.patient_ids
            if spec.scan in cohort.images.get(p, {}) and spec.lesion in cohort.images.get(p, {})
        ]
        if patients:
            tasks[name] = patients
        else:
            skipped[name] = f"no patient has both {spec.scan} and a manual {spec.lesion} mask"
    unsegmentable = []
    for name, spec in DEFAULT_TASKS.items():
        if name in segmenter.plan.tasks:
            continue
        has = [p for p in cohort.patient_ids if spec.lesion in cohort.images.get(p, {})]
        if has:
            skipped[name] = f"the bundle has no network for task {name}"
            unsegmentable.append(f"{name} ({spec.lesion})")
    if tasks:
        return tasks, skipped
    if unsegmentable:
        raise SegmentError(
            f"{segmenter.path}: has no network for the tasks whose manual masks the cohort has: "
            f"{', '.join(unsegmentable)} (it has {', '.join(segmenter.plan.tasks)})"
        )
    wanted = ", ".join(f"{t.spec.scan} with {t.spec.lesion}" for t in segmenter.plan.tasks.values())
    raise SegmentError(
        f"{cohort.root / 'cohort.yaml'}: no patient has the manual masks to evaluate against "
        f"({wanted})"
    )


def _manual(cohort: Cohort, patient: str, spec: TaskSpec, lesions: Volume) -> _Masks:
    images = cohort.images[patient]
    liver = None
    if spec.liver is not None and spec.liver in images:
        liver = _read(images[spec.liver]).array > 0
    return _Masks(liver=liver, lesions=lesions.array.astype(np.int64))


def _predicted_file(folder: Path, patient: str, name: str) -> Path | str:
    """The predicted mask ``name`` of a patient, or the problem (naming the file)."""
    candidates = find_image(folder, name) if folder.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    found = "none" if not candidates else ", ".join(p.name for p in candidates)
    return (
        f"{folder / (name + '.nii.gz')}: the predicted {name} mask of patient {patient} is "
        f"needed (one file named {name}.*; found {found})"
    )


def _check_predicted(folder: Path, tasks: dict[str, list[str]], segmenter: Segmenter) -> None:
    """Every predicted mask the evaluation will read is there, before any work."""
    if not (folder / "images").is_dir():
        raise SegmentError(
            f"{folder / 'images'}: no such folder (the predicted masks are read from "
            "<folder>/images/<patient>/, as segment predict writes them for a cohort)"
        )
    problems = []
    for name, patients in tasks.items():
        spec = segmenter.plan.tasks[name].spec
        for patient in patients:
            for mask in [spec.lesion, *([spec.liver] if spec.liver else [])]:
                found = _predicted_file(folder / "images" / patient, patient, mask)
                if isinstance(found, str):
                    problems.append(found)
    if problems:
        raise SegmentError("\n".join(problems))


def _read_predicted(
    folder: Path, patient: str, spec: TaskSpec, scan: Volume, scan_path: Path
) -> _Masks:
    """A patient's predicted masks of one task from ``folder`` (checked on the scan's grid)."""
    arrays: dict[str, np.ndarray] = {}
    for name in [spec.lesion, *([spec.liver] if spec.liver else [])]:
        path = _predicted_file(folder, patient, name)
        if isinstance(path, str):  # checked before any work (_check_predicted)
            raise SegmentError(path)
        volume = _read(path)
        differences = scan.grid.differences(volume.grid)
        if differences:
            raise SegmentError(f"{path}: not on the grid of {scan_path} ({'; '.join(differences)})")
        arrays[name] = volume.array
    liver = arrays[spec.liver] > 0 if spec.liver else None
    return _Masks(liver=liver, lesions=lesion_instances(arrays[spec.lesion]))


def _case(
    patient: str,
    manual: _Masks,
    predicted: _Masks,
    match: LesionMatch,
    spacing: tuple[float, float, float],
) -> CaseEvaluation:
    liver_dice = hd95 = asd = None
    if manual.liver is not None and predicted.liver is not None:
        scores = surface_scores(predicted.liver, manual.liver, spacing)
        liver_dice, hd95, asd = scores.dice, scores.hd95_mm, scores.asd_mm
    manual_lesion, predicted_lesion = manual.lesions > 0, predicted.lesions > 0
    return CaseEvaluation(
        patient=patient,
        liver_dice=liver_dice,
        liver_hd95_mm=hd95,
        liver_asd_mm=asd,
        lesion_dice=dice(predicted_lesion, manual_lesion),
        manual_lesions=len(match.manual_voxels),
        predicted_lesions=match.predicted,
        detected=sum(match.detected.values()),
        false_positives=len(match.false_positives),
        lesion_voxels_manual=int(manual_lesion.sum()),
        lesion_voxels_predicted=int(predicted_lesion.sum()),
        lesion_voxels_both=int((manual_lesion & predicted_lesion).sum()),
    )


@dataclass(frozen=True, eq=False)
class _TaskResult:
    """A task's masks of one patient, kept for the margins."""

    scan: Volume
    lesions: Volume  # the manual lesion mask (its grid is the scan's)
    manual: _Masks
    predicted: _Masks
    match: LesionMatch


def _as_volume(mask: np.ndarray | None, like: Volume) -> Volume | None:
    return None if mask is None else Volume(mask.astype(np.uint8), like.grid)


def _margin(
    tumour: np.ndarray,
    zone: np.ndarray,
    spacing: tuple[float, float, float],
    liver: np.ndarray | None,
) -> tuple[float | None, str | None]:
    """The margin, or None and why: a fit that fails loses this tumour's margin only, as in
    extraction."""
    try:
        return minimal_ablative_margin_mm(tumour, zone, spacing, liver=liver), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _margins(patient: str, tumours: _TaskResult, zones: _TaskResult) -> list[MarginRecord]:
    """Each manual tumour's margin from the manual and from the automatic masks (module doc)."""
    ids = sorted(tumours.match.manual_voxels)
    manual_liver = tumours.manual.liver
    try:
        result = register(
            tumours.scan,
            zones.scan,
            fixed_liver=_as_volume(manual_liver, tumours.lesions),
            moving_liver=_as_volume(zones.manual.liver, zones.lesions),
            config=RegistrationConfig(),
        )
        failure = None if result.ok else result.reason
    except Exception as exc:  # a registration that raises has failed like any other
        failure = str(exc)
    if failure is not None:
        return [
            MarginRecord(
                patient=patient,
                tumour=t,
                manual_mm=None,
                automatic_mm=None,
                error_mm=None,
                note=f"registration failed: {failure}",
            )
            for t in ids
        ]
    manual_zones = resample_onto(zones.lesions, tumours.lesions, result.transform).array
    predicted_zone = Volume((zones.predicted.lesions > 0).astype(np.uint8), zones.lesions.grid)
    predicted_on_pre = resample_onto(predicted_zone, tumours.lesions, result.transform).array
    components, _ = ndimage.label(predicted_on_pre > 0, structure=_CONNECTIVITY)
    spacing = _spacing_zyx(tumours.lesions)
    records = []
    for tumour_id in ids:
        zone = manual_zones == tumour_id
        if not zone.any():
            records.append(
                MarginRecord(
                    patient=patient,
                    tumour=tumour_id,
                    manual_mm=None,
                    automatic_mm=None,
                    error_mm=None,
                    note=f"no manual zone {tumour_id} on the pre-CT grid after registration",
                )
            )
            continue
        manual, failure = _margin(tumours.manual.lesions == tumour_id, zone, spacing, manual_liver)
        automatic: float | None = None
        note: str | None = None
        overlapping = np.unique(components[zone & (components > 0)])
        if manual is None:
            note = f"the margin from the manual masks failed: {failure}"
        elif not tumours.match.detected[tumour_id]:
            note = "the tumour was not detected"
        elif overlapping.size == 0:
            note = "no predicted zone overlaps its manual zone"
        else:
            automatic, failure = _margin(
                tumours.predicted.lesions == tumours.match.best[tumour_id],
                np.isin(components, overlapping),
                spacing,
                tumours.predicted.liver,
            )
            if automatic is None:
                note = f"the margin from the automatic masks failed: {failure}"
        records.append(
            MarginRecord(
                patient=patient,
                tumour=tumour_id,
                manual_mm=manual,
                automatic_mm=automatic,
                error_mm=None if automatic is None or manual is None else automatic - manual,
                note=note,
            )
        )
    return records


def _evaluate_patient(
    segmenter: Segmenter,
    cohort: Cohort,
    patient: str,
    tasks: list[str],
    predicted_dir: Path | None,
) -> _Patient:
    out = _Patient()
    results: dict[str, _TaskResult] = {}
    for name in tasks:
        spec = segmenter.plan.tasks[name].spec
        scan_path = cohort.images[patient][spec.scan]
        scan = _read(scan_path)
        lesions = _read(cohort.images[patient][spec.lesion])
        manual = _manual(cohort, patient, spec, lesions)
        if predicted_dir is None:
            segmentation = segment_scan(segmenter, name, scan, scan_path)
            predicted = _Masks(
                liver=None if segmentation.liver is None else segmentation.liver.array > 0,
                lesions=segmentation.lesions.array.astype(np.int64),
            )
        else:
            folder = predicted_dir / "images" / patient
            predicted = _read_predicted(folder, patient, spec, scan, scan_path)
        match = match_lesions(manual.lesions, predicted.lesions)
        spacing = _spacing_zyx(scan)
        out.cases[name] = _case(patient, manual, predicted, match, spacing)
        out.lesions[name] = lesion_records(patient, match, float(np.prod(spacing)))
        results[name] = _TaskResult(scan, lesions, manual, predicted, match)
    if TUMOUR_TASK in results and ZONE_TASK in results:
        out.margins = _margins(patient, results[TUMOUR_TASK], results[ZONE_TASK])
    return out


def _task_evaluation(
    name: str, spec: TaskSpec, cases: list[CaseEvaluation], lesions: list[LesionRecord]
) -> TaskEvaluation:
    liver = None
    if any(c.liver_dice is not None for c in cases):
        liver = OrganEvaluation(
            dice=summarise([c.liver_dice for c in cases]),
            hd95_mm=summarise([c.liver_hd95_mm for c in cases]),
            asd_mm=summarise([c.liver_asd_mm for c in cases]),
        )
    pooled = sum(c.lesion_voxels_manual + c.lesion_voxels_predicted for c in cases)
    both = sum(c.lesion_voxels_both for c in cases)
    detected = [r for r in lesions if r.detected]
    return TaskEvaluation(
        task=name,
        scan=spec.scan,
        liver_mask=spec.liver,
        lesion_mask=spec.lesion,
        lesion_name=spec.lesion_name,
        cases=cases,
        liver=liver,
        lesions=LesionEvaluation(
            detection_rule=DETECTION_RULE,
            global_dice=2.0 * both / pooled if pooled else None,
            dice=summarise([c.lesion_dice for c in cases]),
            recall=len(detected) / len(lesions) if lesions else None,
            recall_by_size=recall_by_size(lesions),
            false_positives_per_case=(
                sum(c.false_positives for c in cases) / len(cases) if cases else None
            ),
            detected_dice=summarise([r.dice for r in detected]),
            lesions=lesions,
        ),
    )


def _margin_evaluation(records: list[MarginRecord]) -> MarginEvaluation:
    errors = [r.error_mm for r in records if r.error_mm is not None]
    return MarginEvaluation(
        zone_rule=ZONE_RULE,
        measured=len(errors),
        missed=sum(r.manual_mm is not None and r.automatic_mm is None for r in records),
        not_measured=sum(r.manual_mm is None for r in records),
        absolute_error_mm=summarise([abs(e) for e in errors]),
        signed_error_mm=summarise(errors),
        tumours=records,
    )


def evaluate_segmenter(
    segmenter: Segmenter,
    cohort: Cohort,
    *,
    predicted: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SegmentEvaluation:
    """Evaluate ``segmenter`` on every patient of ``cohort`` with manual masks (module doc).

    ``predicted``: a folder of already predicted masks (``<predicted>/images/<patient>/``, as
    ``segment predict`` writes them for a cohort) read instead of segmenting. Raises a
    ``SegmentError`` naming the file for a cohort without manual masks, a bundle without any
    of the cohort's tasks, a predicted mask that is missing or on another grid.
    """
    tasks, skipped = _tasks(segmenter, cohort)
    patients = [p for p in cohort.patient_ids if any(p in ps for ps in tasks.values())]
    if predicted is not None:
        _check_predicted(predicted, tasks, segmenter)
    per_patient: list[_Patient] = []
    for done, patient in enumerate(patients, start=1):
        wanted = [t for t, ps in tasks.items() if patient in ps]
        per_patient.append(_evaluate_patient(segmenter, cohort, patient, wanted, predicted))
        if progress is not None:
            progress(done, len(patients))
    evaluated = {}
    for name in tasks:
        cases = [p.cases[name] for p in per_patient if name in p.cases]
        lesions = [r for p in per_patient for r in p.lesions.get(name, [])]
        evaluated[name] = _task_evaluation(name, segmenter.plan.tasks[name].spec, cases, lesions)
    margins = None
    if TUMOUR_TASK in tasks and ZONE_TASK in tasks:
        margins = _margin_evaluation([r for p in per_patient for r in p.margins])
    return SegmentEvaluation(
        bundle_id=segmenter_id(segmenter.path),
        bundle=str(segmenter.path),
        cohort=str(cohort.root),
        predicted=None if predicted is None else str(predicted),
        bootstrap=BootstrapSettings(
            resamples=BOOTSTRAP_RESAMPLES,
            confidence=CONFIDENCE,
            seed=BOOTSTRAP_SEED,
            method="percentile, resampling patients (tumours for the margin and lesion Dice)",
        ),
        tasks=evaluated,
        skipped=skipped,
        margins=margins,
    )


def is_segment_evaluation(path: Path) -> bool:
    """Whether ``path`` is an ``evaluation.json`` of ``segment evaluate`` (one it may
    replace)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == "segment-evaluation"
