"""The multimodal network on synthetic crops whose outcome is known.

Each tumour's crop has a bright blob whose intensity drives the outcome; one tabular column
drives it too and another is noise. The crops go through a real FeatureCache, as after
``hepablate extract``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from hepablate.bundle import bundle_id_of, load_bundle, save_bundle
from hepablate.features.cache import FeatureCache, PatientResult
from hepablate.features.crops import CropStore
from hepablate.models.multimodal import MultimodalClassifier, MultimodalSurvival, base
from hepablate.models.multimodal.inputs import HU_WINDOW
from hepablate.report.sections import deep_sentences
from hepablate.study import StudyConfig, run_study
from hepablate.study.data import StudyData
from hepablate.study.results import summarise

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

SIZE = 12
FAST: dict[str, Any] = {
    "channels": (4, 8),
    "embedding": 4,
    "hidden": 8,
    "epochs": 25,
    "patience": 8,
    "batch_size": 16,
    "n_members": 2,
    "learning_rate": 3e-3,
}


def _cohort(
    root: Path, n: int, seed: int, survival: bool = False, pre_only: bool = False
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """``survival``: y is (event, time) with a hazard exp(risk) instead of a binary label;
    ``pre_only``: no post crop (a pre-treatment cohort)."""
    rng = np.random.default_rng(seed)
    cache = FeatureCache(root)
    blob = np.zeros((SIZE, SIZE, SIZE), dtype=np.float32)
    blob[4:8, 4:8, 4:8] = 1.0
    intensity = rng.normal(size=n)
    informative = rng.normal(size=n)
    risk = 1.8 * intensity + 1.2 * informative
    y = (risk + rng.normal(scale=0.7, size=n) > 0.8).astype(int)
    if survival:
        event_time = rng.exponential(10.0, n) * np.exp(-0.6 * risk)
        censor = rng.uniform(2.0, 25.0, n)
        y = Surv.from_arrays(event_time <= censor, np.minimum(event_time, censor))
    keys, index = {}, []
    for i in range(n):
        patient = f"P{i:03d}"
        noise = rng.normal(0.0, 15.0, size=(SIZE, SIZE, SIZE)).astype(np.float32)
        ct = 60.0 + 60.0 * intensity[i] * blob + noise  # HU: the window keeps the contrast
        channels = np.stack([ct, blob, blob])
        crops = {"1_pre": channels, "1_post": channels[[0, 2, 1]]}
        if pre_only:
            del crops["1_post"]
        keys[patient] = f"k{i}"
        cache.put(patient, f"k{i}", PatientResult(rows={1: {}}, crops=crops))
        index.append((patient, 1))
    X = pd.DataFrame(
        {"informative": informative, "noise": rng.normal(size=n)},
        index=pd.MultiIndex.from_tuples(index, names=["patient_id", "tumour_id"]),
    )
    crops_info = {"cache": str(root), "keys": keys, "size_mm": 2.0 * SIZE, "spacing_mm": 2.0}
    return X, y, crops_info


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("crops")
    X, y, crops = _cohort(root / "train", 160, seed=0)
    X_test, y_test, crops_test = _cohort(root / "test", 80, seed=1)
    model = MultimodalClassifier(crops=crops, **FAST).fit(X, y)
    return {
        "model": model,
        "X": X,
        "y": y,
        "X_test": X_test,
        "y_test": y_test,
        "crops_test": crops_test,
        "crops": crops,
    }


@pytest.mark.slow
def test_it_learns_from_the_image_and_the_table(fitted: dict[str, Any]) -> None:
    model = fitted["model"].set_params(crops=fitted["crops_test"])
    probability = model.predict_proba(fitted["X_test"])[:, 1]
    assert probability.shape == (80,)
    assert ((probability >= 0) & (probability <= 1)).all()
    # The informative column alone reaches about 0.84; the image adds what the blob carries.
    table_only = roc_auc_score(fitted["y_test"], fitted["X_test"]["informative"])
    auc = roc_auc_score(fitted["y_test"], probability)
    assert auc >= 0.85 and auc > table_only + 0.05, (auc, table_only)
    uncertainty = model.predict_uncertainty(fitted["X_test"])
    assert uncertainty.shape == (80,) and (uncertainty >= 0).all() and uncertainty.max() > 0
    # Calibration-in-the-large after the prior correction: mean prediction near the event rate.
    assert abs(probability.mean() - fitted["y_test"].mean()) < 0.1
    model.set_params(crops=fitted["crops"])


@pytest.mark.acceptance  # minutes: make acceptance (CI's 20-minute budget)
def test_the_same_seed_gives_the_same_model(fitted: dict[str, Any]) -> None:
    again = MultimodalClassifier(crops=fitted["crops"], **FAST).fit(fitted["X"], fitted["y"])
    np.testing.assert_array_equal(
        again.predict_proba(fitted["X"]), fitted["model"].predict_proba(fitted["X"])
    )


@pytest.mark.slow
def test_state_round_trip_and_a_mismatched_state_is_refused(fitted: dict[str, Any]) -> None:
    model = fitted["model"]
    tensors, config = model.to_state()
    assert config["params"]["crops"] is None
    restored = MultimodalClassifier.from_state(tensors, config).set_params(crops=fitted["crops"])
    np.testing.assert_array_equal(
        restored.predict_proba(fitted["X"]), model.predict_proba(fitted["X"])
    )
    name = next(k for k in tensors if k.endswith("weight") and tensors[k].ndim == 2)
    broken = {**tensors, name: np.zeros((3, 3), dtype=np.float32)}
    with pytest.raises(ValueError, match="do not fit the network"):
        MultimodalClassifier.from_state(broken, config)


@pytest.mark.slow
def test_embedding_and_explanation(fitted: dict[str, Any]) -> None:
    model, X = fitted["model"], fitted["X"].iloc[:20]
    embedding = model.embed(X)
    assert list(embedding.columns) == [f"deep.image_{i}" for i in range(FAST["embedding"])]
    assert embedding.index.equals(X.index)
    attributions = model.explain(X)
    assert attributions.shape == (20, 2)
    strength = np.abs(attributions).mean(axis=0)
    assert strength[0] > 2 * strength[1], strength  # the informative column, not the noise


@pytest.mark.slow
def test_batched_inference_gives_the_same_outputs(
    fitted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, X = fitted["model"], fitted["X"]
    whole = model.predict_proba(X)
    embedding = model.embed(X)
    monkeypatch.setattr(base, "INFERENCE_BATCH", 7)  # 160 rows: 23 batches, 6 left
    np.testing.assert_allclose(model.predict_proba(X), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.embed(X), embedding, rtol=1e-5, atol=1e-6)


def test_a_patient_without_crops_is_named(tmp_path: Path) -> None:
    source = CropStore({"cache": str(tmp_path), "keys": {}})
    with pytest.raises(KeyError, match="patient P9"):
        source.tumour("P9", 1)
    with pytest.raises(KeyError, match="patient P9"):
        source.stack([("P9", 1)], ("pre",))
    with pytest.raises(ValueError, match="no crops on disk"):
        CropStore({"cache": None, "keys": {}})


@pytest.mark.slow
def test_the_ct_window_is_the_models_own_and_saved_with_it(fitted: dict[str, Any]) -> None:
    model, X = fitted["model"], fitted["X"].iloc[:40]
    tensors, config = model.to_state()
    assert config["params"]["hu_window"] == list(HU_WINDOW)
    before = model.predict_proba(X)
    # Another window is another input: the same weights predict otherwise ...
    narrow = MultimodalClassifier.from_state(
        tensors, {**config, "params": {**config["params"], "hu_window": [0.0, 100.0]}}
    ).set_params(crops=fitted["crops"])
    assert narrow.hu_window == (0.0, 100.0)
    assert np.abs(narrow.predict_proba(X) - before).max() > 1e-3
    # ... and a state saved with it predicts with it, whatever the default is.
    again = MultimodalClassifier.from_state(*narrow.to_state()).set_params(crops=fitted["crops"])
    np.testing.assert_array_equal(again.predict_proba(X), narrow.predict_proba(X))
    # A state written before the window was saved (an old bundle) windows as then.
    old = {**config, "params": {k: v for k, v in config["params"].items() if k != "hu_window"}}
    old["fitted"] = {
        k: v for k, v in config["fitted"].items() if k not in ("crop_size_mm_", "crop_spacing_mm_")
    }
    restored = MultimodalClassifier.from_state(tensors, old).set_params(crops=fitted["crops"])
    assert restored.hu_window == HU_WINDOW
    np.testing.assert_array_equal(restored.predict_proba(X), before)


@pytest.mark.slow
def test_crops_of_another_size_spacing_or_shape_are_refused(
    fitted: dict[str, Any], tmp_path: Path
) -> None:
    model, X = fitted["model"], fitted["X"].iloc[:5]
    assert (model.geometry_.size_mm, model.geometry_.spacing_mm) == (2.0 * SIZE, 2.0)
    finer = {**fitted["crops"], "spacing_mm": 1.0}
    with pytest.raises(ValueError, match=r"24 mm cubes at 1 mm; the model was trained on 24 mm"):
        model.check_crops(finer)
    with pytest.raises(ValueError, match="at 1 mm"):
        MultimodalClassifier.from_state(*model.to_state()).set_params(crops=finer).predict(X)
    model.check_crops(fitted["crops"])  # the training ones pass
    # Crops of a table that did not record size and spacing are checked by their shape.
    small = np.zeros((3, 8, 8, 8), dtype=np.float32)
    FeatureCache(tmp_path).put(
        "P000", "k", PatientResult(rows={1: {}}, crops={"1_pre": small, "1_post": small})
    )
    unrecorded = {"cache": str(tmp_path), "keys": {"P000": "k"}}
    restored = MultimodalClassifier.from_state(*model.to_state()).set_params(crops=unrecorded)
    with pytest.raises(ValueError, match=r"the crops have shape \(6, 8, 8, 8\); the model was"):
        restored.predict(X.iloc[:1])


def test_on_a_pre_treatment_cohort_it_learns_from_the_pre_crops(
    tmp_path: Path, fitted: dict[str, Any]
) -> None:
    X, y, crops = _cohort(tmp_path / "train", 100, seed=3, pre_only=True)
    X_test, y_test, crops_test = _cohort(tmp_path / "test", 50, seed=4, pre_only=True)
    model = MultimodalClassifier(crops=crops, **{**FAST, "n_members": 1}).fit(X, y)
    assert model.phases_ == ("pre",)
    assert model.geometry_.shape == (3, SIZE, SIZE, SIZE)
    model.set_params(crops=crops_test)
    assert roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]) > 0.75
    tensors, config = model.to_state()
    again = MultimodalClassifier.from_state(tensors, config).set_params(crops=crops_test)
    assert again.phases_ == ("pre",)
    np.testing.assert_allclose(again.predict_proba(X_test), model.predict_proba(X_test))
    # the model of the pre and post crops names what a pre-treatment patient lacks
    both = fitted["model"]
    assert both.phases_ == ("pre", "post")
    both = MultimodalClassifier.from_state(*both.to_state()).set_params(crops=crops_test)
    with pytest.raises(KeyError, match=r"patient P000, tumour 1: no post crop"):
        both.predict_proba(X_test)


@pytest.mark.acceptance  # minutes: make acceptance (CI's 20-minute budget)
def test_in_a_study_the_deep_model_is_compared_with_the_best_baseline(
    tmp_path: Path,
) -> None:
    X, y, crops = _cohort(tmp_path, 150, seed=2)
    data = StudyData(
        X=X,
        y=y,
        groups=X.index.get_level_values(0).to_numpy(),
        centres=np.full(len(y), "A"),
        survival=False,
        endpoint={"name": "synthetic", "kind": "binary", "events": int(y.sum())},
        clinical=["informative", "noise"],
        crops=crops,
    )
    grid = {k: [list(v) if isinstance(v, tuple) else v] for k, v in FAST.items()}
    config = StudyConfig.model_validate(
        {
            "endpoint": "synthetic",
            "models": [
                {"name": "logistic", "kind": "logistic"},
                {"name": "multimodal", "kind": "multimodal", "grid": grid},
            ],
            "validation": {"folds": 3, "repeats": 1, "bootstrap": 100, "permutations": 0},
        }
    )
    summary = summarise(run_study(data, config, refit=False))
    [row] = summary.comparison.deep_against_baselines
    assert row.deep == "multimodal" and row.baseline == "logistic"
    auc = {n: summary.models[n].metrics.headline.value for n in ("logistic", "multimodal")}
    # The blob's intensity is only in the image: the network must beat the table's logistic.
    assert auc["multimodal"] > auc["logistic"] + 0.03, auc
    value = row.difference.value
    assert value is not None and value > 0 and row.verdict == "multimodal wins", row
    [sentence] = deep_sentences(summary)
    assert sentence.startswith("Deep model multimodal against the best baseline, logistic")
    assert "multimodal wins" in sentence


@pytest.mark.slow
def test_the_survival_head_learns_from_the_image_and_gives_curves(tmp_path: Path) -> None:
    X, y, crops = _cohort(tmp_path / "train", 160, seed=3, survival=True)
    X_test, y_test, crops_test = _cohort(tmp_path / "test", 80, seed=4, survival=True)
    model = MultimodalSurvival(crops=crops, **FAST).fit(X, y)
    model.set_params(crops=crops_test)
    risk = model.predict(X_test)
    c_index = concordance_index_censored(y_test["event"], y_test["time"], risk)[0]
    cox = CoxPHSurvivalAnalysis().fit(X, y)
    table_only = concordance_index_censored(y_test["event"], y_test["time"], cox.predict(X_test))
    # The blob's intensity is only in the image: the network beats a Cox model of the table.
    assert c_index > table_only[0] + 0.05 and c_index > 0.75, (c_index, table_only[0])
    assert model.score(X_test, y_test) == pytest.approx(c_index)
    curves = model.predict_survival_function(X_test.iloc[:5])
    values = np.array([f(f.x) for f in curves])
    assert ((values >= 0) & (values <= 1)).all()
    assert (np.diff(values, axis=1) <= 1e-12).all()  # non-increasing
    # Higher predicted risk, lower survival at the median event time.
    at = np.median(y["time"][y["event"]])
    survival_at = np.array([f(at) for f in curves])
    assert np.corrcoef(risk[:5], survival_at)[0, 1] < 0
    uncertainty = model.predict_uncertainty(X_test)
    assert uncertainty.shape == (80,) and uncertainty.max() > 0
    assert model.explain(X_test.iloc[:10]).shape == (10, 2)

    tensors, config = model.to_state()
    restored = MultimodalSurvival.from_state(tensors, config).set_params(crops=crops_test)
    np.testing.assert_array_equal(restored.predict(X_test), risk)
    again = restored.predict_survival_function(X_test.iloc[:5])
    np.testing.assert_array_equal(np.array([f(f.x) for f in again]), values)


@pytest.mark.slow
def test_a_bundle_keeps_its_models_ct_window(tmp_path: Path) -> None:
    X, y, crops = _cohort(tmp_path / "crops", 60, seed=5)
    data = StudyData(
        X=X,
        y=y,
        groups=X.index.get_level_values(0).to_numpy(),
        centres=np.full(len(y), "A"),
        survival=False,
        endpoint={
            "name": "synthetic",
            "kind": "binary",
            "rows": 60,
            "events": int(y.sum()),
            "dropped_empty": [],
        },
        clinical=["informative", "noise"],
        crops=crops,
    )
    tiny = {**FAST, "epochs": 3, "n_members": 1, "hu_window": (-50.0, 150.0)}
    grid = {k: [list(v) if isinstance(v, tuple) else v] for k, v in tiny.items()}
    config = StudyConfig.model_validate(
        {
            "endpoint": "synthetic",
            "models": [{"name": "image", "kind": "multimodal", "grid": grid}],
            "validation": {"folds": 2, "repeats": 1, "bootstrap": 100, "permutations": 0},
        }
    )
    result = run_study(data, config)
    out = save_bundle(result, summarise(result), tmp_path / "bundle", extraction=None, sign=False)
    state = json.loads((out / "model.json").read_text(encoding="utf-8"))["state"]
    assert state["params"]["hu_window"] == [-50.0, 150.0]
    assert (state["fitted"]["crop_size_mm_"], state["fitted"]["crop_spacing_mm_"]) == (24.0, 2.0)
    bundle = load_bundle(out, bundle_id=bundle_id_of(out))
    bundle.set_crops(crops)
    fitted = result.final["image"][-1]
    loaded = bundle.pipeline[-1]
    assert loaded.hu_window == (-50.0, 150.0)
    prepared = bundle.pipeline[:-1].transform(X)
    saved = loaded.predict_proba(prepared)
    np.testing.assert_array_equal(saved, fitted.predict_proba(prepared))
    # the default window would give other predictions: the bundle predicts with its own
    loaded.set_params(hu_window=HU_WINDOW)
    assert np.abs(loaded.predict_proba(prepared) - saved).max() > 1e-4
