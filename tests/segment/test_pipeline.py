"""The pipeline with automatic masks: a patient with only its CTs segmented, extracted and
predicted end to end (`hepablate predict --segmenter`), and the margins from manual and from
automatic masks compared on the same patients."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hepablate.app import extract_cohort
from hepablate.app.extract import MARGIN, compare_margins
from hepablate.bundle import save_bundle
from hepablate.cli import app
from hepablate.cohort import Cohort
from hepablate.features.crops import CropConfig
from hepablate.features.extract import ExtractionConfig, ExtractionConfigError
from hepablate.schemas import read_prediction
from hepablate.segment import segmenter_id
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.results import summarise

pytestmark = pytest.mark.slow  # a segmenter trained once (about 20 s), then a few extractions

runner = CliRunner()
# Geometry only: what the margin needs.
GEOMETRY = ExtractionConfig(radiomics=None, crops=CropConfig(enabled=False))
MASKS = ("pre_tumours", "post_ablation", "liver", "post_liver", "vessels")


def _text(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module")
def ct_only_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual patient (one tumour) whose folder holds only its pre and post CT: its
    cohort.yaml declares the two scans and no mask."""
    out = tmp_path_factory.mktemp("ct-only") / "patient"
    simulate_cohort(SimulationConfig(n=1, seed=99), out, workers=1)
    for name in MASKS:
        (out / "images" / "SIM0001" / f"{name}.nii.gz").unlink()
    schema = yaml.safe_load((out / "cohort.yaml").read_text(encoding="utf-8"))
    del schema["images"]["masks"]
    (out / "cohort.yaml").write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def geometry_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic model of the age and the minimal ablative margin, trained in a second on a
    synthetic table, with the geometry-only extraction: the inputs a new patient's masks give."""
    rng = np.random.default_rng(0)
    n = 60
    margin = rng.uniform(-2.0, 10.0, n)
    frame = pd.DataFrame(
        {"clin.age": rng.normal(65, 8, n).round(), MARGIN: margin},
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
    )
    frame["outcome.ltp_24m"] = (rng.random(n) < 1.0 / (1.0 + np.exp(0.5 * margin - 1.0))).astype(
        int
    )
    config = StudyConfig.model_validate(
        {
            "endpoint": "ltp_24m",
            "features": {"force": [MARGIN]},
            "selection": [{"method": "near_zero_variance"}],
            "models": [{"name": "logistic", "kind": "logistic", "grid": {"C": [1.0]}}],
            "validation": {"folds": 2, "repeats": 1, "bootstrap": 100, "permutations": 0},
        }
    )
    result = run_study(study_data(frame, config), config)
    return save_bundle(
        result,
        summarise(result),
        tmp_path_factory.mktemp("geometry") / "bundle",
        extraction=GEOMETRY.model_dump(mode="json"),
    )


def test_a_patient_with_only_its_cts_is_predicted_with_automatic_masks(
    ct_only_patient: Path, geometry_bundle: Path, pipeline_segmenter: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prediction.json"

    ran = runner.invoke(
        app,
        [
            "predict",
            str(geometry_bundle),
            str(ct_only_patient),
            "--segmenter",
            str(pipeline_segmenter),
            "--out",
            str(out),
        ],
    )

    assert ran.exit_code == 0, ran.output
    prediction = read_prediction(out)
    assert prediction.schema_version == 2
    (row,) = prediction.predictions  # the patient's one tumour
    assert row.patient_id == "SIM0001" and row.tumour_id == 1
    assert 0.0 < row.value < 1.0
    assert row.masks is not None
    assert row.masks.model_dump() == {
        "source": "auto",
        "tumours": "auto",
        "ablation": "auto",
        "liver": "auto",
        "post_liver": "auto",
    }
    assert prediction.segmenter is not None
    assert prediction.segmenter.id == segmenter_id(pipeline_segmenter)
    # the margin was measured from the automatic masks, not imputed
    assert not [c for c in row.input_checks if c.check == "missing"]
    assert "masks: auto (automatic: tumours, ablation, liver, post_liver)" in ran.stdout
    # lesions the segmenter finds beyond the table's tumours are warnings (tested in
    # tests/features/test_mask_sources.py), not asserted here: the tiny segmenter draws more
    # or fewer of them as its training changes
    assert json.loads(out.read_text(encoding="utf-8"))["predictions"][0]["masks"]["source"] == (
        "auto"
    )


def test_without_a_segmenter_such_a_patient_is_refused_naming_what_is_missing(
    ct_only_patient: Path, geometry_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prediction.json"

    ran = runner.invoke(
        app, ["predict", str(geometry_bundle), str(ct_only_patient), "--out", str(out)]
    )

    assert ran.exit_code == 2, ran.output
    text = _text(ran.output)
    assert "patient SIM0001 tumour 1" in text and "no pre-ablation CT or tumour mask" in text
    assert "Traceback" not in ran.output and not out.exists()


def test_a_refused_segmenter_exits_2_before_the_patient_is_read(
    ct_only_patient: Path, geometry_bundle: Path, pipeline_segmenter: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "seg"
    shutil.copytree(pipeline_segmenter, tampered)
    weights = tampered / "pre.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")

    ran = runner.invoke(
        app,
        ["predict", str(geometry_bundle), str(ct_only_patient), "--segmenter", str(tampered)],
    )

    assert ran.exit_code == 2, ran.output
    assert f"segmenter: {weights}: changed since the bundle was written" in _text(ran.output)


def test_a_segmenter_pinned_by_another_id_is_refused_before_the_cohort_is_read(
    pipeline_segmenter: Path, tmp_path: Path
) -> None:
    pinned = GEOMETRY.model_dump(mode="json")
    pinned.update(masks="auto", segmenter={"bundle": str(pipeline_segmenter), "id": "0" * 64})
    with pytest.raises(ExtractionConfigError, match="not the configured 0000"):
        extract_cohort(
            tmp_path / "no-such-cohort",
            tmp_path / "f.parquet",
            config=ExtractionConfig.model_validate(pinned),
        )


def test_the_margins_from_manual_and_automatic_masks_are_compared_per_tumour(
    tiny_cohort: Cohort, pipeline_segmenter: Path, tmp_path: Path
) -> None:
    config = GEOMETRY.model_copy(update={"register_post_ct": False})
    # two patients: the margin between the surfaces of this segmenter's ragged lesions takes
    # seconds each
    assert tiny_cohort.tumours is not None
    two = dataclasses.replace(
        tiny_cohort,
        patients=tiny_cohort.patients.iloc[:2],
        tumours=tiny_cohort.tumours.loc[tiny_cohort.patient_ids[:2]],
    )

    compared = compare_margins(two, config, pipeline_segmenter, cache=tmp_path / "c")

    pairs = compared.tumours
    assert list(pairs.columns) == ["manual_mm", "auto_mm", "difference_mm"]
    assert len(pairs) == len(two.tumours)  # type: ignore[arg-type]
    np.testing.assert_allclose(
        pairs["manual_mm"], compared.manual[MARGIN].astype(float), equal_nan=True
    )
    both = pairs.dropna()
    assert compared.n_tumours == len(both) >= 1
    assert compared.n_patients == both.index.get_level_values(0).nunique()
    assert compared.median_absolute_difference_mm == pytest.approx(
        float((both["auto_mm"] - both["manual_mm"]).abs().median())
    )
    assert (compared.manual["qa.mask_source"] == "manual").all()
    assert (compared.auto["qa.mask_source"] == "auto").all()
    assert (compared.auto["qa.mask_source.ablation"] == "auto").all()
    recorded = compared.auto.attrs["hepablate"]["extraction_config"]
    assert recorded["masks"] == "auto"
    assert recorded["segmenter"] == {
        "bundle": str(pipeline_segmenter),
        "id": segmenter_id(pipeline_segmenter),
    }
