"""``appearance: varied``: scans that vary as real ones do, on the same patients and outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from hepablate.app import simulate
from hepablate.imaging.io import Volume, read_volume
from hepablate.simulate.appearance import SLICE_THICKNESSES_MM
from hepablate.simulate.generate import APPEARANCE_FILE, SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth

pytestmark = pytest.mark.slow  # a cohort with images: tens of seconds

SCANS = ("pre_ct", "pre_tumours", "liver", "vessels", "post_ct", "post_ablation", "post_liver")


@pytest.fixture(scope="module")
def varied_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight patients (seed 11: among them an arterial-phase scan of a hyper-attenuating
    tumour, sharp and smooth kernels, cysts), drawn with the varied appearance."""
    out = tmp_path_factory.mktemp("varied") / "cohort"
    simulate(SimulationConfig(n=8, seed=11, appearance="varied"), out, workers=2)
    return out


def _read(cohort: Path, patient: str, name: str) -> Volume:
    return read_volume(cohort / "images" / patient / f"{name}.nii.gz")


def _patients(cohort: Path) -> list[str]:
    return sorted(p.name for p in (cohort / "images").iterdir())


def test_same_patients_tumours_and_outcomes_other_scans(
    varied_cohort: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    simulate_cohort(SimulationConfig(n=8, seed=11, images=False), plain, workers=1)
    for name in ("patients.csv", "tumours.csv", "truth.csv"):
        assert (varied_cohort / name).read_bytes() == (plain / name).read_bytes(), name
    recorded = json.loads((varied_cohort / "simulation.json").read_text(encoding="utf-8"))
    assert recorded["config"]["appearance"] == "varied"


def test_slice_thickness_varies_by_patient_within_1_to_5_mm(varied_cohort: Path) -> None:
    thicknesses = []
    for patient in _patients(varied_cohort):
        grids = {name: _read(varied_cohort, patient, name).grid for name in SCANS}
        pre, post = grids["pre_ct"], grids["post_ct"]
        assert all(grids[n].spacing_mm == pre.spacing_mm for n in SCANS), patient
        assert all(grids[n] == pre for n in ("pre_tumours", "liver", "vessels")), patient
        assert all(grids[n] == post for n in ("post_ablation", "post_liver")), patient
        sx, sy, sz = pre.spacing_mm
        assert (sx, sy) == (1.5, 1.5)  # in-plane as --size small
        assert 1.0 <= sz <= 5.0 and sz in SLICE_THICKNESSES_MM
        assert pre.size[2] * sz == pytest.approx(155.0, abs=sz)  # the same field of view
        thicknesses.append(sz)

    assert len(set(thicknesses)) >= 3, thicknesses


def test_tumour_masks_match_the_true_volumes_at_every_thickness(varied_cohort: Path) -> None:
    truth = read_truth(varied_cohort)
    for (patient, tumour), row in truth.iterrows():
        labels = _read(varied_cohort, patient, "pre_tumours")
        voxel_ml = float(np.prod(labels.grid.spacing_mm)) / 1000.0
        volume_ml = int((labels.array == tumour).sum()) * voxel_ml
        assert volume_ml == pytest.approx(row["true_tumour_volume_ml"], rel=0.25), patient


def test_cysts_are_near_water_and_in_no_tumour_mask(varied_cohort: Path) -> None:
    looks = pd.read_csv(varied_cohort / APPEARANCE_FILE)
    tumours = pd.read_csv(varied_cohort / "tumours.csv")
    rows = looks[looks["lesion"] == "tumour"]
    assert sorted(zip(rows["patient_id"], rows["tumour_id"], strict=True)) == sorted(
        zip(tumours["patient_id"], tumours["tumour_id"], strict=True)
    )
    cysts = looks[looks["lesion"] == "cyst"]
    assert len(cysts) >= 2
    checked = 0
    for cyst in cysts.itertuples():
        ct = _read(varied_cohort, str(cyst.patient_id), "pre_ct")
        labels = _read(varied_cohort, str(cyst.patient_id), "pre_tumours").array
        liver = _read(varied_cohort, str(cyst.patient_id), "liver").array
        spacing = np.asarray(ct.grid.spacing_mm)
        centre = np.array([float(v) for v in str(cyst.centre_mm).split()]) - ct.grid.origin_mm
        index = np.round(centre / spacing).astype(int)[::-1]  # z, y, x
        zz, yy, xx = np.indices(labels.shape)
        offset = (np.stack([xx, yy, zz], -1) - index[::-1]) * spacing
        distance = np.linalg.norm(offset, axis=-1)
        radius = float(cyst.diameter_mm) / 2.0
        assert not labels[distance <= radius].any(), cyst  # no tumour label on a cyst
        assert liver[tuple(index)] == 1  # the liver mask holds its cysts
        if radius >= 6.0:  # enough voxels inside for a median through the noise
            core = ct.array[distance <= radius - 3.0]
            parenchyma = ct.array[(liver == 1) & (labels == 0) & (distance > radius + 10.0)]
            assert -30.0 <= float(np.median(core)) <= 50.0, cyst
            assert float(np.median(core)) < float(np.median(parenchyma)) - 40.0, cyst
            checked += 1
    assert checked >= 1


def test_tumours_are_brighter_or_darker_than_the_liver(varied_cohort: Path) -> None:
    """Tumour-minus-liver contrast of both signs, measured on the pre CTs."""
    contrasts = []
    for patient in _patients(varied_cohort):
        ct = _read(varied_cohort, patient, "pre_ct").array.astype(float)
        labels = _read(varied_cohort, patient, "pre_tumours").array
        liver = _read(varied_cohort, patient, "liver").array.astype(bool)
        vessels = _read(varied_cohort, patient, "vessels").array.astype(bool)
        parenchyma = liver & ~ndimage.binary_dilation((labels > 0) | vessels, iterations=2)
        for tumour in np.unique(labels[labels > 0]):
            contrasts.append(float(np.median(ct[labels == tumour]) - np.median(ct[parenchyma])))

    assert max(contrasts) > 10.0 and min(contrasts) < -10.0, contrasts


def test_a_sharp_kernel_gives_more_and_finer_noise(varied_cohort: Path) -> None:
    looks = pd.read_csv(varied_cohort / APPEARANCE_FILE).drop_duplicates("patient_id")
    level: dict[str, list[float]] = {"smooth": [], "sharp": []}
    grain: dict[str, list[float]] = {"smooth": [], "sharp": []}
    for row in looks.itertuples():
        patient = str(row.patient_id)
        ct = _read(varied_cohort, patient, "pre_ct").array.astype(float)
        labels = _read(varied_cohort, patient, "pre_tumours").array
        liver = _read(varied_cohort, patient, "liver").array.astype(bool)
        vessels = _read(varied_cohort, patient, "vessels").array.astype(bool)
        inner = ndimage.binary_erosion(liver, iterations=3)
        inner &= ~ndimage.binary_dilation((labels > 0) | vessels, iterations=3)
        # Robust (median absolute deviation) so that a cyst or the mottle hardly counts.
        sigma = 1.4826 * float(np.median(np.abs(ct[inner] - np.median(ct[inner]))))
        step = (ct[:, :, 1:] - ct[:, :, :-1])[inner[:, :, 1:] & inner[:, :, :-1]]
        neighbour = 1.4826 * float(np.median(np.abs(step))) / np.sqrt(2.0)
        kernel = str(row.kernel)
        level[kernel].append(sigma * np.sqrt(float(row.slice_mm) / 2.5))  # per 2.5 mm slice
        grain[kernel].append(neighbour / sigma)  # about 1 for white noise, less when smoother

    assert level["sharp"] and level["smooth"], looks["kernel"].tolist()
    assert np.median(level["sharp"]) > 1.4 * np.median(level["smooth"]), level
    assert min(grain["sharp"]) > max(grain["smooth"]), grain
