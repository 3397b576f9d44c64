"""``hepablate import-dicom``: a folder of DICOM studies into a de-identified cohort.

The layouts read (docs/cohort-format.md, section 7):

- **Patients** are told apart by a rule the user states (:class:`PatientRule`): by PatientID
  (the default), one per top-level folder, or one per study. Files that the rule would merge
  although nothing says they are one person (a blank PatientID over several studies; one
  PatientID with different names, birth dates or sexes; a folder holding two PatientIDs) are
  refused, naming the folders, never merged silently.
- **Scans**: per patient, each study with a CT or MR image series is a scan; one study is a
  pre-treatment-only patient (``pre_ct``), two are ``pre_ct`` and ``post_ct`` by date. In a
  study the series used is the one a DICOM-SEG or RTSTRUCT refers to, or the one the mask
  series lie on, or the only one. A scan must look like one
  (:mod:`hepablate.cohort.image_plausibility`).
- **Masks** come from DICOM-SEG segments, RTSTRUCT ROIs and mask *image series* (a series with
  one or two distinct values, e.g. 0/255, of any modality, as several public liver data sets
  ship them, on the grid of a scan). A binary series is never a scan. A mask's structure comes
  from its name (segment label, ROI name, or the series' description or folder) through the
  rules of a mask-names file (``hepablate/cohort/dicom_masks.yaml``, extended with
  ``--mask-names``): ``tumour N`` -> ``pre_tumours`` label N, ``ablation N`` -> ``post_ablation``
  label N, ``liver`` -> ``liver`` / ``post_liver``, vessels -> ``vessels``.

Every problem of every patient is collected and reported together before anything is written;
what is not imported (files that are not DICOM, objects of other modalities, masks without a
rule) is listed in the result. De-identification is by construction: images are written as
NIfTI (no header fields), patients get pseudonyms (``P0001``...) and the only time kept is the
days between the two scans. The link back (PatientID, name, folders, study UIDs and dates per
pseudonym) goes to a mapping file that the user keeps *outside* the cohort folder.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pydicom
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hepablate.cohort.image_plausibility import binary_values, scan_problem
from hepablate.imaging.io import ImageReadError, Volume, read_volume, write_volume
from hepablate.imaging.segmentations import read_dicom_seg, read_rtstruct

__all__ = ["DicomImportError", "ImportResult", "MaskNames", "PatientRule", "import_dicom"]

_SCAN_MODALITIES = ("CT", "MR")
# The mask-names rules shipped with the package (docs/cohort-format.md, section 7).
_SHIPPED_MASK_NAMES = Path(str(resources.files("hepablate.cohort") / "dicom_masks.yaml"))
_MASK_OBJECTS = ("SEG", "RTSTRUCT")


class DicomImportError(Exception):
    """The import cannot go on; one line per problem, naming the patient, folder or file."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PatientRule(StrEnum):
    """How files are grouped into patients."""

    PATIENT_ID = "patient-id"  # by the DICOM PatientID (refusing what it cannot tell apart)
    FOLDER = "folder"  # one patient per folder directly under the source folder
    STUDY = "study"  # one patient per study (StudyInstanceUID): every patient pre-treatment only


@dataclass
class ImportResult:
    """What an import did: the patients written and what it did not import, and why."""

    patients: list[str] = field(default_factory=list)  # one summary line per pseudonym
    not_dicom: list[str] = field(default_factory=list)
    not_imported: list[str] = field(default_factory=list)


# --- mask names ----------------------------------------------------------------------------------


Structure = Literal["tumour", "ablation", "liver", "vessels", "ignore"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str
    structure: Structure


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rules: list[_Rule]


@dataclass(frozen=True)
class _Named:
    structure: Structure
    number: int | None


class MaskNames:
    """The rules that turn a segment, ROI or series name into a structure (and a number)."""

    def __init__(self, extra: Path | None = None) -> None:
        files = [*([extra] if extra is not None else []), _SHIPPED_MASK_NAMES]
        self.rules: list[tuple[re.Pattern[str], Structure]] = []
        for path in files:
            self.rules += _load_rules(path)

    def __call__(self, name: str) -> _Named | None:
        text = _normalised(name)
        for pattern, structure in self.rules:
            match = pattern.fullmatch(text)
            if match:
                number = match.groupdict().get("n")
                return _Named(structure, int(number) if number else None)
        return None


def _normalised(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def _load_rules(path: Path) -> list[tuple[re.Pattern[str], Structure]]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = _RulesFile.model_validate(content).rules
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DicomImportError(f"{path}: cannot read the mask names: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DicomImportError(f"{path}: {where}: {first['msg']}") from None
    compiled = []
    for k, rule in enumerate(rules):
        try:
            compiled.append((re.compile(rule.pattern), rule.structure))
        except re.error as exc:
            raise DicomImportError(f"{path}: rule {k + 1}: {rule.pattern!r}: {exc}") from None
    return compiled


# --- the index of files --------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: Path
    folder: PurePosixPath  # relative to the source folder
    patient_id: str
    patient_name: str
    demographics: tuple[str, str, str]  # name (compared as written loosely), birth date, sex
    study_uid: str
    when: datetime | None
    modality: str
    series_uid: str
    description: str
    referenced: str | None  # the image series a SEG/RTSTRUCT was drawn on


def _text(dataset: pydicom.Dataset, keyword: str) -> str:
    return str(getattr(dataset, keyword, "") or "").strip()


def _when(day: str, time: str) -> datetime | None:
    try:
        moment = datetime.strptime(day[:8], "%Y%m%d")
    except ValueError:
        return None
    digits = time.split(".")[0]
    if len(digits) >= 4 and digits.isdigit():
        seconds = int(digits[4:6]) if len(digits) >= 6 else 0
        moment = moment.replace(hour=int(digits[:2]), minute=int(digits[2:4]), second=seconds)
    return moment


def _referenced_series(dataset: pydicom.Dataset) -> str | None:
    if dataset.Modality == "SEG":
        for item in getattr(dataset, "ReferencedSeriesSequence", []):
            return _text(item, "SeriesInstanceUID") or None
        return None
    for frame in getattr(dataset, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                return _text(series, "SeriesInstanceUID") or None
    return None


def _index(source: Path, result: ImportResult) -> tuple[list[_File], list[str]]:
    files: list[_File] = []
    problems: list[str] = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # pydicom raises several types for a file that is not DICOM
            result.not_dicom.append(relative.as_posix())
            continue
        modality = _text(dataset, "Modality")
        if not modality:
            result.not_imported.append(f"{relative.as_posix()}: a DICOM file without Modality")
            continue
        is_image = "Rows" in dataset and modality not in _MASK_OBJECTS
        if modality not in _MASK_OBJECTS and not is_image:
            result.not_imported.append(f"{relative.as_posix()}: a DICOM {modality} object")
            continue
        referenced = None
        if modality in _MASK_OBJECTS:
            referenced = _referenced_series(dataset)
            if referenced is None:
                problems.append(f"{relative.as_posix()}: the {modality} does not name its series")
                continue
        files.append(
            _File(
                path=path,
                folder=PurePosixPath(relative.parent.as_posix()),
                patient_id=_text(dataset, "PatientID"),
                patient_name=_text(dataset, "PatientName"),
                demographics=(
                    # DOE^JANE and DOE^JANE^^^ are one name, as exports write it
                    _text(dataset, "PatientName").rstrip("^ ").upper(),
                    _text(dataset, "PatientBirthDate"),
                    _text(dataset, "PatientSex"),
                ),
                study_uid=_text(dataset, "StudyInstanceUID"),
                when=_when(_text(dataset, "StudyDate"), _text(dataset, "StudyTime")),
                modality=modality,
                series_uid=_text(dataset, "SeriesInstanceUID"),
                description=_text(dataset, "SeriesDescription"),
                referenced=referenced,
            )
        )
    return files, problems


def _folders(files: Iterable[_File]) -> str:
    """The folders of ``files``, relative to the source; by their top folder when many."""
    folders = {f.folder for f in files}
    if len(folders) > 3:
        folders = {PurePosixPath(*f.parts[:1], "...") if f.parts else f for f in folders}
    names = sorted(f.as_posix() for f in folders)
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return shown or "."


def _group(files: list[_File], rule: PatientRule) -> tuple[dict[str, list[_File]], list[str]]:
    """Files by patient key under ``rule``, and the problems that make a grouping unsafe."""
    groups: dict[str, list[_File]] = {}
    problems: list[str] = []
    for file in files:
        if rule is PatientRule.PATIENT_ID:
            key = file.patient_id
        elif rule is PatientRule.STUDY:
            key = file.study_uid
        elif len(file.folder.parts) == 0:
            problems.append(
                f"{file.path.name}: lies directly in the source folder; with --patient-from "
                "folder each patient is a folder under it"
            )
            continue
        else:
            key = file.folder.parts[0]
        groups.setdefault(key, []).append(file)
    for key, members in groups.items():
        if rule is PatientRule.FOLDER:
            ids = sorted({f.patient_id for f in members} - {""})
            if len(ids) > 1:
                problems.append(
                    f"folder {key}: holds {len(ids)} PatientIDs ({', '.join(ids)}); one patient "
                    "per folder is expected (or use --patient-from patient-id)"
                )
            continue
        if rule is PatientRule.PATIENT_ID:
            for k, what in enumerate(("names", "birth dates", "sexes")):
                values = {f.demographics[k] for f in members} - {""}
                if len(values) > 1:
                    problems.append(
                        f"PatientID {key or '(blank)'}: files with {len(values)} different patient "
                        f"{what} share it (folders {_folders(members)}); they are not merged: tell "
                        "the patients apart with --patient-from folder or --patient-from study"
                    )
                    break
    return groups, problems


# --- one patient ---------------------------------------------------------------------------------


@dataclass
class _Series:
    files: list[_File]
    volume: Volume | None = None
    folder: Path | None = None  # the series alone, as symbolic links, for the readers

    @property
    def head(self) -> _File:
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
class _Mask:
    named: _Named
    voxels: np.ndarray  # bool, on the scan's grid
    source: str


@dataclass
class _Patient:
    scans: list[_Scan]
    masks: list[list[_Mask]]  # per scan


def _read_series(series: _Series, workdir: Path) -> Volume:
    folder = Path(tempfile.mkdtemp(dir=workdir))
    for k, file in enumerate(series.files):
        (folder / f"{k:05d}.dcm").symlink_to(file.path.resolve())
    series.folder = folder
    series.volume = read_volume(folder)
    return series.volume


class _PatientImport:
    """Read, classify and check one patient's files; collect its problems and notes."""

    def __init__(self, key: str, files: list[_File], names: MaskNames, rule: PatientRule) -> None:
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

    def run(self, workdir: Path) -> _Patient | None:
        images: dict[tuple[PurePosixPath, str], _Series] = {}
        objects = [f for f in self.files if f.modality in _MASK_OBJECTS]
        for file in self.files:
            if file.modality not in _MASK_OBJECTS:
                # Keyed by folder too: some data sets give their mask series the CT's UID.
                images.setdefault((file.folder, file.series_uid), _Series([])).files.append(file)
        scans_by_study: dict[str, list[_Series]] = {}
        mask_series: list[tuple[_Series, _Named]] = []
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
        masks: list[list[_Mask]] = [[] for _ in scans]
        self._attach_series(scans, masks, mask_series)
        self._attach_objects(scans, masks, objects)
        if self.problems:
            return None
        return _Patient(scans, masks)

    def _classify(
        self, series: _Series, volume: Volume
    ) -> Literal["scan"] | tuple[_Series, _Named] | None:
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

    def _name_of_series(self, series: _Series) -> _Named | None:
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
        objects: list[_File],
        masks: list[tuple[_Series, _Named]],
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
            self.problem(f"no CT or MR scan series (folders {_folders(self.files)})")
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
                    f"a blank PatientID on two studies (folders {_folders(self.files)}): "
                    "nothing says they are one patient; use --patient-from folder (one patient "
                    "per folder) or --patient-from study (one patient per study)"
                )
                return None
            first, second = chosen
            if first.when is None or second.when is None or first.when == second.when:
                self.problem(
                    "two studies with a scan but no study date (and time) to tell which came "
                    f"first (folders {_folders(self.files)})"
                )
                return None
            chosen.sort(key=lambda s: s.when or datetime.min)
        return chosen

    def _attach_series(
        self,
        scans: list[_Scan],
        masks: list[list[_Mask]],
        found: list[tuple[_Series, _Named]],
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
            masks[on[0]].append(_Mask(named, series.volume.array, series.label))

    def _attach_objects(
        self, scans: list[_Scan], masks: list[list[_Mask]], objects: list[_File]
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
                masks[k].append(_Mask(named, volume.array > 0, f"segment {name!r} of {where}"))


def _same_grid(a: _Series, b: _Series) -> bool:
    assert a.volume is not None and b.volume is not None
    return not a.volume.grid.differences(b.volume.grid)


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"


# --- the cohort ----------------------------------------------------------------------------------

# Which structure goes to which mask, on the pre-treatment scan (0) and the post-ablation scan (1).
_MASK_FILES: dict[tuple[int, str], str] = {
    (0, "tumour"): "pre_tumours",
    (0, "liver"): "liver",
    (0, "vessels"): "vessels",
    (1, "ablation"): "post_ablation",
    (1, "liver"): "post_liver",
}
_SCAN_FILES = ("pre_ct", "post_ct")
_ON = {"pre_tumours": 0, "liver": 0, "vessels": 0, "post_ablation": 1, "post_liver": 1}


def _label_map(parts: list[_Mask], like: Volume, what: str, problems: list[str]) -> np.ndarray:
    """Masks numbered N into one label map; a number twice or an overlap is a problem."""
    numbered: dict[int, _Mask] = {}
    unnumbered = [m for m in parts if m.named.number is None]
    if unnumbered and len(parts) > 1:
        problems.append(
            f"{what}: {unnumbered[0].source} has no number, but there are {len(parts)} "
            f"{what} masks; number them (e.g. '{what} 1')"
        )
        return np.zeros(like.array.shape, dtype=np.uint8)
    for mask in parts:
        number = mask.named.number or 1
        if number in numbered:
            problems.append(f"{what} {number} twice: {numbered[number].source} and {mask.source}")
        numbered[number] = mask
    labels = np.zeros(
        like.array.shape, dtype=np.uint16 if max(numbered, default=0) > 255 else np.uint8
    )
    for number, mask in sorted(numbered.items()):
        overlap = mask.voxels & (labels > 0)
        if overlap.any():
            other = int(np.bincount(labels[overlap].ravel()).argmax())
            problems.append(
                f"{what} {other} and {what} {number} overlap in {int(overlap.sum())} voxels "
                "(one label per voxel in this format)"
            )
        labels[mask.voxels & (labels == 0)] = number
    return labels


def _write_patient(
    patient: _Patient, folder: Path, where: str, notes: list[str]
) -> tuple[list[int], list[str]]:
    """Write the scans and masks; return the tumour ids and the problems."""
    problems: list[str] = []
    images: dict[str, Volume] = {}
    tumours: list[int] = []
    for k, (scan, masks) in enumerate(zip(patient.scans, patient.masks, strict=True)):
        images[_SCAN_FILES[k]] = scan.volume
        by_file: dict[str, list[_Mask]] = {}
        for mask in masks:
            name = _MASK_FILES.get((k, mask.named.structure))
            if name is None:
                scan_name = ("pre-treatment", "post-ablation")[k]
                notes.append(
                    f"{mask.source}: a {mask.named.structure} mask on the {scan_name} "
                    "scan, not imported"
                )
                continue
            by_file.setdefault(name, []).append(mask)
        for name, parts in by_file.items():
            if name in ("pre_tumours", "post_ablation"):
                what = "tumour" if name == "pre_tumours" else "ablation zone"
                array = _label_map(parts, scan.volume, what, problems)
                if name == "pre_tumours":
                    tumours = sorted({m.named.number or 1 for m in parts})
            elif name == "vessels":
                array = np.any([m.voxels for m in parts], axis=0).astype(np.uint8)
            else:
                if len(parts) > 1:
                    problems.append(
                        f"{len(parts)} {name} masks: {'; '.join(m.source for m in parts)}"
                    )
                array = parts[0].voxels.astype(np.uint8)
            images[name] = Volume(array=array, grid=scan.volume.grid)
    if (
        len(patient.scans) == 2
        and any(m.named.structure == "tumour" for m in patient.masks[1])
        and "post_ablation" not in images
    ):
        problems.append(
            "the later study has tumour masks and no ablation-zone mask: is it another patient "
            "with the same PatientID? (use --patient-from folder or --patient-from study)"
        )
    if problems:
        return [], [f"{where}: {p}" for p in problems]
    for name, volume in images.items():
        write_volume(volume, folder / f"{name}.nii.gz")
    return tumours, []


def import_dicom(
    source: Path,
    out: Path,
    mapping: Path,
    *,
    patient_from: PatientRule = PatientRule.PATIENT_ID,
    mask_names: Path | None = None,
) -> ImportResult:
    """Import every patient of ``source`` into the new cohort folder ``out``.

    Raises :class:`DicomImportError` with every problem found, before writing anything. The
    mapping file must not be inside ``out``: the cohort is meant to be shared, the mapping not.
    """
    if mapping.resolve().is_relative_to(out.resolve()):
        raise DicomImportError(f"the mapping file {mapping} must be kept outside the cohort {out}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DicomImportError(f"{out} exists and is not an empty folder; choose a new one")
    if not source.is_dir():
        raise DicomImportError(f"{source} is not a folder")
    names = MaskNames(mask_names)
    result = ImportResult()
    files, problems = _index(source, result)
    if not files and not problems:
        raise DicomImportError(f"no DICOM image found under {source}")
    groups, grouping = _group(files, patient_from)
    problems += grouping
    if problems:
        raise DicomImportError(problems)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    rows: list[dict[str, object]] = []
    tumour_rows: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    modalities: dict[str, set[str]] = {"pre_ct": set(), "post_ct": set()}
    try:
        with tempfile.TemporaryDirectory() as work:
            for number, key in enumerate(sorted(groups), 1):
                pseudonym = f"P{number:04d}"
                run = _PatientImport(key, groups[key], names, patient_from)
                with tempfile.TemporaryDirectory(dir=work) as patient_work:
                    patient = run.run(Path(patient_work))
                    result.not_imported += run.notes
                    if patient is None:
                        problems += run.problems
                        continue
                    tumours, failed = _write_patient(
                        patient, staging / "images" / pseudonym, run.where, result.not_imported
                    )
                if failed:
                    problems += failed
                    continue
                for name, scan in zip(_SCAN_FILES, patient.scans, strict=False):
                    modalities[name].add(scan.series.head.modality)
                row, link = _records(pseudonym, groups[key], patient)
                rows.append(row)
                links.append(link)
                tumour_rows += [{"patient_id": pseudonym, "tumour_id": t} for t in tumours]
                written = sorted(
                    p.name.split(".")[0] for p in (staging / "images" / pseudonym).iterdir()
                )
                result.patients.append(
                    f"{pseudonym}: {', '.join(written)} (from {_folders(groups[key])})"
                )
        for name, found in modalities.items():
            if len(found) > 1:
                problems.append(f"{name}: CT for some patients and MR for others")
        if problems:
            raise DicomImportError(problems)
        _write_csv(staging / "patients.csv", rows)
        _write_csv(staging / "tumours.csv", tumour_rows, header=["patient_id", "tumour_id"])
        (staging / "cohort.yaml").write_text(
            _cohort_yaml(out.name, staging, len(rows), modalities), encoding="utf-8"
        )
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    mapping.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(mapping, links)
    return result


def _records(
    pseudonym: str, files: list[_File], patient: _Patient
) -> tuple[dict[str, object], dict[str, object]]:
    """The patient's row of patients.csv (no identity, no date) and its row of the mapping."""
    pre = patient.scans[0]
    post = patient.scans[1] if len(patient.scans) == 2 else None
    days = None
    if post is not None and post.when is not None and pre.when is not None:
        days = (post.when.date() - pre.when.date()).days
    link: dict[str, object] = {
        "pseudonym": pseudonym,
        "patient_id": files[0].patient_id,
        "patient_name": files[0].patient_name,
        "folders": _folders(files),
        "pre_study_uid": pre.study_uid,
        "pre_study_date": pre.when.date().isoformat() if pre.when else "",
        "post_study_uid": post.study_uid if post else "",
        "post_study_date": post.when.date().isoformat() if post and post.when else "",
    }
    return {"patient_id": pseudonym, "days_pre_to_post": days}, link


def _write_csv(
    path: Path, rows: Sequence[Mapping[str, object]], header: list[str] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = header or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def _cohort_yaml(name: str, staging: Path, patients: int, modalities: dict[str, set[str]]) -> str:
    counts: dict[str, int] = {}
    for path in (staging / "images").glob("*/*.nii.gz"):
        image = path.name.split(".")[0]
        counts[image] = counts.get(image, 0) + 1
    scans = {
        scan: {"modality": next(iter(modalities[scan])), "required": counts[scan] == patients}
        for scan in _SCAN_FILES
        if counts.get(scan)
    }
    masks = {
        mask: {
            "scan": _SCAN_FILES[_ON[mask]],
            "labels": "tumour_id" if mask in ("pre_tumours", "post_ablation") else "binary",
            "required": counts[mask] == patients,
        }
        for mask in _ON
        if counts.get(mask)
    }
    document = {
        "format_version": 1,
        "name": f"Imported from DICOM ({name})",
        "description": "De-identified by hepablate import-dicom; add clinical columns and "
        "outcomes (docs/cohort-format.md).",
        "tables": {
            "patients": {
                "file": "patients.csv",
                "columns": {
                    "patient_id": {"role": "id", "type": "string"},
                    "days_pre_to_post": {"role": "ignore", "type": "integer"},
                },
            },
            "tumours": {
                "file": "tumours.csv",
                "columns": {
                    "patient_id": {"role": "patient_id", "type": "string"},
                    "tumour_id": {"role": "id", "type": "integer"},
                },
            },
        },
        "images": {"scans": scans, "masks": masks},
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
