"""One patient segmented and written in the cohort format, its zones matched to its tumours.

:func:`segment_patient` segments each scan with its task's network (:mod:`.predict`). With a
pre- and a post-ablation CT it registers the post CT onto the pre CT as extraction does
(:func:`hepablate.imaging.registration.register`, the predicted livers guiding it and giving
its quality), moves the zone components into the pre CT's frame and matches them to the
tumours (:mod:`.match`): the manual ``pre_tumours`` when given, else the predicted ones. Zones
stay on the post CT's grid, labelled with their tumour's id; zones matched to no tumour are
not written as any tumour's zone but into ``post_ablation_unmatched.nii.gz``. A post CT without
a pre CT (or whose registration failed) keeps the 1..n by volume numbering, or has every zone
unmatched, and ``segmentation.json`` says which.

With manual tumours, ``pre_tumours.nii.gz`` is the manual mask as given (the masks then form
one consistent set: manual tumours, predicted livers, zones of those tumours); the network's
tumours are written as ``pre_tumours_predicted.nii.gz``, renumbered to the manual tumour each
covers (the same rule), those covering none into ``pre_tumours_unmatched.nii.gz``.

``segmentation.json`` (:class:`SegmentationRecord`) records per scan the masks written, how the
lesions are numbered and why, each lesion's volume and probability (the mean of the lesion
class's probability over its voxels), each match (tumour, overlap share, how, distance), the
unmatched lesions, the registration, and the DICOM-SEG written (a scan read from a DICOM
series gets one, ``<lesion mask>.dcm``; a NIfTI, NRRD or MetaImage scan none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict

from hepablate.imaging.io import Volume, write_volume
from hepablate.imaging.registration import RegistrationConfig, register, resample_onto
from hepablate.schemas import dump_json
from hepablate.segment.bundle import Segmenter, segmenter_id
from hepablate.segment.dicom_seg import SegSegment, write_seg
from hepablate.segment.errors import SegmentError
from hepablate.segment.match import Matching, Unmatched, match_lesions
from hepablate.segment.predict import Segmentation, read_scan, segment_scan, task_of_folder

__all__ = [
    "POST",
    "PRE",
    "SEGMENTATION_FILE",
    "LesionRecord",
    "PatientSegmentation",
    "RegistrationRecord",
    "ScanRecord",
    "SegmentationRecord",
    "UnmatchedRecord",
    "segment_patient",
]

SEGMENTATION_FILE = "segmentation.json"
PRE, POST = "pre", "post"  # the tasks of hepablate.segment.data.DEFAULT_TASKS

Numbering = Literal["volume", "tumours", "manual"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LesionRecord(_Closed):
    """A lesion of a written mask."""

    label: int  # its value in the mask (a tumour's id once matched)
    volume_ml: float
    probability: float | None  # mean lesion-class probability; None for a manual tumour
    components: int = 1  # connected components merged into it (all matched to one tumour)
    tumour: int | None = None  # the tumour it was matched to (its label), if matched
    overlap_share: float | None = None  # the share of that tumour's voxels inside it
    matched_by: Literal["overlap", "nearest_centroid"] | None = None
    distance_mm: float | None = None  # its centroid to the tumour's, in the pre CT's frame


class UnmatchedRecord(_Closed):
    """A lesion the network found that belongs to no tumour (not in the lesion mask)."""

    label: int  # its value in ``<lesion mask>_unmatched.nii.gz``
    volume_ml: float
    probability: float
    reason: str


class RegistrationRecord(_Closed):
    """The post CT registered onto the pre CT, with the predicted livers (as extraction's
    ``qa.registration_*`` columns)."""

    ok: bool
    liver_dice_before: float | None
    liver_dice: float | None
    note: str


class ScanRecord(_Closed):
    task: str
    scan: str
    masks: dict[str, str]  # mask name -> file written, beside segmentation.json
    numbering: Numbering
    numbering_note: str
    lesions: list[LesionRecord]  # of the lesion mask
    unmatched: list[UnmatchedRecord]
    # With manual tumours: the network's tumours (``pre_tumours_predicted``), matched to them.
    predicted: list[LesionRecord] | None = None
    dicom_seg: str | None
    dicom_seg_note: str


class SegmentationRecord(_Closed):
    """``segmentation.json``: what ``segment_patient`` wrote and how it numbered the lesions."""

    schema_version: Literal[1] = 1
    segmenter: str  # the bundle's id (SHA-256 of its manifest)
    tta: bool
    tumours: Literal["predicted", "manual", "none"]  # what the zones were matched to
    manual_tumours: str | None
    registration: RegistrationRecord | None
    scans: dict[str, ScanRecord]


@dataclass(frozen=True)
class PatientSegmentation:
    """Where ``segment_patient`` wrote a patient's masks: ``folder``, the mask files by mask
    name (``liver``, ``pre_tumours``, ``post_liver``, ``post_ablation`` ...) and the record
    written as ``folder/segmentation.json``."""

    folder: Path
    masks: dict[str, Path]
    record: SegmentationRecord


@dataclass
class _Scan:
    task: str
    path: Path
    volume: Volume
    found: Segmentation


def _scans(segmenter: Segmenter, scans: Path | Mapping[str, Path]) -> dict[str, Path]:
    if isinstance(scans, Path):
        found = task_of_folder(segmenter, scans)
        if not found:
            names = ", ".join(t.spec.scan for t in segmenter.plan.tasks.values())
            raise SegmentError(f"{scans}: holds no scan the segmenter segments ({names})")
        return found
    for task in scans:
        if task not in segmenter.plan.tasks:
            raise SegmentError(
                f"{scans[task]}: task {task!r} is not one of the segmenter's "
                f"({', '.join(segmenter.plan.tasks)})"
            )
    return dict(scans)


def _manual_tumours(manual: Path | Volume | None, pre: _Scan | None) -> Volume | None:
    if manual is None:
        return None
    volume = read_scan(manual) if isinstance(manual, Path) else manual
    name = manual if isinstance(manual, Path) else "the manual tumours"
    values = volume.array
    if float(values.min(initial=0)) < 0 or not np.array_equal(values, np.round(values)):
        raise SegmentError(f"{name}: not a label map of tumour ids (0, 1, 2 ...)")
    if not np.issubdtype(values.dtype, np.integer):
        volume = Volume(values.astype(np.int32), volume.grid)
    if pre is not None:
        differences = volume.grid.differences(pre.volume.grid)
        if differences:
            raise SegmentError(f"{name}: not on the grid of {pre.path} ({'; '.join(differences)})")
    return volume


def _merged(found: Segmentation, members: tuple[int, ...]) -> tuple[float, float]:
    """Volume (mL) and probability of the union of lesions ``members`` (labels 1..n)."""
    voxels = [found.lesion_voxels[c - 1] for c in members]
    volume = sum(found.lesion_volumes_ml[c - 1] for c in members)
    weighted = sum(
        found.lesion_probabilities[c - 1] * v for c, v in zip(members, voxels, strict=True)
    )
    return round(volume, 4), round(weighted / max(sum(voxels), 1), 4)


def _matched_records(
    found: Segmentation, matching: Matching
) -> tuple[list[LesionRecord], list[UnmatchedRecord]]:
    lesions = []
    for match in matching.matched:
        volume, probability = _merged(found, match.components)
        lesions.append(
            LesionRecord(
                label=match.tumour,
                volume_ml=volume,
                probability=probability,
                components=len(match.components),
                tumour=match.tumour,
                overlap_share=match.overlap_share,
                matched_by=match.matched_by,
                distance_mm=match.distance_mm,
            )
        )
    unmatched = [
        UnmatchedRecord(
            label=number,
            volume_ml=found.lesion_volumes_ml[item.component - 1],
            probability=found.lesion_probabilities[item.component - 1],
            reason=item.reason,
        )
        for number, item in enumerate(matching.unmatched, start=1)
    ]
    return lesions, unmatched


def _by_volume(found: Segmentation) -> list[LesionRecord]:
    return [
        LesionRecord(label=n, volume_ml=v, probability=p)
        for n, (v, p) in enumerate(
            zip(found.lesion_volumes_ml, found.lesion_probabilities, strict=True), start=1
        )
    ]


class _Writer:
    """Writes one patient's masks into ``out`` and keeps what it wrote."""

    def __init__(self, segmenter: Segmenter, out: Path) -> None:
        self.segmenter = segmenter
        self.out = out
        self.masks: dict[str, Path] = {}
        self.id = segmenter_id(segmenter.path)

    def mask(self, name: str, volume: Volume) -> None:
        path = self.out / f"{name}.nii.gz"
        write_volume(volume, path)
        self.masks[name] = path

    def liver(self, scan: _Scan) -> None:
        spec = self.segmenter.plan.tasks[scan.task].spec
        if spec.liver is not None and scan.found.liver is not None:
            self.mask(spec.liver, scan.found.liver)

    def dicom_seg(
        self, scan: _Scan, lesions: np.ndarray, numbers: list[int], manual: bool
    ) -> tuple[str | None, str]:
        """A DICOM-SEG of the scan's liver and ``lesions`` (labels ``numbers``), if the scan
        is a DICOM series: its file name (or None) and a note."""
        if not scan.path.is_dir():
            return None, "the scan is not a DICOM series (NIfTI, NRRD or MetaImage): no DICOM-SEG"
        spec = self.segmenter.plan.tasks[scan.task].spec
        segments = []
        if scan.found.liver is not None:
            segments.append(SegSegment("liver", None, scan.found.liver.array > 0))
        segments += [SegSegment(spec.lesion_name, n, lesions == n, manual=manual) for n in numbers]
        if not any(s.mask.any() for s in segments):
            return None, "no liver and no lesion to write: no DICOM-SEG"
        name = f"{spec.lesion}.dcm"
        write_seg(segments, scan.volume, scan.path, self.out / name, segmenter_id=self.id)
        return name, f"segments {', '.join(s.label for s in segments if s.mask.any())}"

    def relabelled(self, scan: _Scan, matching: Matching, name: str) -> np.ndarray:
        """Write the scan's lesions as matched under ``name``, the unmatched ones as
        ``<lesion mask>_unmatched``; return the matched label map."""
        found = scan.found.lesions
        matched, unmatched = matching.relabel(found.array)
        self.mask(name, Volume(matched, found.grid))
        if matching.unmatched:
            spec = self.segmenter.plan.tasks[scan.task].spec
            self.mask(f"{spec.lesion}_unmatched", Volume(unmatched, found.grid))
        return matched

    def record(self, scan: _Scan, **fields: object) -> ScanRecord:
        return ScanRecord.model_validate(
            {
                "task": scan.task,
                "scan": str(scan.path),
                "masks": {k: p.name for k, p in self.masks.items() if _of_task(self, k, scan)},
                **fields,
            }
        )


def _of_task(writer: _Writer, mask: str, scan: _Scan) -> bool:
    spec = writer.segmenter.plan.tasks[scan.task].spec
    return mask == spec.liver or mask.startswith(spec.lesion)


def _pre(writer: _Writer, scan: _Scan, manual: Volume | None, manual_name: str) -> ScanRecord:
    spec = writer.segmenter.plan.tasks[scan.task].spec
    writer.liver(scan)
    found = scan.found
    if manual is None:
        writer.mask(spec.lesion, found.lesions)
        numbers = list(range(1, len(found.lesion_volumes_ml) + 1))
        seg, seg_note = writer.dicom_seg(scan, found.lesions.array, numbers, manual=False)
        return writer.record(
            scan,
            numbering="volume",
            numbering_note="tumours numbered 1..n by decreasing volume",
            lesions=_by_volume(found),
            unmatched=[],
            dicom_seg=seg,
            dicom_seg_note=seg_note,
        )
    writer.mask(spec.lesion, manual)
    matching = match_lesions(
        found.lesions.array, len(found.lesion_volumes_ml), manual.array, manual.grid.spacing_mm
    )
    writer.relabelled(scan, matching, f"{spec.lesion}_predicted")
    predicted, unmatched = _matched_records(found, matching)
    ids = [int(t) for t in np.unique(manual.array) if t > 0]
    counts = np.bincount(manual.array.ravel().astype(np.int64))
    seg, seg_note = writer.dicom_seg(scan, manual.array, ids, manual=True)
    return writer.record(
        scan,
        numbering="manual",
        numbering_note=(
            f"{spec.lesion} is the manual mask {manual_name}; the network's tumours are in "
            f"{spec.lesion}_predicted, labelled with the manual tumour each covers"
        ),
        lesions=[
            LesionRecord(
                label=t,
                volume_ml=round(float(counts[t]) * manual.voxel_volume_ml, 4),
                probability=None,
            )
            for t in ids
        ],
        unmatched=unmatched,
        predicted=predicted,
        dicom_seg=seg,
        dicom_seg_note=seg_note,
    )


def _registered(
    pre: _Scan, post: _Scan, config: RegistrationConfig | None
) -> tuple[RegistrationRecord, sitk.Transform | None]:
    """Register the post CT onto the pre CT as extraction does; (record, transform or None)."""
    try:
        result = register(
            pre.volume,
            post.volume,
            fixed_liver=pre.found.liver,
            moving_liver=post.found.liver,
            config=config,
        )
    except Exception as exc:  # a registration that raises has failed like any other
        text = str(exc).strip().splitlines()
        reason = f"registration failed: {type(exc).__name__}: {text[0] if text else ''}"
        return RegistrationRecord(
            ok=False, liver_dice_before=None, liver_dice=None, note=reason
        ), None
    record = RegistrationRecord(
        ok=result.ok,
        liver_dice_before=None
        if result.liver_dice_before is None
        else round(result.liver_dice_before, 4),
        liver_dice=None if result.liver_dice is None else round(result.liver_dice, 4),
        note=result.reason,
    )
    return record, result.transform if result.ok else None


def _post(
    writer: _Writer,
    scan: _Scan,
    pre: _Scan | None,
    tumours: Volume | None,
    registration: RegistrationConfig | None,
) -> tuple[ScanRecord, RegistrationRecord | None]:
    spec = writer.segmenter.plan.tasks[scan.task].spec
    writer.liver(scan)
    found = scan.found
    count = len(found.lesion_volumes_ml)
    if pre is None or tumours is None:
        writer.mask(spec.lesion, found.lesions)
        numbers = list(range(1, count + 1))
        seg, seg_note = writer.dicom_seg(scan, found.lesions.array, numbers, manual=False)
        record = writer.record(
            scan,
            numbering="volume",
            numbering_note=(
                "only a post-ablation CT: zones numbered 1..n by decreasing volume, not matched "
                "to tumours (the cohort format wants zone n to be tumour n's; this mask is not "
                "one extraction can use as it is)"
            ),
            lesions=_by_volume(found),
            unmatched=[],
            dicom_seg=seg,
            dicom_seg_note=seg_note,
        )
        return record, None
    registered, transform = _registered(pre, scan, registration)
    if transform is None:
        matching = Matching(
            [], [Unmatched(c, f"not matched: {registered.note}") for c in range(1, count + 1)]
        )
        note = f"no zone matched to a tumour: {registered.note}"
    else:
        on_pre = resample_onto(found.lesions, tumours, transform).array
        matching = match_lesions(on_pre, count, tumours.array, tumours.grid.spacing_mm)
        note = (
            "each zone labelled with the tumour it treats (the post CT registered onto the pre "
            "CT; the tumour whose voxels the zone covers the largest share of, else the "
            "nearest by centroid)"
        )
    matched = writer.relabelled(scan, matching, spec.lesion)
    lesions, unmatched = _matched_records(found, matching)
    seg, seg_note = writer.dicom_seg(
        scan, matched, [m.tumour for m in matching.matched], manual=False
    )
    record = writer.record(
        scan,
        numbering="tumours",
        numbering_note=note,
        lesions=lesions,
        unmatched=unmatched,
        dicom_seg=seg,
        dicom_seg_note=seg_note,
    )
    return record, registered


def segment_patient(
    segmenter: Segmenter,
    scans: Path | Mapping[str, Path],
    out: Path,
    manual_tumours: Path | Volume | None = None,
    *,
    registration: RegistrationConfig | None = None,
) -> PatientSegmentation:
    """Segment a patient's scans and write the cohort format's masks into ``out``.

    Parameters
    ----------
    segmenter
        A loaded segmentation bundle.
    scans
        A patient folder (its ``pre_ct`` and/or ``post_ct``, as the cohort format names them)
        or the scans by task (``{"pre": path, "post": path}``; files or DICOM series folders).
    out
        The folder to write into (created): ``liver``, ``pre_tumours``, ``post_liver``,
        ``post_ablation`` (``.nii.gz``, each on its scan's grid), the unmatched lesions, a
        DICOM-SEG per DICOM scan and ``segmentation.json``.
    manual_tumours
        The manual ``pre_tumours`` (on the pre CT's grid) to match the zones to and to write
        as ``pre_tumours``; None matches them to the predicted tumours.
    registration
        The registration's settings (extraction's ``registration`` config); default
        :class:`~hepablate.imaging.registration.RegistrationConfig`.

    Raises
    ------
    SegmentError
        A scan that cannot be read or segmented, a task the segmenter lacks, manual tumours
        off the pre CT's grid; the message starts with the file.
    """
    paths = _scans(segmenter, scans)
    segmented = {}
    for task, path in sorted(paths.items()):
        volume = read_scan(path)
        segmented[task] = _Scan(task, path, volume, segment_scan(segmenter, task, volume, path))
    pre, post = segmented.get(PRE), segmented.get(POST)
    manual = _manual_tumours(manual_tumours, pre)
    manual_name = str(manual_tumours) if isinstance(manual_tumours, Path) else "given"
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(segmenter, out)
    records: dict[str, ScanRecord] = {}
    tumours: Volume | None = manual
    if pre is not None:
        records[PRE] = _pre(writer, pre, manual, manual_name)
        tumours = manual if manual is not None else pre.found.lesions
    registered = None
    if post is not None:
        records[POST], registered = _post(writer, post, pre, tumours, registration)
    matched_to: Literal["predicted", "manual", "none"] = "none"
    if pre is not None and post is not None:
        matched_to = "manual" if manual is not None else "predicted"
    record = SegmentationRecord(
        segmenter=writer.id,
        tta=segmenter.plan.inference.tta,
        tumours=matched_to,
        manual_tumours=None if manual is None else manual_name,
        registration=registered,
        scans=records,
    )
    (out / SEGMENTATION_FILE).write_text(dump_json(record), encoding="utf-8")
    return PatientSegmentation(folder=out, masks=dict(writer.masks), record=record)
