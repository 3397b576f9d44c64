"""The predict job: the bundle accepted as a part before the patient is read, the typed
prediction written, and a refused bundle told apart from a refused patient."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hepablate.app import BundleAccepted, BundleRefusedError, predict, simulate
from hepablate.bundle import BundleError
from hepablate.cohort import CohortValidationError
from hepablate.schemas import read_prediction
from hepablate.simulate.generate import SimulationConfig
from tests.app.conftest import Recorder, Trained

pytestmark = pytest.mark.slow  # a study and its bundle, built once


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patient") / "patient"
    simulate(SimulationConfig(n=1, seed=10_007, images=False), out, workers=1)
    return out


def test_a_prediction_is_written_and_returned_typed(
    trained: Trained, patient: Path, tmp_path: Path, recorder: Recorder
) -> None:
    out = tmp_path / "prediction.json"
    result = predict(trained.result.paths["bundle"], patient, out, progress=recorder)
    assert read_prediction(out) == result.prediction
    assert result.out == out
    assert result.bundle.id == result.prediction.bundle.id
    assert result.bundle.trust.how == "signature"
    (row,) = result.prediction.predictions
    assert 0.0 <= row.value <= 1.0
    assert result.prediction.validation.value == (
        trained.result.summary.models["logistic"].metrics.headline.value
    )
    (accepted,) = recorder.parts
    assert isinstance(accepted, BundleAccepted) and accepted == result.bundle
    assert recorder.steps == ["verifying the bundle", "checking the cohort", "predicting"]
    assert recorder.calls.index(("part", accepted)) < recorder.calls.index(
        ("step", "checking the cohort")
    )


def test_a_refused_bundle_and_a_refused_patient_are_told_apart(
    trained: Trained, patient: Path, tmp_path: Path
) -> None:
    unsigned = tmp_path / "bundle"
    shutil.copytree(trained.result.paths["bundle"], unsigned)
    (unsigned / "signature.json").unlink()
    with pytest.raises(BundleRefusedError, match="not signed"):
        predict(unsigned, patient, tmp_path / "p.json")
    broken = tmp_path / "broken"
    shutil.copytree(patient, broken)
    (broken / "cohort.yaml").write_text("name: [", encoding="utf-8")
    with pytest.raises(CohortValidationError):
        predict(trained.result.paths["bundle"], broken, tmp_path / "p.json")
    assert issubclass(BundleRefusedError, BundleError)
    assert not (tmp_path / "p.json").exists()
