"""Write the images of the minimal example cohort (``examples/minimal_cohort``).

The tables and ``cohort.yaml`` of the example are written by hand and committed; this script
draws the matching images: a small, coarse CT of the liver region before and after ablation for
each patient, with the masks. The images are committed too (about 1 MB in all), and a test
checks that this script still reproduces them voxel for voxel.

The phantom is deliberately simple (ellipsoids and a tube, Gaussian noise); the realistic
virtual cohort is ``hepablate simulate``. Each patient exercises one image format: NIfTI,
NRRD, or a DICOM series folder.

    python examples/make_minimal_cohort.py examples/minimal_cohort
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.uid import generate_uid

from hepablate.imaging.io import Volume, write_dicom_series

SIZE_XYZ = (48, 48, 16)
SPACING_MM = (2.0, 2.0, 5.0)
# Follow-up scans are never on the same grid: the post-ablation CT's grid is shifted.
PRE_ORIGIN_MM = (-48.0, -48.0, -40.0)
POST_ORIGIN_MM = (-46.0, -49.0, -42.5)
NOISE_HU = 12.0

HU_AIR, HU_FAT, HU_LIVER, HU_VESSEL = -1000.0, -80.0, 110.0, 180.0
HU_TUMOUR, HU_ABLATION, HU_RIM = 55.0, 35.0, 90.0


@dataclass(frozen=True)
class Tumour:
    tumour_id: int
    centre_mm: tuple[float, float, float]
    radius_mm: float
    ablation_radius_mm: float  # the ablation zone is a sphere around the tumour...
    ablation_offset_mm: tuple[float, float, float]  # ...whose centre misses the tumour's


@dataclass(frozen=True)
class Patient:
    patient_id: str
    image_format: str  # "nii.gz", "nrrd" or "dicom"
    tumours: tuple[Tumour, ...]
    with_liver_and_vessels: bool = True


PATIENTS = (
    Patient("P01", "nii.gz", (Tumour(1, (-10.0, 6.0, 0.0), 11.0, 18.0, (1.5, 0.0, 0.0)),)),
    Patient(
        "P02",
        "nii.gz",
        (
            Tumour(1, (-16.0, -8.0, -10.0), 8.0, 14.0, (0.0, 2.0, 0.0)),
            Tumour(2, (14.0, 12.0, 10.0), 7.0, 10.0, (3.0, 0.0, 0.0)),
        ),
    ),
    Patient("P03", "nii.gz", (Tumour(1, (6.0, -10.0, 5.0), 14.0, 19.0, (0.0, 0.0, 2.5)),)),
    Patient("P04", "nrrd", (Tumour(1, (-8.0, 10.0, -5.0), 9.0, 15.0, (-1.0, 1.0, 0.0)),)),
    Patient(
        "P05",
        "dicom",
        (
            Tumour(1, (-14.0, 4.0, 0.0), 10.0, 16.0, (0.0, -2.0, 0.0)),
            Tumour(2, (16.0, -6.0, 0.0), 6.0, 9.0, (4.0, 0.0, 0.0)),
        ),
    ),
    Patient(
        "P06",
        "nii.gz",
        (Tumour(1, (0.0, 8.0, 10.0), 12.0, 17.0, (1.0, 1.0, 1.0)),),
        with_liver_and_vessels=False,
    ),
)


def _world_coordinates(origin: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Physical x, y, z (mm) of every voxel, arrays indexed (z, y, x) like SimpleITK's."""
    axes = [origin[i] + SPACING_MM[i] * np.arange(SIZE_XYZ[i]) for i in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def _ellipsoid(
    coords: tuple[np.ndarray, ...], centre: tuple[float, ...], radii: tuple[float, ...]
) -> np.ndarray:
    return sum(((c - m) / r) ** 2 for c, m, r in zip(coords, centre, radii, strict=True)) <= 1.0


def _anatomy(coords: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body, liver and a portal vessel running along z through the liver."""
    x, y, _ = coords
    body = _ellipsoid(coords, (0.0, 0.0, 0.0), (46.0, 40.0, 1e6))
    liver = _ellipsoid(coords, (0.0, 0.0, 0.0), (40.0, 32.0, 38.0))
    vessel = ((x - 2.0) ** 2 + (y + 1.0) ** 2 <= 3.0**2) & liver
    return body, liver, vessel


def _draw_pre(patient: Patient, rng: np.random.Generator) -> dict[str, np.ndarray]:
    coords = _world_coordinates(PRE_ORIGIN_MM)
    body, liver, vessel = _anatomy(coords)
    ct = np.where(body, HU_FAT, HU_AIR)
    ct[liver] = HU_LIVER
    ct[vessel] = HU_VESSEL
    tumours = np.zeros(ct.shape, dtype=np.uint8)
    for tumour in patient.tumours:
        inside = _ellipsoid(coords, tumour.centre_mm, (tumour.radius_mm,) * 3)
        tumours[inside] = tumour.tumour_id
        ct[inside] = HU_TUMOUR
    ct = ct + rng.normal(0.0, NOISE_HU, ct.shape)
    return {
        "pre_ct": np.round(ct).astype(np.int16),
        "pre_tumours": tumours,
        "liver": liver.astype(np.uint8),
        "vessels": vessel.astype(np.uint8),
    }


def _draw_post(patient: Patient, rng: np.random.Generator) -> dict[str, np.ndarray]:
    coords = _world_coordinates(POST_ORIGIN_MM)
    body, liver, vessel = _anatomy(coords)
    ct = np.where(body, HU_FAT, HU_AIR)
    ct[liver] = HU_LIVER
    ct[vessel] = HU_VESSEL
    zones = np.zeros(ct.shape, dtype=np.uint8)
    for tumour in patient.tumours:
        centre = tuple(
            c + o for c, o in zip(tumour.centre_mm, tumour.ablation_offset_mm, strict=True)
        )
        zone = _ellipsoid(coords, centre, (tumour.ablation_radius_mm,) * 3)
        rim = zone & ~_ellipsoid(coords, centre, (tumour.ablation_radius_mm - 2.5,) * 3)
        zones[zone] = tumour.tumour_id
        ct[zone] = HU_ABLATION
        ct[rim] = HU_RIM
    ct = ct + rng.normal(0.0, NOISE_HU, ct.shape)
    return {"post_ct": np.round(ct).astype(np.int16), "post_ablation": zones}


def _image(array: np.ndarray, origin: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_MM)
    image.SetOrigin(origin)
    return image


def _write_dicom_series(image: sitk.Image, folder: Path, patient: Patient, name: str) -> None:
    """One CT slice per file, with the tags a PACS export has (deterministic UIDs)."""
    write_dicom_series(
        Volume.from_sitk(image),
        folder,
        patient_id=patient.patient_id,
        patient_name=f"EXAMPLE^{patient.patient_id}",
        study_uid=str(generate_uid(entropy_srcs=["hepablate-example", patient.patient_id])),
        study_date="20210101",
        series_description="pre-ablation CT" if name == "pre_ct" else "post-ablation CT",
        series_number=1 if name == "pre_ct" else 2,
    )


def write_patient(patient: Patient, images_dir: Path) -> None:
    seed = zlib.crc32(patient.patient_id.encode())  # stable across runs and Python versions
    rng = np.random.default_rng(seed)
    arrays = {**_draw_pre(patient, rng), **_draw_post(patient, rng)}
    folder = images_dir / patient.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if name in ("liver", "vessels") and not patient.with_liver_and_vessels:
            continue
        origin = POST_ORIGIN_MM if name.startswith("post") else PRE_ORIGIN_MM
        image = _image(array, origin)
        if patient.image_format == "dicom" and name.endswith("_ct"):
            _write_dicom_series(image, folder / name, patient, name)
        else:
            suffix = "nrrd" if patient.image_format == "nrrd" else "nii.gz"
            sitk.WriteImage(image, str(folder / f"{name}.{suffix}"), useCompression=True)


def main(out: Path) -> None:
    for patient in PATIENTS:
        write_patient(patient, out / "images")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} COHORT_DIR")
    main(Path(sys.argv[1]))
