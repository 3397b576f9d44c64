"""One patient of a DICOM import: its image series read and classified (scan, mask series or
neither), its scans chosen (pre-treatment and post-ablation by date) and its masks attached to
the scan they lie on, every problem collected (``PatientImport``)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from hepablate.cohort.dicom_files import (
    MASK_OBJECTS,
    DicomFile,
    PatientRule,
    describe_folders,
)
from hepablate.cohort.dicom_masks import MaskNames, NamedMask
from hepablate.cohort.image_plausibility import binary_values, scan_problem
from hepablate.imaging.io import ImageReadError, Volume, read_volume
from hepablate.imaging.segmentations import read_dicom_seg, read_rtstruct

__all__ = [
    "MaskPart",
    "PatientImages",
    "PatientImport",
]

_SCAN_MODALITIES = ("CT", "MR")


@dataclass
class _Series:
    files: list[DicomFile]
    volume: Volume | None = None
    folder: Path | None = None  # the series alone, as symbolic links, for the readers

    @property
    def head(self) -> DicomFile:
        return self.files[0]

    @property
    def label(self) -> str:
        head = self.head
        described = f" ({head.description!r})" if head.description else ""
        return f"{head.modality} series in {head.folder.as_posix() or '.'}{described}"


@dataclass
class _Scan:
    series: _Series
    study_uid: str
    when: datetime | None

    @property
    def volume(self) -> Volume:
        assert self.series.volume is not None
        return self.series.volume


@dataclass
class MaskPart:
    """One mask found for a scan (a segment, ROI or mask series), on the scan's grid."""

    named: NamedMask
    voxels: np.ndarray  # bool, on the scan's grid
    source: str


@dataclass
class PatientImages:
    """One patient's chosen scans (pre-treatment first) and the masks found on each."""

    scans: list[_Scan]
    masks: list[list[MaskPart]]  # per scan


def _read_series(series: _Series, workdir: Path) -> Volume:
    folder = Path(tempfile.mkdtemp(dir=workdir))
    for k, file in enumerate(series.files):
        (folder / f"{k:05d}.dcm").symlink_to(file.path.resolve())
    series.folder = folder
    series.volume = read_volume(folder)
    return series.volume


class PatientImport:
    """Read, classify and check one patient's files; collect its problems and notes."""

    def __init__(
        self, key: str, files: list[DicomFile], names: MaskNames, rule: PatientRule
    ) -> None:
        self.key, self.files, self.names, self.rule = key, files, names, rule
        self.where = (
            f"PatientID {key or '(blank)'}"
            if rule is PatientRule.PATIENT_ID
            else (f"folder {key}" if rule is PatientRule.FOLDER else f"study {key}")
        )
        self.problems: list[str] = []
        self.notes: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.where}: {text}")

    def run(self, workdir: Path) -> PatientImages | None:
        images: dict[tuple[PurePosixPath, str], _Series] = {}
        objects = [f for f in self.files if f.modality in MASK_OBJECTS]
        for file in self.files:
            if file.modality not in MASK_OBJECTS:
                # Keyed by folder too: some data sets give their mask series the CT's UID.
                images.setdefault((file.folder, file.series_uid), _Series([])).files.append(file)
        scans_by_study: dict[str, list[_Series]] = {}
        mask_series: list[tuple[_Series, NamedMask]] = []
        for series in images.values():
            try:
                volume = _read_series(series, workdir)
            except ImageReadError as exc:
                if len(series.files) == 1:  # a scout, a dose report, a key image: not a volume
                    self.notes.append(f"{series.label}: one image, not a volume")
                else:
                    self.problem(f"{series.label}: {exc.reason}")
                continue
            classified = self._classify(series, volume)
            if classified == "scan":
                scans_by_study.setdefault(series.head.study_uid, []).append(series)
            elif classified is not None:
                mask_series.append(classified)
        if self.problems:
            return None
        scans = self._scans(scans_by_study, objects, mask_series)
        if scans is None:
            return None
        masks: list[list[MaskPart]] = [[] for _ in scans]
        self._attach_series(scans, masks, mask_series)
        self._attach_objects(scans, masks, objects)
        if self.problems:
            return None
        return PatientImages(scans, masks)

    def _classify(
        self, series: _Series, volume: Volume
    ) -> Literal["scan"] | tuple[_Series, NamedMask] | None:
        values = binary_values(volume.array)
        if values is None:
            if series.head.modality not in _SCAN_MODALITIES:
                self.notes.append(f"{series.label}: not a CT or MR scan and not a binary mask")
                return None
            problem = scan_problem(volume.array, series.head.modality)
            if problem is not None:
                self.problem(
                    f"{series.label} is neither a mask (it has more than two values) "
                    f"nor a scan: {problem}"
                )
                return None
            return "scan"
        named = self._name_of_series(series)
        if named is None:
            return None
        if len(values) == 1:
            self.problem(
                f"{series.label}: a mask series of {named.structure} holding only "
                f"the value {values[0]:g}: an empty mask?"
            )
            return None
        # The larger of the two values is the structure (0/255, 0/1, or -1024/-769 rescaled);
        # only the structure's voxels are kept (a byte each, not the series' two or four).
        series.volume = Volume(array=volume.array == values[1], grid=volume.grid)
        return series, named

    def _name_of_series(self, series: _Series) -> NamedMask | None:
        candidates = [("description", series.head.description)]
        if series.head.folder.parts:
            candidates.append(("folder name", series.head.folder.name))
        named = {what: self.names(text) for what, text in candidates if text}
        found = {what: n for what, n in named.items() if n is not None}
        if not found:
            self.notes.append(
                f"{series.label}: a binary (mask) series whose description and folder name "
                "match no mask-names rule; add one with --mask-names to import it"
            )
            return None
        if len({(n.structure, n.number) for n in found.values()}) > 1:
            said = "; ".join(
                f"{what} says {n.structure} {n.number or ''}".strip() for what, n in found.items()
            )
            self.problem(f"{series.label}: its names disagree ({said})")
            return None
        named_as = next(iter(found.values()))
        if named_as.structure == "ignore":
            self.notes.append(f"{series.label}: ignored by a mask-names rule")
            return None
        return named_as

    def _scans(
        self,
        by_study: dict[str, list[_Series]],
        objects: list[DicomFile],
        masks: list[tuple[_Series, NamedMask]],
    ) -> list[_Scan] | None:
        referenced = {f.referenced for f in objects}
        chosen: list[_Scan] = []
        for study, candidates in by_study.items():
            if len(candidates) > 1:
                candidates = (
                    [s for s in candidates if s.head.series_uid in referenced]
                    or [s for s in candidates if any(_same_grid(s, m) for m, _ in masks)]
                    or candidates
                )
            if len(candidates) != 1:
                labels = "; ".join(s.label for s in candidates)
                self.problem(
                    f"study {study or '(blank StudyInstanceUID)'}: {len(candidates)} scan series "
                    f"({labels}) and no "
                    "segmentation or mask series on only one of them; keep one series"
                )
                continue
            series = candidates[0]
            chosen.append(_Scan(series, study, series.head.when))
        if self.problems:
            return None
        if not chosen:
            self.problem(f"no CT or MR scan series (folders {describe_folders(self.files)})")
            return None
        if len(chosen) > 2:
            chosen.sort(key=lambda s: s.when or datetime.min)
            studies = "; ".join(
                f"{_day(s.when)} in {s.series.head.folder.as_posix() or '.'}" for s in chosen
            )
            self.problem(
                f"{len(chosen)} studies with a scan ({studies}); a patient has a pre-treatment "
                "study and at most one post-ablation study: remove the others, or tell the "
                "patients apart with --patient-from folder or --patient-from study"
            )
            return None
        if len(chosen) == 2:
            if self.rule is PatientRule.PATIENT_ID and not self.key:
                self.problem(
                    f"a blank PatientID on two studies (folders {describe_folders(self.files)}): "
                    "nothing says they are one patient; use --patient-from folder (one patient "
                    "per folder) or --patient-from study (one patient per study)"
                )
                return None
            first, second = chosen
            if first.when is None or second.when is None or first.when == second.when:
                self.problem(
                    "two studies with a scan but no study date (and time) to tell which came "
                    f"first (folders {describe_folders(self.files)})"
                )
                return None
            chosen.sort(key=lambda s: s.when or datetime.min)
        return chosen

    def _attach_series(
        self,
        scans: list[_Scan],
        masks: list[list[MaskPart]],
        found: list[tuple[_Series, NamedMask]],
    ) -> None:
        for series, named in found:
            assert series.volume is not None
            on = [k for k, scan in enumerate(scans) if _same_grid(scan.series, series)]
            if len(on) > 1:  # pre and post on one grid: the scan of the mask's own study
                on = [k for k in on if scans[k].study_uid == series.head.study_uid] or on
            if len(on) != 1:
                differences = "; ".join(scans[0].volume.grid.differences(series.volume.grid))
                why = (
                    f"not on the grid of any scan ({differences} from the pre-treatment scan)"
                    if not on
                    else "on the grids of both scans, and in the study of neither"
                )
                self.problem(f"{series.label}: a mask series of {named.structure} {why}")
                continue
            masks[on[0]].append(MaskPart(named, series.volume.array, series.label))

    def _attach_objects(
        self, scans: list[_Scan], masks: list[list[MaskPart]], objects: list[DicomFile]
    ) -> None:
        by_uid = {
            s.series.head.series_uid: k for k, s in enumerate(scans) if s.series.head.series_uid
        }
        for file in objects:
            k = by_uid.get(file.referenced or "")
            where = file.folder / file.path.name
            if k is None:
                self.problem(
                    f"{where}: the {file.modality} refers to series {file.referenced}, "
                    "which is not a scan of this patient"
                )
                continue
            scan = scans[k]
            assert scan.series.folder is not None
            try:
                segments = (
                    read_dicom_seg(file.path, scan.volume, scan.series.folder)
                    if file.modality == "SEG"
                    else read_rtstruct(file.path, scan.volume)
                )
            except ImageReadError as exc:
                self.problem(f"{where}: {exc.reason}")
                continue
            for name, volume in segments.items():
                named = self.names(name)
                if named is None or named.structure == "ignore":
                    why = "no mask-names rule" if named is None else "ignored by a rule"
                    self.notes.append(f"{where}: segment {name!r} not imported ({why})")
                    continue
                masks[k].append(MaskPart(named, volume.array > 0, f"segment {name!r} of {where}"))


def _same_grid(a: _Series, b: _Series) -> bool:
    assert a.volume is not None and b.volume is not None
    return not a.volume.grid.differences(b.volume.grid)


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"
