"""Checks of each patient's images and masks against ``cohort.yaml`` and the tumours table.

Rules (codes as in the report):

- ``images.missing_directory`` / ``images.missing_patient_folder`` / ``images.missing``: a
  required scan or mask is not there (the message lists the file names looked for).
- ``images.ambiguous``: two candidates for one image (``pre_ct.nii.gz`` and ``pre_ct/``).
- ``images.unreadable``: the file cannot be read whole (corrupt, truncated, not an image, two
  DICOM series in one folder, not 3-D).
- ``images.grid_mismatch``: a mask is not on its scan's voxel grid (size, spacing, origin,
  direction).
- ``images.non_finite``: a scan or mask with NaN or infinite voxels (how many of each): a
  reader or converter that lost data; left in, they would become some number silently.
- ``images.implausible_ct`` / ``images.implausible_mask``: a scan declared as CT that does not
  look like one (a constant or binary image, no Hounsfield units, no body), or a mask that looks
  like an intensity image (``image_plausibility``).
- ``images.constant_scan`` (warning): every voxel of a scan of a modality without plausibility
  rules (MR) has one value: registration and radiomics of it will fail, and extraction says so.
- ``images.mask_not_integer`` / ``images.empty_mask`` / ``images.bad_labels``: a mask with
  non-integer or negative values, with no foreground, or a binary mask with values beyond 0/1.
- ``images.unknown_label`` / ``images.tumour_not_in_mask``: a label with no row in the tumours
  table, or a tumour with no voxel in a ``tumour_id`` mask.
- ``images.touches_edge`` (warning): a tumour's label in a ``tumour_id`` mask (the tumour, or
  its ablation zone) reaches the border of the image, so part of it may lie outside the image
  and its volume, diameter and margins may be cut short.
- ``images.too_small_for_radiomics`` (warning): a label of a ``tumour_id`` mask with fewer
  voxels than :data:`MIN_RADIOMICS_VOXELS`; its radiomic features will be left empty unless the
  radiomics grid is fine enough to give it that many (extraction reports it either way).
- ``images.undeclared_file`` / ``images.unknown_patient_folder`` (warnings): files or folders
  that hepablate will not read, named so that nothing is lost unnoticed.

Each image is read whole (a truncated ``.nii.gz`` has a valid header), one patient at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from hepablate.cohort.image_plausibility import report_implausible_mask, report_implausible_scan
from hepablate.cohort.problems import ValidationReport
from hepablate.cohort.schema import CohortSchema, ImagesSpec, MaskSpec, ScanSpec
from hepablate.imaging.io import (
    IMAGE_SUFFIXES,
    Grid,
    ImageReadError,
    Volume,
    find_image,
    read_volume,
)

__all__ = ["MIN_RADIOMICS_VOXELS", "check_images"]

# The fewest voxels (on the grid the features are computed on) a region needs for IBSI
# radiomics: below a 3x3x3 block's worth, MIRP leaves shape features (PCA-based), the
# co-occurrence and the neighbourhood grey-tone features undefined (measured with MIRP 2.x on
# regions of 1 to 27 voxels), and what it does compute rests on a handful of values.
MIN_RADIOMICS_VOXELS = 27


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
                modality = spec.scans[name].modality
                _check_scan_values(volume, name, modality, patient, paths[name], root, report)
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


def _non_finite(values: np.ndarray, path: Path) -> str | None:
    """How many voxels are NaN or infinite, as a phrase; None when every voxel is finite.

    ITK's NIfTI reader (SimpleITK 2.x) turns NaN and infinite voxels into 0 without a word, so
    a NIfTI file stored as floating point is counted in the file itself (through nibabel);
    other formats keep them, and are counted in the voxels read.
    """
    if path.is_file() and path.name.endswith((".nii", ".nii.gz")):
        proxy = nib.load(path).dataobj  # type: ignore[attr-defined]
        if np.issubdtype(np.dtype(proxy.dtype), np.floating):
            values = np.asarray(proxy.get_unscaled())
    if not np.issubdtype(values.dtype, np.floating):
        return None
    nan = int(np.count_nonzero(np.isnan(values)))
    infinite = int(np.count_nonzero(np.isinf(values)))
    if not nan + infinite:
        return None
    kinds = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (infinite, "infinite")) if n)
    return f"{nan + infinite} of {values.size} voxels are not finite numbers ({kinds})"


def _check_scan_values(
    volume: Volume,
    name: str,
    modality: str,
    patient: str,
    path: Path,
    root: Path,
    report: ValidationReport,
) -> None:
    """Non-finite voxels (an error), then a scan that does not look like its modality (an
    error), then a constant scan of a modality without such rules (a warning)."""
    where = {"patient": patient, "file": _relative(path, root), "field": name}
    values = volume.array
    non_finite = _non_finite(values, path)
    if non_finite is not None:
        report.error(
            "images.non_finite",
            f"scan {name!r}: {non_finite}; a scan holds a number in every voxel (was it "
            "converted from another format?)",
            **where,
        )
        return
    if report_implausible_scan(volume, modality, report, **where):
        return
    low, high = values.min(), values.max()
    if low == high:
        report.warning(
            "images.constant_scan",
            f"every voxel of scan {name!r} is {low:g}: it shows no anatomy, so registration "
            "and radiomics of it will fail (extraction leaves those features empty and says why)",
            **where,
        )


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
    non_finite = _non_finite(values, path)
    if non_finite is not None:
        report.error("images.non_finite", f"mask {name!r}: {non_finite}", **where)
        return
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(values == np.round(values)):
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
    _check_tumour_labels(values, volume.grid, name, foreground, where, report)
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


def _check_tumour_labels(
    values: np.ndarray,
    grid: Grid,
    name: str,
    labels: set[int],
    where: dict[str, str],
    report: ValidationReport,
) -> None:
    """Each tumour's label: on the image's border (cut?) or too small for radiomics."""
    faces: dict[int, list[str]] = {}
    for axis, axis_name in enumerate("zyx"):
        for end, position in (("first", 0), ("last", values.shape[axis] - 1)):
            face = np.take(values, position, axis=axis)
            for label in np.unique(face[face > 0]):
                faces.setdefault(int(label), []).append(f"the {end} {axis_name} plane")
    for label in sorted(faces):
        report.warning(
            "images.touches_edge",
            f"tumour {label} in {name!r} reaches the edge of the image ({', '.join(faces[label])}):"
            " part of it may lie outside the image, so its volume, diameter and margins may be "
            "cut short",
            tumour=label,
            **where,
        )
    counts = np.bincount(values.ravel())
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    for label in sorted(labels):
        count = int(counts[label])
        if count < MIN_RADIOMICS_VOXELS:
            report.warning(
                "images.too_small_for_radiomics",
                f"tumour {label} has {count} voxel(s) in {name!r} ({count * voxel_ml:.3g} ml); "
                f"radiomics needs at least {MIN_RADIOMICS_VOXELS} voxels (a 3x3x3 block) on the "
                "radiomics grid, so its radiomic features may be left empty (extraction says so)",
                tumour=label,
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
