"""``hepablate import-dicom``: a folder of DICOM studies into a de-identified cohort.

For each patient (DICOM PatientID) the earliest study with an image series is the
pre-ablation scan and the latest the post-ablation scan. In each, the image series used is the
one a DICOM-SEG or RTSTRUCT refers to (or the only one). Masks come from those objects by the
names of their segments or ROIs:

- ``tumour N`` / ``tumor N`` / ``lesion N`` (pre) -> ``pre_tumours``, label N;
- ``ablation N`` / ``zone N`` (post) -> ``post_ablation``, label N (the zone of tumour N);
- ``liver`` -> ``liver`` (pre) and ``post_liver`` (post); ``vessel``/``vessels`` -> ``vessels``.

De-identification is by construction: images are written as NIfTI (no header fields), patients
get pseudonyms (``P0001``...) and the only time kept is the days between the two scans. The
link back (PatientID, name, study UIDs and dates per pseudonym) goes to a mapping file that the
user keeps *outside* the cohort folder.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import yaml

from hepablate.imaging.io import ImageReadError, Volume, read_volume, write_volume
from hepablate.imaging.segmentations import read_dicom_seg, read_rtstruct

__all__ = ["DicomImportError", "import_dicom"]

_TUMOUR = re.compile(r"^(tumou?r|lesion)\s*[-_ ]?\s*(\d+)?$", re.IGNORECASE)
_ZONE = re.compile(r"^(ablation(\s*zone)?|zone)\s*[-_ ]?\s*(\d+)?$", re.IGNORECASE)
_LIVER = re.compile(r"^liver$", re.IGNORECASE)
_VESSELS = re.compile(r"^vessels?$", re.IGNORECASE)


class DicomImportError(Exception):
    """The import cannot go on; the message names the patient, the study or the file."""


@dataclass
class _Series:
    uid: str
    modality: str
    description: str
    files: list[Path] = field(default_factory=list)


@dataclass
class _Study:
    uid: str
    day: date | None
    series: dict[str, _Series] = field(default_factory=dict)
    masks: list[tuple[str, Path, str]] = field(default_factory=list)  # kind, file, series uid


@dataclass
class _Patient:
    patient_id: str
    name: str
    studies: dict[str, _Study] = field(default_factory=dict)


def _day(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, TypeError):
        return None


def _referenced_series(dataset: pydicom.Dataset) -> str | None:
    if dataset.Modality == "SEG":
        for item in getattr(dataset, "ReferencedSeriesSequence", []):
            return str(item.SeriesInstanceUID)
        return None
    for frame in getattr(dataset, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                return str(series.SeriesInstanceUID)
    return None


def _index(source: Path) -> tuple[dict[str, _Patient], list[str]]:
    patients: dict[str, _Patient] = {}
    skipped: list[str] = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            patient_id = str(dataset.PatientID)
            study_uid = str(dataset.StudyInstanceUID)
            modality = str(dataset.Modality)
        except Exception:  # not DICOM, or missing the identifying tags
            skipped.append(str(path.relative_to(source)))
            continue
        patient = patients.setdefault(
            patient_id, _Patient(patient_id, str(getattr(dataset, "PatientName", "")))
        )
        study = patient.studies.setdefault(
            study_uid, _Study(study_uid, _day(str(getattr(dataset, "StudyDate", ""))))
        )
        if modality in ("SEG", "RTSTRUCT"):
            referenced = _referenced_series(dataset)
            if referenced is None:
                raise DicomImportError(f"{path}: the {modality} does not name its image series")
            study.masks.append((modality, path, referenced))
        elif modality in ("CT", "MR"):
            uid = str(dataset.SeriesInstanceUID)
            series = study.series.setdefault(
                uid, _Series(uid, modality, str(getattr(dataset, "SeriesDescription", "")))
            )
            series.files.append(path)
    return patients, skipped


def _image_series(
    patient: _Patient, study: _Study, all_masks: list[tuple[str, Path, str]]
) -> _Series:
    referenced = {uid for _, _, uid in all_masks}
    candidates = [s for s in study.series.values() if s.uid in referenced] or list(
        study.series.values()
    )
    if len(candidates) != 1:
        names = ", ".join(f"{s.description or s.uid}" for s in study.series.values())
        raise DicomImportError(
            f"patient {patient.patient_id}, study {study.uid}: {len(candidates)} image series "
            f"({names}) and no segmentation pointing at one of them; keep one series"
        )
    return candidates[0]


def _read_series(series: _Series, workdir: Path) -> tuple[Volume, Path]:
    folder = workdir / series.uid
    folder.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(series.files):
        (folder / f"{k:05d}.dcm").symlink_to(path.resolve())
    return read_volume(folder), folder


def _masks_of(
    series: _Series, folder: Path, volume: Volume, all_masks: list[tuple[str, Path, str]]
) -> dict[str, Volume]:
    found: dict[str, Volume] = {}
    for kind, path, uid in all_masks:
        if uid != series.uid:
            continue
        objects = (
            read_dicom_seg(path, volume, folder) if kind == "SEG" else read_rtstruct(path, volume)
        )
        found.update(objects)
    return found


def _labelled(masks: dict[str, Volume], pattern: re.Pattern[str], group: int) -> dict[int, Volume]:
    matched = {name: pattern.match(name.strip()) for name in masks}
    chosen = {name: m for name, m in matched.items() if m}
    result: dict[int, Volume] = {}
    for name, match in chosen.items():
        number = match.group(group)
        if number is None and len(chosen) > 1:
            raise DicomImportError(f"segment {name!r} has no number, but there are several")
        result[int(number) if number else 1] = masks[name]
    return result


def _label_map(parts: dict[int, Volume], like: Volume) -> Volume:
    labels = np.zeros(like.array.shape, dtype=np.uint8)
    for number, mask in sorted(parts.items()):
        labels[(mask.array > 0) & (labels == 0)] = number
    return Volume(array=labels, grid=like.grid)


def _binary(masks: dict[str, Volume], pattern: re.Pattern[str]) -> Volume | None:
    for name, mask in masks.items():
        if pattern.match(name.strip()):
            return Volume(array=(mask.array > 0).astype(np.uint8), grid=mask.grid)
    return None


def import_dicom(source: Path, out: Path, mapping: Path) -> list[str]:
    """Import every patient of ``source`` into the cohort folder ``out``.

    Returns the files that were skipped as not DICOM. The mapping file must not be inside
    ``out``: the cohort is meant to be shared, the mapping is not.
    """
    if mapping.resolve().is_relative_to(out.resolve()):
        raise DicomImportError(f"the mapping file {mapping} must be kept outside the cohort {out}")
    patients, skipped = _index(source)
    if not patients:
        raise DicomImportError(f"no DICOM patient found under {source}")
    rows, tumour_rows, links = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for number, patient in enumerate(sorted(patients.values(), key=lambda p: p.patient_id), 1):
            pseudonym = f"P{number:04d}"
            studies = sorted(
                (s for s in patient.studies.values() if s.series),
                key=lambda s: (s.day or date.min, s.uid),
            )
            if len(studies) < 2:
                raise DicomImportError(
                    f"patient {patient.patient_id}: {len(studies)} study with images; a pre- and a "
                    "post-ablation study are needed"
                )
            all_masks = [m for s in patient.studies.values() for m in s.masks]
            pre_study, post_study = studies[0], studies[-1]
            pre_series = _image_series(patient, pre_study, all_masks)
            post_series = _image_series(patient, post_study, all_masks)
            try:
                pre, pre_folder = _read_series(pre_series, Path(tmp))
                post, post_folder = _read_series(post_series, Path(tmp))
                pre_masks = _masks_of(pre_series, pre_folder, pre, all_masks)
                post_masks = _masks_of(post_series, post_folder, post, all_masks)
            except ImageReadError as exc:
                raise DicomImportError(f"patient {patient.patient_id}: {exc}") from None
            tumours = _labelled(pre_masks, _TUMOUR, 2)
            zones = _labelled(post_masks, _ZONE, 3)
            folder = out / "images" / pseudonym
            write_volume(pre, folder / "pre_ct.nii.gz")
            write_volume(post, folder / "post_ct.nii.gz")
            if tumours:
                write_volume(_label_map(tumours, pre), folder / "pre_tumours.nii.gz")
            if zones:
                write_volume(_label_map(zones, post), folder / "post_ablation.nii.gz")
            for name, masks, _like in (("liver", pre_masks, pre), ("post_liver", post_masks, post)):
                liver = _binary(masks, _LIVER)
                if liver is not None:
                    write_volume(liver, folder / f"{name}.nii.gz")
            vessels = _binary(pre_masks, _VESSELS)
            if vessels is not None:
                write_volume(vessels, folder / "vessels.nii.gz")
            days = (
                (post_study.day - pre_study.day).days if pre_study.day and post_study.day else None
            )
            rows.append({"patient_id": pseudonym, "days_pre_to_post": days})
            tumour_rows += [{"patient_id": pseudonym, "tumour_id": t} for t in sorted(tumours)]
            links.append(
                {
                    "pseudonym": pseudonym,
                    "patient_id": patient.patient_id,
                    "patient_name": patient.name,
                    "pre_study_uid": pre_study.uid,
                    "pre_study_date": pre_study.day.isoformat() if pre_study.day else "",
                    "post_study_uid": post_study.uid,
                    "post_study_date": post_study.day.isoformat() if post_study.day else "",
                }
            )
    _write_csv(out / "patients.csv", rows)
    _write_csv(out / "tumours.csv", tumour_rows, header=["patient_id", "tumour_id"])
    mapping.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(mapping, links)
    (out / "cohort.yaml").write_text(_cohort_yaml(out), encoding="utf-8")
    return skipped


def _write_csv(
    path: Path, rows: Sequence[Mapping[str, object]], header: list[str] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = header or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def _cohort_yaml(out: Path) -> str:
    present = {p.name.split(".")[0] for p in (out / "images").glob("*/*.nii.gz")}
    everyone = [
        {p.name.split(".")[0] for p in f.glob("*.nii.gz")} for f in (out / "images").iterdir()
    ]
    on = {
        "pre_tumours": "pre_ct",
        "post_ablation": "post_ct",
        "liver": "pre_ct",
        "vessels": "pre_ct",
        "post_liver": "post_ct",
    }
    masks = {
        name: {
            "scan": scan,
            "labels": "tumour_id" if name in ("pre_tumours", "post_ablation") else "binary",
            "required": all(name in e for e in everyone),
        }
        for name, scan in on.items()
        if name in present
    }
    document = {
        "format_version": 1,
        "name": f"Imported from DICOM ({out.name})",
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
        "images": {"scans": {"pre_ct": {}, "post_ct": {}}, "masks": masks},
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
