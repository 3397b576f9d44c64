"""`hepablate predict` end to end on images: a virtual cohort with CT and masks, the light
extraction with crops, a study whose bundle holds the image network with the survival head
(``multimodal_surv``), then a new virtual patient through the command line, as a user runs it;
then the same bundle as the image encoder of an extraction (``deep.image_*`` columns).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hepablate import configs
from hepablate.app import extract_features
from hepablate.bundle import BundleError, load_bundle, save_bundle
from hepablate.bundle.predict import PredictionRefusedError, predict_table
from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.extract import (
    DeepEncoder,
    ExtractionConfigError,
    extract,
    load_extraction_config,
)
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.results import summarise

SMALL_NETWORK: dict[str, list[Any]] = {
    "channels": [[4, 8]],
    "embedding": [4],
    "hidden": [8],
    "epochs": [4],
    "patience": [2],
    "n_members": [2],
}


@pytest.mark.acceptance  # minutes: make acceptance (CI's 20-minute budget)
def test_predict_on_a_new_virtual_patient_with_an_image_survival_bundle(tmp_path: Path) -> None:
    cohort_dir = tmp_path / "cohort"
    simulate_cohort(SimulationConfig(n=30, seed=7), cohort_dir, workers=2)
    extraction = load_extraction_config(configs.path("light_extraction"))
    table = extract(load_cohort(cohort_dir), extraction, workers=2, cache=tmp_path / "cache")
    config = StudyConfig.model_validate(
        {
            "endpoint": "ltp",
            "selection": [{"method": "near_zero_variance"}],
            "models": [
                {"name": "cox", "kind": "cox", "grid": {"alpha": [10.0]}},
                {"name": "image", "kind": "multimodal_surv", "grid": SMALL_NETWORK},
            ],
            "validation": {"folds": 2, "repeats": 1, "bootstrap": 100, "permutations": 0},
            "bundle_model": "image",
        }
    )
    result = run_study(study_data(table, config), config)
    bundle_dir = save_bundle(
        result,
        summarise(result),
        tmp_path / "bundle",
        extraction=table.attrs["hepablate"]["extraction_config"],
    )
    assert load_bundle(bundle_dir).manifest.kind == "multimodal_surv"
    new_patient = tmp_path / "new_patient"
    simulate_cohort(SimulationConfig(n=1, seed=10001), new_patient, workers=1)
    out = tmp_path / "prediction.json"

    ran = CliRunner().invoke(app, ["predict", str(bundle_dir), str(new_patient), "--out", str(out)])

    assert ran.exit_code == 0, ran.stdout
    prediction = json.loads(out.read_text(encoding="utf-8"))
    assert prediction["bundle"]["kind"] == "multimodal_surv"
    [row] = prediction["predictions"]  # the new patient has one tumour
    assert row["patient_id"] == "SIM0001" and np.isfinite(row["risk_score"])
    assert row["uncertainty"] > 0  # two members that differ
    survival = row["survival"]["probability"]
    assert all(0.0 <= s <= 1.0 for s in survival)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(survival))
    assert row["risk_group"] in prediction["risk_groups"]["labels"]
    assert row["contribution_method"].startswith("integrated gradients of the log hazard ratio")
    curve = row["what_if_margin"]
    assert curve["available"] and len(curve["risk"]) == len(curve["margin_mm"])

    # The model's normalisation is in the bundle: its window, and the crops' size and spacing,
    # and a table whose crops were made otherwise is refused before any image is read.
    bundle = load_bundle(bundle_dir)
    assert bundle.pipeline[-1].hu_window == (-100.0, 250.0)
    new_table = extract(load_cohort(new_patient), extraction, cache=tmp_path / "check_cache")
    finer = new_table.copy()
    finer.attrs = copy.deepcopy(new_table.attrs)
    finer.attrs["hepablate"]["crops"]["spacing_mm"] = 1.0
    with pytest.raises(PredictionRefusedError, match=r"cubes at 1 mm; the model was trained on"):
        predict_table(bundle, finer)

    # The same network as an image encoder: deep.image_* columns of the new patient's tumour.
    with_encoder = extraction.model_copy(update={"deep": DeepEncoder(bundle=bundle_dir)})
    cache = tmp_path / "new_cache"
    described = extract_features(load_cohort(new_patient), with_encoder, cache=cache)
    columns = [c for c in described.columns if c.startswith("deep.")]
    assert columns == [f"deep.image_{i}" for i in range(SMALL_NETWORK["embedding"][0])]
    encoder = bundle.pipeline[-1].set_params(crops=described.attrs["hepablate"]["crops"])
    np.testing.assert_allclose(described[columns].to_numpy(), encoder.embed(described).to_numpy())
    assert described.attrs["hepablate"]["deep_encoder"]["id"] == bundle.id
    wrong = DeepEncoder(bundle=bundle_dir, id="0" * 64)
    with pytest.raises(BundleError, match="not the configured"):
        extract_features(
            load_cohort(new_patient), extraction.model_copy(update={"deep": wrong}), cache=cache
        )
    # features never load a bundle: without the caller's encoder, deep: is refused by name
    with pytest.raises(ExtractionConfigError, match="encoder bundle is loaded by the caller"):
        extract(load_cohort(new_patient), with_encoder, cache=cache)
