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
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from hepablate.cohort.dicom_files import (
    DicomFile,
    DicomImportError,
    ImportResult,
    PatientRule,
    describe_folders,
    group_patients,
    index_files,
)
from hepablate.cohort.dicom_masks import MaskNames
from hepablate.cohort.dicom_patient import MaskPart, PatientImages, PatientImport
from hepablate.imaging.io import Volume, write_volume

__all__ = ["DicomImportError", "ImportResult", "MaskNames", "PatientRule", "import_dicom"]


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


def _label_map(parts: list[MaskPart], like: Volume, what: str, problems: list[str]) -> np.ndarray:
    """Masks numbered N into one label map; a number twice or an overlap is a problem."""
    numbered: dict[int, MaskPart] = {}
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
    patient: PatientImages, folder: Path, where: str, notes: list[str]
) -> tuple[list[int], list[str]]:
    """Write the scans and masks; return the tumour ids and the problems."""
    problems: list[str] = []
    images: dict[str, Volume] = {}
    tumours: list[int] = []
    for k, (scan, masks) in enumerate(zip(patient.scans, patient.masks, strict=True)):
        images[_SCAN_FILES[k]] = scan.volume
        by_file: dict[str, list[MaskPart]] = {}
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
    files, problems = index_files(source, result)
    if not files and not problems:
        raise DicomImportError(f"no DICOM image found under {source}")
    groups, grouping = group_patients(files, patient_from)
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
                run = PatientImport(key, groups[key], names, patient_from)
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
                    f"{pseudonym}: {', '.join(written)} (from {describe_folders(groups[key])})"
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
    pseudonym: str, files: list[DicomFile], patient: PatientImages
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
        "folders": describe_folders(files),
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
