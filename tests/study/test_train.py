"""`hepablate train` on a tabular virtual cohort: outputs, leakage, permutation, by-centre."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.extract import extract
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.study import StudyConfig, StudyConfigError, run_study, study_data
from hepablate.study import run as run_module

FAST: dict[str, Any] = {
    "name": "test study",
    "endpoint": "rfs_24m",
    "selection": [
        {"method": "near_zero_variance"},
        {"method": "univariate", "params": {"fdr": 0.2}},
        {"method": "embedded", "params": {"cv": 3}},
    ],
    "models": [
        {"name": "logistic", "kind": "logistic"},
        {"name": "clinical_logistic", "kind": "logistic", "clinical_only": True},
    ],
    "validation": {"folds": 3, "repeats": 2, "inner_folds": 3, "bootstrap": 200},
}


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tabular cohort (no images) of 120 patients in 3 centres, as a FeatureTable."""
    folder = tmp_path_factory.mktemp("train")
    cohort_dir = folder / "cohort"
    simulate_cohort(
        SimulationConfig(n=120, seed=11, centres=3, images=False), cohort_dir, workers=2
    )
    table = extract(load_cohort(cohort_dir))
    path = folder / "features.parquet"
    table.to_parquet(path)
    return path


def _config(tmp_path: Path, **changes: Any) -> Path:
    settings = {**FAST, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_train_writes_metrics_selection_and_predictions(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["train", str(features), "--config", str(_config(tmp_path)), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(features)
    assert table["group"].nunique() == 120 < len(table)  # one row per tumour
    # a patient-level endpoint: one row per patient (its largest tumour), not one per tumour
    per_patient = table.groupby("group")["outcome.rfs_24m"].first()
    known = int(per_patient.notna().sum())
    assert metrics["cohort"]["rows"] == known == metrics["cohort"]["patients"]
    assert metrics["endpoint"]["excluded_rows"] == 120 - known
    assert set(metrics["models"]) == {"logistic", "clinical_logistic"}
    for scored in metrics["models"].values():
        auc = scored["metrics"]["auc"]
        assert auc["ci"][0] <= auc["value"] <= auc["ci"][1]
        assert len(scored["per_repeat"]) == 2
        assert len(scored["best_params"]) == 6  # 3 folds x 2 repeats
        assert scored["decision_curve"]["thresholds"][0] == pytest.approx(0.01)
        assert scored["fold_mean"]["splits"] == 6
        assert scored["fold_mean"]["ci"][0] <= scored["fold_mean"]["value"]
    assert metrics["comparison"]["best"] in metrics["models"]
    assert len(metrics["comparison"]["delong"]) == 1
    assert metrics["nomogram"]["features"]

    selected = pd.read_csv(out / "selected_features.csv")
    assert selected["folds"].eq(6).all()
    assert selected["frequency"].between(0, 1).all()
    assert selected["frequency"].iloc[0] == selected["frequency"].max()

    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == known
    assert predictions["logistic"].between(0, 1).all()
    for name, scored in metrics["models"].items():  # the AUC is that of the saved predictions
        expected = roc_auc_score(predictions["label"], predictions[name])
        assert scored["metrics"]["auc"]["value"] == pytest.approx(expected)
    assert (out / "study.yaml").is_file()
    assert "logistic" in result.output and "label permutation" in result.output


def test_with_shuffled_labels_the_auc_ci_contains_chance(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {**FAST, "validation": {**FAST["validation"], "repeats": 1, "permutations": 2}}
    )
    result = run_study(study_data(table, config), config, refit=False)
    from hepablate.study.results import summarise

    permutation = summarise(result)["permutation"]
    assert permutation["metric"] == "auc" and len(permutation["runs"]) == 2
    for run in permutation["runs"]:
        assert run["ci"][0] <= 0.5 <= run["ci"][1]
        assert abs(run["value"] - 0.5) < 0.15
    assert all(permutation["ci_contains_chance"])


def test_no_fit_ever_sees_a_test_patient(features: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selection and tuning are fitted inside the outer training patients only."""
    seen: list[set[str]] = []
    real_fit_selection = run_module.fit_selection
    real_tuned = run_module.make_tuned_model

    def spy_selection(pipeline, X, y, groups):  # type: ignore[no-untyped-def]
        seen.append(set(groups))
        return real_fit_selection(pipeline, X, y, groups)

    def spy_tuned(*args, **kwargs):  # type: ignore[no-untyped-def]
        search = real_tuned(*args, **kwargs)
        fit = search.fit

        def recorded_fit(X, y, *a, **k):  # type: ignore[no-untyped-def]
            tuned_rows.append(len(X))
            return fit(X, y, *a, **k)

        search.fit = recorded_fit
        return search

    tuned_rows: list[int] = []
    monkeypatch.setattr(run_module, "fit_selection", spy_selection)
    monkeypatch.setattr(run_module, "make_tuned_model", spy_tuned)
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {**FAST, "validation": {**FAST["validation"], "permutations": 0}}
    )
    data = study_data(table, config)
    splits = run_module.outer_splits(data, config.validation)
    run_study(data, config, refit=False)

    # two selection fits per split (selected features, clinical columns), in split order
    assert len(seen) == 2 * len(splits)
    for i, split in enumerate(splits):
        test_patients = set(data.groups[split.test])
        train_patients = set(data.groups[split.train])
        for fitted in seen[2 * i : 2 * i + 2]:
            assert not fitted & test_patients
            assert fitted == train_patients
    assert tuned_rows == [len(s.train) for s in splits for _ in range(2)]


def test_outer_folds_never_split_a_patient_and_repeats_differ(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate({**FAST, "endpoint": "ltp_24m"})
    data = study_data(table, config)
    assert len(data.groups) > len(set(data.groups))  # tumour rows: patients with several
    splits = run_module.outer_splits(data, config.validation)
    for split in splits:
        assert not set(data.groups[split.train]) & set(data.groups[split.test])
    for repeat in (0, 1):
        tested = np.concatenate([s.test for s in splits if s.repeat == repeat])
        assert sorted(tested) == list(range(len(data.y)))
    first = [set(s.test) for s in splits if s.repeat == 0]
    second = [set(s.test) for s in splits if s.repeat == 1]
    assert first != second


def test_validation_by_centre_reports_each_test_centre(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {**FAST, "validation": {"scheme": "by_centre", "bootstrap": 200, "permutations": 0}}
    )
    data = study_data(table, config)
    result = run_study(data, config, refit=False)
    from hepablate.study.results import summarise

    summary = summarise(result)
    centres = sorted(set(data.centres))
    assert list(summary["by_centre"]) == [f"test centre {c}" for c in centres]
    for split in result.splits:
        assert set(data.centres[split.test]) == {split.label.removeprefix("test centre ")}
    unknown = StudyConfig.model_validate(
        {**FAST, "validation": {"scheme": "by_centre", "test_centres": ["C9"]}}
    )
    with pytest.raises(StudyConfigError, match="C9"):
        run_module.outer_splits(data, unknown.validation)


def test_survival_endpoint_gives_c_indices_and_risk_groups(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {
            **FAST,
            "endpoint": "rfs",
            "models": [{"name": "cox", "kind": "cox"}],
            "validation": {"folds": 3, "repeats": 1, "bootstrap": 200, "permutations": 0},
        }
    )
    result = run_study(study_data(table, config), config, refit=False)
    from hepablate.study.results import summarise

    summary = summarise(result)
    scored = summary["models"]["cox"]
    c = scored["metrics"]["harrell_c"]
    risk = np.nanmean(result.models["cox"].oof, axis=0)
    data = result.data
    expected = concordance_index_censored(data.y["event"], data.y["time"], risk)[0]
    assert c["value"] == pytest.approx(expected) and c["ci"][0] <= c["value"] <= c["ci"][1]
    groups = scored["risk_groups"]["groups"]
    assert [g["name"] for g in groups] == ["low", "intermediate", "high"]
    assert sum(g["n"] for g in groups) == summary["cohort"]["rows"]
    assert all(g["km"]["survival"][0] == 1.0 for g in groups)
    assert 0 <= scored["risk_groups"]["logrank"]["p_value"] <= 1


def test_an_unknown_endpoint_is_a_clear_error(features: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(features),
            "--config",
            str(_config(tmp_path, endpoint="overall_survival")),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "overall_survival" in result.output and "rfs_24m" in result.output
