"""The index of a DICOM import: every file of the source folder read once (header only), and
grouped into patients by the stated :class:`PatientRule`, refusing groups it cannot tell apart.
Also the import's error and result types (see :mod:`hepablate.cohort.dicom_import`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath

import pydicom

__all__ = [
    "MASK_OBJECTS",
    "DicomFile",
    "DicomImportError",
    "ImportResult",
    "PatientRule",
    "describe_folders",
    "group_patients",
    "index_files",
]

MASK_OBJECTS = ("SEG", "RTSTRUCT")


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


@dataclass(frozen=True)
class DicomFile:
    """One DICOM file of the source folder, as its header describes it."""

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


def index_files(source: Path, result: ImportResult) -> tuple[list[DicomFile], list[str]]:
    """Every DICOM image, SEG and RTSTRUCT under ``source`` (headers only), and the problems
    found; what is not imported is noted in ``result``."""
    files: list[DicomFile] = []
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
        is_image = "Rows" in dataset and modality not in MASK_OBJECTS
        if modality not in MASK_OBJECTS and not is_image:
            result.not_imported.append(f"{relative.as_posix()}: a DICOM {modality} object")
            continue
        referenced = None
        if modality in MASK_OBJECTS:
            referenced = _referenced_series(dataset)
            if referenced is None:
                problems.append(f"{relative.as_posix()}: the {modality} does not name its series")
                continue
        files.append(
            DicomFile(
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


def describe_folders(files: Iterable[DicomFile]) -> str:
    """The folders of ``files``, relative to the source; by their top folder when many."""
    folders = {f.folder for f in files}
    if len(folders) > 3:
        folders = {PurePosixPath(*f.parts[:1], "...") if f.parts else f for f in folders}
    names = sorted(f.as_posix() for f in folders)
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return shown or "."


def group_patients(
    files: list[DicomFile], rule: PatientRule
) -> tuple[dict[str, list[DicomFile]], list[str]]:
    """Files by patient key under ``rule``, and the problems that make a grouping unsafe."""
    groups: dict[str, list[DicomFile]] = {}
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
                        f"{what} share it (folders {describe_folders(members)}); they are not "
                        "merged: tell the patients apart with --patient-from folder or "
                        "--patient-from study"
                    )
                    break
    return groups, problems
