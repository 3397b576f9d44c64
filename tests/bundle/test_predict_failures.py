"""`hepablate predict` on patients whose images break the extraction: never exit 1.

The bundle is cheap: a logistic model trained on a tabular virtual cohort to which a margin and
a tumour-intensity radiomic column are added (what imaging would have measured), with an
extraction config that measures both from images (first-order radiomics of the tumour, no
crops). A new virtual patient with images is then broken as the security review did: an
all-air post CT, a NaN-filled pre CT, all -1024 HU CTs (validation errors now), a misdrawn
post-CT liver that makes the registration fail, a one-voxel tumour. Each must end in a
prediction whose imputed inputs are listed with why, or a refusal (exit 2) with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from click.testing import Result
from typer.testing import CliRunner

from hepablate.bundle import Bundle, BundleError, load_bundle, save_bundle
from hepablate.bundle.predict import (
    EXACT_SHAP_MAX_COLUMNS,
    MARGIN,
    PredictionRefusedError,
    predict_cohort,
    predict_table,
    shapley_values,
)
from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.extract import ExtractionConfig, extract
from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.results import summarise

RADIOMIC = "rad.tumour.stat.mean"
EXTRACTION = {
    "radiomics": {"families": ["stat"]},
    "regions": ["tumour"],
    "morphology_regions": [],
    "crops": {"enabled": False},
}


def _predict_args(bundle: Path, patient: Path, out: Path) -> list[str]:
    """The arguments of `hepablate predict`, spelt in this one place."""
    return ["predict", str(bundle), str(patient), "--out", str(out)]


def _predict(bundle: Path, patient: Path, out: Path) -> Result:
    return CliRunner().invoke(app, _predict_args(bundle, patient, out))


@dataclass
class Setup:
    bundle: Path
    patient: Path  # a new virtual patient with images, unbroken


@pytest.fixture(scope="module")
def setup(
    virtual_tables: Path, new_virtual_patient: Path, tmp_path_factory: pytest.TempPathFactory
) -> Setup:
    folder = tmp_path_factory.mktemp("predict_failures")
    table = extract(load_cohort(virtual_tables))
    rng = np.random.default_rng(5)
    event = table["outcome.rfs_24m"].fillna(0).to_numpy(dtype=float)
    table[MARGIN] = 4.0 - 3.0 * event + rng.normal(0.0, 1.0, len(table))
    table[RADIOMIC] = 80.0 + 10.0 * event + rng.normal(0.0, 10.0, len(table))
    config = StudyConfig.model_validate(
        {
            "endpoint": "rfs_24m",
            "features": {"include": ["clin.*", MARGIN, RADIOMIC]},
            "selection": [{"method": "near_zero_variance"}],
            "models": [{"name": "logistic", "kind": "logistic"}],
            "validation": {"folds": 3, "repeats": 1, "bootstrap": 100, "permutations": 0},
        }
    )
    result = run_study(study_data(table, config), config)
    bundle = save_bundle(result, summarise(result), folder / "bundle", extraction=EXTRACTION)
    return Setup(bundle, new_virtual_patient)


def _broken(setup: Setup, tmp_path: Path, image: str, edit: Callable[[np.ndarray], Any]) -> Path:
    """A copy of the new patient with one image's voxels changed by ``edit`` (float32)."""
    patient = tmp_path / "patient"
    shutil.copytree(setup.patient, patient)
    path = patient / "images" / "SIM0001" / f"{image}.nii.gz"
    original = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(original)
    array = array.astype(np.float32) if image.endswith("_ct") else array
    edit(array)
    changed = sitk.GetImageFromArray(array)
    changed.CopyInformation(original)
    sitk.WriteImage(changed, str(path))
    return patient


def _one_voxel_on_the_edge(mask: np.ndarray) -> None:
    """Tumour 1 cut down to one voxel, moved to the image's first x plane."""
    z, y, _ = np.argwhere(mask == 1)[len(np.argwhere(mask == 1)) // 2]
    mask[mask == 1] = 0
    mask[z, y, 0] = 1


def _missing(row: dict[str, Any], feature: str) -> dict[str, Any]:
    [check] = [
        c for c in row["input_checks"] if c["feature"] == feature and c["check"] == "missing"
    ]
    return check


CONSTANT_CTS = [
    ("all_air_post_ct", "post_ct", -1000.0),
    ("all_minus_1024_pre_ct", "pre_ct", -1024.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("image", "value"), [c[1:] for c in CONSTANT_CTS], ids=[c[0] for c in CONSTANT_CTS]
)
def test_a_constant_ct_is_a_validation_error_naming_the_file_never_exit_1(
    setup: Setup, tmp_path: Path, image: str, value: float
) -> None:
    """An all-air or all -1024 HU scan shows no body: validate refuses it before any
    registration is tried (it used to fail inside the explanation with exit 1)."""
    patient = _broken(setup, tmp_path, image, lambda a: a.fill(value))
    out = tmp_path / "prediction.json"

    ran = _predict(setup.bundle, patient, out)

    assert ran.exit_code == 2, ran.output
    assert "Traceback" not in ran.output and "internal error" not in ran.output
    text = " ".join(ran.stdout.split())
    assert f"[images.implausible_ct] patient SIM0001 · images/SIM0001/{image}.nii.gz" in text
    assert f"every voxel is {value:g}: it shows no anatomy" in text and not out.exists()


def _misdrawn_post_liver(mask: np.ndarray) -> None:
    """The post-CT liver mask drawn 60 voxels off to the side: registration cannot agree with
    it, so the liver Dice check fails (a wrong mask, as a hurried reader might leave)."""
    mask[:] = np.roll(mask, 60, axis=2)


@pytest.mark.slow
def test_a_failed_registration_is_refused_with_the_reason_never_exit_1(
    setup: Setup, tmp_path: Path
) -> None:
    patient = _broken(setup, tmp_path, "post_liver", _misdrawn_post_liver)
    out = tmp_path / "prediction.json"

    ran = _predict(setup.bundle, patient, out)

    assert ran.exit_code == 2, ran.output
    assert "Traceback" not in ran.output and "internal error" not in ran.output
    text = " ".join(ran.stdout.split())
    assert "patient SIM0001 tumour 1: the minimal ablative margin" in text
    assert "was not measured (registration: liver Dice" in text and "below 0.85" in text
    assert "training median margin" in text and not out.exists()
    assert "--allow-imputed-margin" in text

    allowed = CliRunner().invoke(
        app, [*_predict_args(setup.bundle, patient, out), "--allow-imputed-margin"]
    )

    assert allowed.exit_code == 0, allowed.output
    said = " ".join(allowed.stdout.split())
    assert re.search(r"WARNING SIM0001, registration: [^.]*liver Dice 0\.\d+ below 0\.85", said)
    assert "imputed the training median" in said  # the input check under the tumour
    assert json.loads(out.read_text(encoding="utf-8"))["predictions"][0]["probability"] is not None


@pytest.mark.slow
def test_with_the_margin_imputed_on_request_every_imputed_input_says_why(
    setup: Setup, tmp_path: Path
) -> None:
    patient = _broken(setup, tmp_path, "post_liver", _misdrawn_post_liver)
    bundle = load_bundle(setup.bundle)

    with pytest.raises(PredictionRefusedError, match=r"registration: liver Dice 0\.\d+ below"):
        predict_cohort(bundle, load_cohort(patient))
    prediction = predict_cohort(bundle, load_cohort(patient), allow_imputed_margin=True)
    prediction = prediction.model_dump(mode="json")

    [row] = prediction["predictions"]
    assert 0.0 <= row["probability"] <= 1.0
    margin = _missing(row, MARGIN)
    assert margin["reason"].startswith("registration: liver Dice")
    median = bundle.schema["reference"][MARGIN]
    assert margin["message"].endswith(f"the model imputed the training median ({median:.4g})")
    # The contributions still add up: the prediction minus the reference patient's.
    base = pd.DataFrame([bundle.schema["reference"]], index=pd.Index(["reference"]))
    base_risk = float(bundle.risk(bundle.inputs(base))[0])
    total = sum(c["contribution"] for c in row["contributions"])
    assert abs(base_risk + total - row["probability"]) < 1e-6
    assert any(w["step"] == "registration" for w in prediction["warnings"])


@pytest.mark.slow
def test_a_nan_filled_pre_ct_is_a_validation_error_naming_file_and_count(
    setup: Setup, tmp_path: Path
) -> None:
    patient = _broken(setup, tmp_path, "pre_ct", lambda a: a.fill(np.nan))
    out = tmp_path / "prediction.json"

    ran = _predict(setup.bundle, patient, out)

    assert ran.exit_code == 2, ran.output
    text = " ".join(ran.stdout.split())
    assert "[images.non_finite] patient SIM0001 · images/SIM0001/pre_ct.nii.gz" in text
    voxels = int(np.prod(sitk.ReadImage(str(patient / "images/SIM0001/pre_ct.nii.gz")).GetSize()))
    assert f"{voxels} of {voxels} voxels are not finite numbers ({voxels} NaN)" in text
    assert not out.exists()


@pytest.mark.slow
def test_a_one_voxel_tumour_on_the_edge_is_predicted_with_what_it_lacks_and_why(
    setup: Setup, tmp_path: Path
) -> None:
    patient = _broken(setup, tmp_path, "pre_tumours", _one_voxel_on_the_edge)
    out = tmp_path / "prediction.json"

    ran = _predict(setup.bundle, patient, out)

    assert ran.exit_code == 0, ran.output
    text = " ".join(ran.stdout.split())
    assert f"CHECK {RADIOMIC} is missing (radiomics: the tumour region has" in text
    assert "radiomics needs at least 27" in text
    [row] = json.loads(out.read_text(encoding="utf-8"))["predictions"]
    assert _missing(row, RADIOMIC)["value"] is None
    warned = " ".join(
        c["message"] for c in row["input_checks"] if c["check"] == "extraction_warning"
    )
    assert "tumour 1 has 1 voxel(s) in 'pre_tumours'" in warned
    assert "tumour 1 in 'pre_tumours' reaches the edge of the image (the first x plane)" in warned
    assert "images/SIM0001/pre_tumours.nii.gz" in warned
    assert "CHECK validation: tumour 1 in 'pre_tumours' reaches the edge" in text
    assert np.isfinite(row["probability"]) and row["what_if_margin"]["available"]


@pytest.mark.slow
def test_a_model_column_absent_without_a_reason_is_still_an_error(
    setup: Setup, tmp_path: Path
) -> None:
    bundle = load_bundle(setup.bundle)
    config = ExtractionConfig.model_validate(bundle.extraction)
    table = extract(load_cohort(setup.patient), config)
    assert table.attrs["hepablate"]["warnings"] == []

    with pytest.raises(BundleError, match=rf"lacks the model's columns \['{RADIOMIC}'\]"):
        predict_table(bundle, table.drop(columns=[RADIOMIC]))


def _contributions(prediction: Path) -> list[dict[str, Any]]:
    [row] = json.loads(prediction.read_text(encoding="utf-8"))["predictions"]
    return list(row["contributions"])


@pytest.mark.slow
def test_two_runs_in_two_processes_give_identical_contributions(
    setup: Setup, tmp_path: Path
) -> None:
    outs = [tmp_path / "here.json", tmp_path / "elsewhere.json"]
    here = _predict(setup.bundle, setup.patient, outs[0])  # in this process ...
    assert here.exit_code == 0, here.output
    code = "from hepablate.cli import main; main()"
    subprocess.run(  # ... and in a fresh one, with another hash seed
        [sys.executable, "-c", code, *_predict_args(setup.bundle, setup.patient, outs[1])],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )

    first, second = (_contributions(out) for out in outs)
    assert first == second  # values, order and all
    bundle: Bundle = load_bundle(setup.bundle)
    method = json.loads(outs[0].read_text(encoding="utf-8"))["predictions"][0]
    assert (
        "permutation explainer (25 antithetic permutations, seed 0)"
        in method["contribution_method"]
    )
    assert len(first) > EXACT_SHAP_MAX_COLUMNS and bundle.manifest.model == "logistic"


def _interaction(codes: np.ndarray) -> np.ndarray:
    """x0 * x1 + 2 x2 + the sum of the rest: Shapley values known in closed form."""
    return np.asarray(codes[:, 0] * codes[:, 1] + 2 * codes[:, 2] + codes[:, 3:].sum(axis=1))


@pytest.mark.slow
def test_shapley_values_are_exact_for_few_columns_and_seeded_beyond() -> None:
    patient, reference = np.array([2.0, 3.0, 1.0, 5.0]), np.zeros(4)

    values, how = shapley_values(_interaction, patient, reference)

    assert how.startswith("exact Shapley values")
    np.testing.assert_allclose(values, [3.0, 3.0, 2.0, 5.0])  # x0 x1 = 6 shared equally

    many = np.arange(1.0, EXACT_SHAP_MAX_COLUMNS + 4)
    np.random.seed(123)  # noqa: NPY002 (the caller's global stream, which must be kept)
    expected_draw = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    first, how = shapley_values(_interaction, many, np.zeros_like(many))
    assert np.random.random() == expected_draw  # noqa: NPY002
    second, _ = shapley_values(_interaction, many, np.zeros_like(many))
    assert how.startswith("SHAP permutation explainer")
    np.testing.assert_array_equal(first, second)
    total = _interaction(many[None, :])[0] - _interaction(np.zeros((1, len(many))))[0]
    assert first.sum() == pytest.approx(total)
    np.testing.assert_allclose(first[2:], [6.0, *many[3:]])  # additive parts exactly
    # A missing value (NaN) differs from the reference and is explained like any other.
    patient[1] = np.nan
    with_missing, _ = shapley_values(lambda c: np.nan_to_num(c).sum(axis=1), patient, reference)
    np.testing.assert_allclose(with_missing, [2.0, 0.0, 1.0, 5.0], atol=1e-12)
