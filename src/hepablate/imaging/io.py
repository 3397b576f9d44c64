"""Reading and writing image volumes: NIfTI, NRRD, MetaImage and DICOM series folders.

Every reader returns a :class:`Volume`, the one in-memory image type of hepablate: a voxel array
plus the geometry that places it in patient space (spacing, origin, direction, in millimetres and
in LPS as ITK and DICOM use). Reading is done by SimpleITK (ITK's readers, GDCM for DICOM); this
module adds the checks and the error messages that name the file.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np
import SimpleITK as sitk

__all__ = [
    "IMAGE_SUFFIXES",
    "Grid",
    "ImageReadError",
    "Volume",
    "find_image",
    "read_grid",
    "read_volume",
    "write_dicom_series",
    "write_volume",
]

# File endings recognised as one image file; a folder is read as a DICOM series.
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class ImageReadError(Exception):
    """An image that cannot be read; ``path`` names it and ``reason`` says why in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class _HasGeometry(Protocol):
    def GetSize(self) -> tuple[int, ...]: ...  # noqa: N802 (SimpleITK's names)
    def GetSpacing(self) -> tuple[float, ...]: ...  # noqa: N802
    def GetOrigin(self) -> tuple[float, ...]: ...  # noqa: N802
    def GetDirection(self) -> tuple[float, ...]: ...  # noqa: N802


@dataclass(frozen=True)
class Grid:
    """Where a volume's voxels are: size (x, y, z), spacing (mm), origin (mm), direction cosines."""

    size: tuple[int, ...]
    spacing_mm: tuple[float, ...]
    origin_mm: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: _HasGeometry) -> Grid:
        """The grid of a SimpleITK image, or of a reader that has read the header only."""
        return cls(
            size=tuple(int(n) for n in image.GetSize()),
            spacing_mm=tuple(float(s) for s in image.GetSpacing()),
            origin_mm=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    def differences(self, other: Grid, *, tolerance: float = 1e-3) -> list[str]:
        """How ``other`` differs from this grid, one phrase per property; empty if it matches.

        Spacing and origin are compared to ``tolerance`` times the smallest spacing (1e-3 of a
        voxel by default: tighter than any real misregistration, looser than float rounding in
        format conversions); direction cosines to ``tolerance``.
        """
        found = []
        if self.size != other.size:
            found.append(f"size {_fmt(other.size)} instead of {_fmt(self.size)}")
        atol = tolerance * min(self.spacing_mm)
        for label, mine, theirs in (
            ("spacing", self.spacing_mm, other.spacing_mm),
            ("origin", self.origin_mm, other.origin_mm),
        ):
            if len(mine) != len(theirs) or not np.allclose(mine, theirs, rtol=0, atol=atol):
                found.append(f"{label} {_fmt(theirs)} mm instead of {_fmt(mine)} mm")
        if len(self.direction) != len(other.direction) or not np.allclose(
            self.direction, other.direction, rtol=0, atol=tolerance
        ):
            found.append(f"direction {_fmt(other.direction)} instead of {_fmt(self.direction)}")
        return found


def _fmt(values: tuple[float, ...] | tuple[int, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image: ``array`` indexed (z, y, x) as SimpleITK returns it, and its :class:`Grid`."""

    array: np.ndarray
    grid: Grid

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Volume:
        return cls(array=sitk.GetArrayFromImage(image), grid=Grid.of(image))

    def to_sitk(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.array)
        image.SetSpacing(self.grid.spacing_mm)
        image.SetOrigin(self.grid.origin_mm)
        image.SetDirection(self.grid.direction)
        return image

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        return self.grid.spacing_mm

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.grid.spacing_mm)) / 1000.0


def find_image(folder: Path, name: str) -> list[Path]:
    """Every candidate for image ``name`` in ``folder``: ``name.<suffix>`` files and a ``name/``
    DICOM folder. More than one candidate is ambiguous; the caller decides what to report."""
    found = [folder / f"{name}{suffix}" for suffix in IMAGE_SUFFIXES]
    candidates = [p for p in found if p.is_file()]
    if (folder / name).is_dir():
        candidates.append(folder / name)
    return candidates


def read_grid(path: Path) -> Grid:
    """The grid of an image file without reading its voxels (DICOM folders are read whole)."""
    if path.is_dir():
        return read_volume(path).grid
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(path, _itk_reason(exc)) from None
    return Grid.of(reader)


def read_volume(path: Path) -> Volume:
    """Read an image file, or a folder holding exactly one DICOM series, as a 3-D volume."""
    if not path.exists():
        raise ImageReadError(path, "no such file or folder")
    image = _read_dicom_series(path) if path.is_dir() else _read_file(path)
    if image.GetDimension() != 3:
        raise ImageReadError(path, f"a {image.GetDimension()}-D image; a 3-D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            path, f"{image.GetNumberOfComponentsPerPixel()} values per voxel; one is needed"
        )
    return Volume.from_sitk(image)


def _read_file(path: Path) -> sitk.Image:
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty")
    if path.name.endswith((".nii", ".nii.gz")):
        _check_nifti_complete(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(path, _itk_reason(exc)) from None


def _check_nifti_complete(path: Path) -> None:
    """Refuse a truncated NIfTI file.

    ITK's NIfTI reader fills the missing end of a truncated ``.nii`` or ``.nii.gz`` with zeros
    without an error (NRRD and MetaImage readers do report it), so the voxel bytes are counted
    here: the file (decompressed, with its gzip checksum verified) must hold the header's
    offset plus every voxel.
    """
    try:
        proxy = nib.load(path).dataobj  # type: ignore[attr-defined]
        expected = int(proxy.offset) + int(np.prod(proxy.shape)) * np.dtype(proxy.dtype).itemsize
    except Exception as exc:  # nibabel raises several types for a broken header
        raise ImageReadError(path, f"not a valid NIfTI file: {_first_line(exc)}") from None
    if path.name.endswith(".gz"):
        available = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    available += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise ImageReadError(
                path, f"the compressed file is truncated or corrupt ({_first_line(exc)})"
            ) from None
    else:
        available = path.stat().st_size
    if available < expected:
        raise ImageReadError(
            path, f"the file is truncated: {available} of {expected} bytes of voxel data"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_dicom_series(folder: Path) -> sitk.Image:
    try:
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as exc:
        raise ImageReadError(folder, _itk_reason(exc)) from None
    if not series_ids:
        raise ImageReadError(folder, "no DICOM image series in this folder")
    if len(series_ids) > 1:
        raise ImageReadError(
            folder,
            f"{len(series_ids)} DICOM series mixed in one folder "
            f"(SeriesInstanceUID {', '.join(series_ids)}); put each series in its own folder",
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    if len(files) < 2:
        raise ImageReadError(folder, "a DICOM series of one slice; a volume needs several")
    _check_series_files(folder, [Path(f) for f in files])
    _check_slice_positions(folder, [Path(f) for f in files])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image: sitk.Image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(folder, _itk_reason(exc)) from None
    return image


def _check_series_files(folder: Path, files: list[Path]) -> None:
    """GDCM skips files it cannot read: name them rather than lose a slice silently."""
    used = {f.resolve() for f in files}
    others = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.resolve() not in used
    )
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ImageReadError(
            folder,
            f"{len(others)} file(s) are not readable DICOM images of the series: {shown} "
            "(corrupt, truncated or not DICOM); fix or remove them",
        )


def _check_slice_positions(folder: Path, files: list[Path]) -> None:
    """Slices must be evenly spaced along the slice normal: no missing, doubled or odd gaps."""
    import pydicom

    positions = []
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            origin = np.asarray(header.ImagePositionPatient, dtype=float)
            orientation = np.asarray(header.ImageOrientationPatient, dtype=float)
        except Exception as exc:  # pydicom raises many types for a broken header
            raise ImageReadError(path, f"unreadable DICOM header: {exc}") from None
        normal = np.cross(orientation[:3], orientation[3:])
        positions.append(float(origin @ normal))
    order = np.sort(np.asarray(positions))
    gaps = np.diff(order)
    step = float(np.median(gaps))
    if step <= 1e-6:
        raise ImageReadError(folder, "several slices share one position (a doubled series?)")
    tolerance = max(0.01 * step, 1e-3)
    for k, gap in enumerate(gaps):
        if abs(gap - step) <= tolerance:
            continue
        where = f"between slice positions {order[k]:.2f} and {order[k + 1]:.2f} mm"
        if gap > 1.5 * step:
            missing = round(gap / step) - 1
            raise ImageReadError(
                folder,
                f"{missing} missing slice(s) {where} (a gap of {gap:.2f} mm where slices are "
                f"{step:.2f} mm apart)",
            )
        raise ImageReadError(
            folder, f"uneven slice spacing {where}: {gap:.2f} mm where slices are {step:.2f} mm"
        )


def _itk_reason(exc: RuntimeError) -> str:
    """The informative part of an ITK exception, without source paths and object addresses.

    ITK's messages end with the most specific line (``[nrrd] _nrrdEncodingGzip_read: expected
    73728 bytes but received 47922``); the prefixes before it name C++ files and classes.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "unreadable image"
    reason = lines[-1]
    if reason.startswith("ideal =") and len(lines) > 1:  # MetaImage splits its message in two
        reason = f"{lines[-2]}: {reason}"
    for pattern in _ITK_PREFIXES:
        reason = pattern.sub("", reason)
    if "Unable to determine ImageIO reader" in reason:
        return "not an image in a format hepablate reads (NIfTI, NRRD, MetaImage, DICOM)"
    return _shorten(reason)


_ITK_PREFIXES = (
    re.compile(r"^Exception thrown in SimpleITK \w+: \S+:\d+:\s*"),
    re.compile(r"^(sitk|itk)::ERROR:\s*(\w+\(0x[0-9a-fA-F]+\):\s*)?"),
    re.compile(r"^\[\w+\]\s*\w+:\s*"),
    re.compile(r"^M_\w+:\s*"),
)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_volume(volume: Volume, path: Path) -> None:
    """Write ``volume`` to a NIfTI, NRRD or MetaImage file (chosen by the file ending)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), useCompression=True)


def write_dicom_series(
    volume: Volume,
    folder: Path,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    study_date: str,
    series_description: str,
    series_number: int = 1,
    modality: str = "CT",
) -> str:
    """Write ``volume`` as one DICOM file per slice (deterministic UIDs); return the series UID.

    For tests, examples and exports to a PACS: the tags a viewer and highdicom need (patient,
    study, series, frame of reference, geometry) and nothing more. ``study_date`` is YYYYMMDD.
    """
    from pydicom.uid import generate_uid

    image = volume.to_sitk()
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = str(generate_uid(entropy_srcs=[study_uid, series_description, str(series_number)]))
    frame_uid = str(generate_uid(entropy_srcs=[study_uid, "frame of reference"]))
    sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}[modality]
    direction = volume.grid.direction
    orientation = "\\".join(f"{v:g}" for v in (*direction[0:9:3], *direction[1:9:3]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        layer = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0016": sop_class,
            "0008|0018": str(generate_uid(entropy_srcs=[series_uid, str(k)])),
            "0008|0020": study_date,
            "0008|0060": modality,
            "0008|103e": series_description,
            "0010|0010": patient_name,
            "0010|0020": patient_id,
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0011": str(series_number),
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in position),
            "0020|0037": orientation,
            "0020|0052": frame_uid,
            "0018|0050": f"{volume.grid.spacing_mm[2]:.4f}",
        }
        for tag, value in tags.items():
            layer.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k + 1:03d}.dcm"))
        writer.Execute(layer)
    return series_uid
