"""`extract` on a patient with the pre-ablation CT only: size and distances from analytic shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hepablate.cohort import load_cohort
from hepablate.features.crops import load_crops
from hepablate.features.extract import ExtractionConfig, extract
from hepablate.features.geometry import ZONE_COLUMNS
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

SPACING_XYZ = (0.7, 0.7, 2.5)  # mm, as NIfTI orders them
SIZE_XYZ = (100, 100, 28)
# Tumour 1: radius 8 mm; tumour 2: radius 5 mm, 10 mm edge to edge from tumour 1 along y.
CENTRES_XYZ = {1: (35.0, 30.0, 33.0), 2: (35.0, 53.0, 33.0)}
RADII = {1: 8.0, 2: 5.0}
CAPSULE_X = 55.0  # the liver is x <= 55 mm: tumour 1 is 12 mm deep
VESSEL_YX = (10.0, 35.0)  # a vessel along z, radius 2.5 mm: 9.5 mm from tumour 1


def _write(array: np.ndarray, path: Path, pixel: int) -> None:
    image = sitk.GetImageFromArray(array.astype(np.int16 if pixel == 16 else np.uint8))
    image.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(image, str(path))


def _pre_ct_only_patient(folder: Path) -> None:
    """Replace P02's images with analytic shapes and remove its post-ablation scans."""
    for name in ("post_ct", "post_ablation"):
        (folder / f"{name}.nii.gz").unlink()
    axes = [np.arange(n) * s for n, s in zip(SIZE_XYZ[::-1], SPACING_XYZ[::-1], strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    labels = np.zeros(z.shape, np.uint8)
    for tumour, (cx, cy, cz) in CENTRES_XYZ.items():
        labels[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= RADII[tumour] ** 2] = tumour
    liver = x <= CAPSULE_X
    vessels = (y - VESSEL_YX[0]) ** 2 + (x - VESSEL_YX[1]) ** 2 <= 2.5**2
    # fat beside the liver (a CT of a body has some tissue below -100 HU: validate checks it)
    ct = np.where(liver, 60, -150) + np.where(labels > 0, 40, 0) + np.where(vessels, 120, 0)
    _write(ct, folder / "pre_ct.nii.gz", 16)
    _write(labels, folder / "pre_tumours.nii.gz", 8)
    _write(liver, folder / "liver.nii.gz", 8)
    _write(vessels, folder / "vessels.nii.gz", 8)


@pytest.fixture
def pre_ct_only(cohort_copy: Path) -> Path:
    schema = (cohort_copy / "cohort.yaml").read_text(encoding="utf-8")
    schema = schema.replace(
        "post_ct: {modality: CT,", "post_ct: {required: false, modality: CT,"
    ).replace("post_ablation: {scan: post_ct,", "post_ablation: {required: false, scan: post_ct,")
    (cohort_copy / "cohort.yaml").write_text(schema, encoding="utf-8")
    _pre_ct_only_patient(cohort_copy / "images" / "P02")
    return cohort_copy


@pytest.mark.slow
def test_pre_ct_only_patient_gets_size_and_distances(pre_ct_only: Path, tmp_path: Path) -> None:
    config = ExtractionConfig.model_validate({"radiomics": None})

    table = extract(load_cohort(pre_ct_only), config, cache=tmp_path / "cache")

    one, two = table.loc[("P02", 1)], table.loc[("P02", 2)]
    assert one["geom.tumour_volume_ml"] == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.05)
    assert one["geom.tumour_max_diameter_mm"] == pytest.approx(16.0, abs=1.0)
    assert one["geom.distance_to_capsule_mm"] == pytest.approx(12.0, abs=1.0)
    assert not bool(one["geom.subcapsular"])
    assert one["geom.distance_to_vessel_mm"] == pytest.approx(9.5, abs=1.0)
    assert one["geom.distance_to_other_tumour_mm"] == pytest.approx(10.0, abs=1.0)
    assert two["geom.distance_to_other_tumour_mm"] == pytest.approx(10.0, abs=1.0)
    assert two["geom.tumour_volume_ml"] == pytest.approx(4 / 3 * np.pi * 5**3 / 1000, rel=0.1)
    for column in ZONE_COLUMNS:
        assert table.loc[("P02", [1, 2]), column].isna().all(), column
    assert one["qa.registration_note"] == "not measured: no post_ct, post_ablation"
    # A patient with both scans still gets its margin.
    assert np.isfinite(float(table.loc[("P01", 1), "geom.minimal_ablative_margin_mm"]))
    crops = load_crops(table, "P02", 1)
    assert set(crops) == {"pre"}  # no post crop: absent, not zeros
    assert crops["pre"].shape == (3, 32, 32, 32)
    assert crops["pre"][1].sum() > 0 and crops["pre"][2].sum() == 0  # tumour; no zone drawn
    assert set(load_crops(table, "P01", 1)) == {"pre", "post"}


@pytest.mark.slow
def test_failed_registration_keeps_the_pre_ct_geometry(tmp_path: Path) -> None:
    simulate_cohort(SimulationConfig(n=2, seed=5), tmp_path / "cohort", workers=1)
    impossible = ExtractionConfig.model_validate(
        # no real registration reaches a Dice of 1
        {"registration": {"min_liver_dice": 1.0}, "radiomics": None, "crops": {"enabled": False}}
    )

    table = extract(load_cohort(tmp_path / "cohort"), impossible)

    assert not table["qa.registration_ok"].any()
    for column in ZONE_COLUMNS:
        assert table[column].isna().all(), column
    assert (table["geom.tumour_volume_ml"].astype(float) > 0).all()
    assert table["geom.distance_to_capsule_mm"].notna().all()
