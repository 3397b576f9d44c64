"""The train job: a TrainResult whose typed summary is the metrics.json it wrote, the study's
plan as a part before the first fit, and its progress counted to the end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hepablate.app import StudyPlan, train
from hepablate.outputs import OutputError
from hepablate.schemas import read_metrics
from hepablate.study.config import StudyConfig, StudyConfigError
from tests.app.conftest import STUDY, Recorder, Trained, assert_counted

pytestmark = pytest.mark.slow  # a study and its bundle, built once


def test_the_summary_is_the_metrics_json_written(trained: Trained) -> None:
    result = trained.result
    assert set(result.paths) == {
        "metrics",
        "selected_features",
        "predictions",
        "bundle",
    }
    assert all(
        path.parent == result.out or path.parent.parent == result.out
        for path in result.paths.values()
    )
    assert all(path.exists() for path in result.paths.values())
    assert read_metrics(result.paths["metrics"]) == result.summary
    written = json.loads(result.paths["metrics"].read_text(encoding="utf-8"))
    headline = result.summary.models["logistic"].metrics.headline
    assert headline.value is not None
    assert written["models"]["logistic"]["metrics"]["auc"]["value"] == headline.value
    assert (result.out / "study.yaml").is_file() and (result.out / "table1.csv").is_file()
    assert not (result.out / "report.html").exists()  # report=False
    assert written["warnings"] == result.plan.warnings + [
        w for w in written["warnings"] if w not in result.plan.warnings
    ]


def test_the_plan_counts_the_rows_patients_and_events(
    trained: Trained, tabular_features: Path
) -> None:
    plan = trained.result.plan
    table = pd.read_parquet(tabular_features)
    outcomes = table.groupby("group")["outcome.rfs_24m"].first()  # a patient-level endpoint
    assert (plan.endpoint, plan.kind) == ("rfs_24m", "binary")
    assert plan.patients == plan.rows == int(outcomes.notna().sum())
    assert plan.excluded_rows == int(outcomes.isna().sum())
    assert plan.events == int(outcomes.sum())
    assert plan.candidates > 0


def test_progress_the_plan_first_then_the_fits_counted_to_the_end(trained: Trained) -> None:
    progress = trained.progress
    assert progress.parts == [trained.result.plan]
    assert isinstance(progress.parts[0], StudyPlan)
    steps = progress.steps
    assert steps.index("validating") < steps.index("writing the outputs")
    plan_at = progress.calls.index(("part", trained.result.plan))
    assert plan_at < progress.calls.index(("step", "validating"))
    # every outer fold, the label-permutation runs on the first repeat's folds, the refit
    validation = StudyConfig.model_validate(STUDY).validation
    total = validation.folds * (validation.repeats + validation.permutations) + 1
    assert_counted(progress.counts("validating"), total)


def test_input_errors_come_before_any_work(
    tabular_features: Path, study_config: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    progress = Recorder()
    with pytest.raises(OutputError, match="is a file"):
        train(tabular_features, study_config, a_file, progress=progress)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: x\nendpoint: rfs_24m\nmodels: [{name: m, kind: nope}]\n", "utf-8")
    with pytest.raises(StudyConfigError, match="kind"):
        train(tabular_features, wrong, tmp_path / "run", progress=progress)
    unknown = study_config.read_text(encoding="utf-8").replace("rfs_24m", "no_such_endpoint")
    (tmp_path / "unknown.yaml").write_text(unknown, encoding="utf-8")
    with pytest.raises(StudyConfigError, match="no_such_endpoint"):
        train(tabular_features, tmp_path / "unknown.yaml", tmp_path / "run", progress=progress)
    assert progress.calls == [] and not (tmp_path / "run").exists()
    assert Path(a_file).read_text(encoding="utf-8") == "mine"
