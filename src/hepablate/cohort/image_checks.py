"""Checks of each patient's images and masks against ``cohort.yaml`` and the tumours table.

Rules (codes as in the report):

- ``images.missing_directory`` / ``images.missing_patient_folder`` / ``images.missing``: a
  required scan or mask is not there (the message lists the file names looked for).
- ``images.ambiguous``: two candidates for one image (``pre_ct.nii.gz`` and ``pre_ct/``).
- ``images.unreadable``: the file cannot be read whole (corrupt, truncated, not an image, two
  DICOM series in one folder, not 3-D).
- ``images.grid_mismatch``: a mask is not on its scan's voxel grid (size, spacing, origin,
  direction).
- ``images.mask_not_integer`` / ``images.empty_mask`` / ``images.bad_labels``: a mask with
  non-integer or negative values, with no foreground, or a binary mask with values beyond 0/1.
- ``images.unknown_label`` / ``images.tumour_not_in_mask``: a label with no row in the tumours
  table, or a tumour with no voxel in a ``tumour_id`` mask.
- ``images.undeclared_file`` / ``images.unknown_patient_folder`` (warnings): files or folders
  that hepablate will not read, named so that nothing is lost unnoticed.

Each image is read whole (a truncated ``.nii.gz`` has a valid header), one patient at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hepablate.cohort.image_plausibility import report_implausible_mask, report_implausible_scan
from hepablate.cohort.problems import ValidationReport
from hepablate.cohort.schema import CohortSchema, ImagesSpec, MaskSpec, ScanSpec
from hepablate.imaging.io import IMAGE_SUFFIXES, Grid, ImageReadError, find_image, read_volume

__all__ = ["check_images"]


def check_images(
    root: Path,
    schema: CohortSchema,
    patient_ids: list[str],
    tumour_ids: dict[str, set[Any]] | None,
    report: ValidationReport,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, Path]]:
    """Check every patient's images; return the paths found, per patient and image name.

    ``tumour_ids`` maps each patient to the ids of its tumours; ``None`` when the tumours table
    could not be read, in which case mask labels are not compared with it.
    """
    spec = schema.images
    assert spec is not None
    directory = root / spec.directory
    needs_images = any(s.required for s in spec.scans.values()) or any(
        m.required for m in spec.masks.values()
    )
    if not directory.is_dir():
        if needs_images:
            report.error(
                "images.missing_directory",
                f"the images folder {spec.directory}/ does not exist; cohort.yaml declares "
                f"required images ({', '.join(_required(spec))})",
                file=spec.directory,
            )
        return {}

    found: dict[str, dict[str, Path]] = {}
    for done, patient in enumerate(patient_ids, start=1):
        tumours = None if tumour_ids is None else tumour_ids.get(patient, set())
        found[patient] = _check_patient(root, spec, patient, tumours, report)
        if progress is not None:
            progress(done, len(patient_ids))

    known = set(patient_ids)
    for folder in sorted(p for p in directory.iterdir() if p.name not in known):
        report.warning(
            "images.unknown_patient_folder",
            "this folder matches no patient in the patients table; it is not read",
            file=_relative(folder, root),
        )
    return found


def _required(spec: ImagesSpec) -> list[str]:
    scans = [name for name, s in spec.scans.items() if s.required]
    return scans + [name for name, m in spec.masks.items() if m.required]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _check_patient(
    root: Path,
    spec: ImagesSpec,
    patient: str,
    tumours: set[Any] | None,
    report: ValidationReport,
) -> dict[str, Path]:
    folder = root / spec.directory / patient
    folder_name = _relative(folder, root)
    if not folder.is_dir():
        required = _required(spec)
        if required:
            report.error(
                "images.missing_patient_folder",
                f"no image folder; required: {', '.join(required)}",
                patient=patient,
                file=folder_name,
            )
        return {}

    paths: dict[str, Path] = {}
    grids: dict[str, Grid] = {}
    declared: dict[str, ScanSpec | MaskSpec] = {**spec.scans, **spec.masks}
    for name, item in declared.items():
        candidates = find_image(folder, name)
        if not candidates:
            if item.required:
                looked_for = ", ".join(f"{name}{s}" for s in IMAGE_SUFFIXES)
                report.error(
                    "images.missing",
                    f"required image {name!r} is missing (looked for {looked_for} or a DICOM "
                    f"folder {name}/)",
                    patient=patient,
                    file=folder_name,
                    field=name,
                )
            continue
        if len(candidates) > 1:
            names = ", ".join(c.name + ("/" if c.is_dir() else "") for c in candidates)
            report.error(
                "images.ambiguous",
                f"{len(candidates)} candidates for {name!r} ({names}); keep one",
                patient=patient,
                file=folder_name,
                field=name,
            )
            continue
        paths[name] = candidates[0]

    for name in spec.scans:
        if name in paths:
            volume = _read(paths[name], patient, name, root, report)
            if volume is not None:
                grids[name] = volume.grid
                where = {"patient": patient, "file": _relative(paths[name], root), "field": name}
                report_implausible_scan(volume, spec.scans[name].modality, report, **where)
    for name, mask_spec in spec.masks.items():
        if name in paths:
            _check_mask(paths[name], name, mask_spec, grids, patient, tumours, root, report)

    _report_undeclared(folder, set(paths.values()), set(declared), patient, root, report)
    return paths


def _read(path: Path, patient: str, name: str, root: Path, report: ValidationReport) -> Any:
    try:
        return read_volume(path)
    except ImageReadError as exc:
        report.error(
            "images.unreadable",
            f"cannot read {name!r}: {exc.reason}",
            patient=patient,
            file=_relative(path, root),
            field=name,
        )
        return None


def _check_mask(
    path: Path,
    name: str,
    spec: MaskSpec,
    scan_grids: dict[str, Grid],
    patient: str,
    tumours: set[Any] | None,
    root: Path,
    report: ValidationReport,
) -> None:
    volume = _read(path, patient, name, root, report)
    if volume is None:
        return
    where = {"patient": patient, "file": _relative(path, root), "field": name}
    if report_implausible_mask(volume, report, **where):
        return
    scan_grid = scan_grids.get(spec.scan)
    if scan_grid is not None:
        differences = scan_grid.differences(volume.grid)
        if differences:
            report.error(
                "images.grid_mismatch",
                f"mask {name!r} is not on the grid of {spec.scan!r}: {'; '.join(differences)}",
                **where,
            )
    values = volume.array
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            report.error(
                "images.mask_not_integer",
                f"mask {name!r} has non-integer voxel values ({values.dtype}); a mask holds "
                "whole-number labels",
                **where,
            )
            return
        values = values.astype(np.int64)
    labels = {int(v) for v in np.unique(values)}
    if any(v < 0 for v in labels):
        report.error(
            "images.bad_labels", f"mask {name!r} has negative labels {sorted(labels)}", **where
        )
        return
    foreground = labels - {0}
    if not foreground:
        report.error("images.empty_mask", f"mask {name!r} has no foreground voxel", **where)
        return
    if spec.labels == "binary":
        if foreground != {1}:
            report.error(
                "images.bad_labels",
                f"binary mask {name!r} has labels {sorted(foreground)}; only 0 and 1 are allowed",
                **where,
            )
        return
    if tumours is None:
        return
    known = {int(t) for t in tumours}
    for label in sorted(foreground - known):
        report.error(
            "images.unknown_label",
            f"label {label} in {name!r} has no row in the tumours table for this patient "
            f"(tumour ids: {', '.join(str(t) for t in sorted(known)) or 'none'})",
            **where,
        )
    for tumour in sorted(known - foreground):
        report.error(
            "images.tumour_not_in_mask",
            f"tumour {tumour} has no voxel labelled {tumour} in {name!r}",
            **where,
        )


def _report_undeclared(
    folder: Path,
    used: set[Path],
    declared: set[str],
    patient: str,
    root: Path,
    report: ValidationReport,
) -> None:
    for entry in sorted(folder.iterdir()):
        if entry in used or entry.name.startswith("."):
            continue
        name = entry.name
        for suffix in IMAGE_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name in declared:
            continue  # an ambiguous candidate, already reported
        report.warning(
            "images.undeclared_file",
            f"{entry.name!r} is not an image declared in cohort.yaml "
            f"({', '.join(sorted(declared))}); it is not read",
            patient=patient,
            file=_relative(entry, root),
        )
