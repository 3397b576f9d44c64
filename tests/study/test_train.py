"""`hepablate train` on a tabular virtual cohort: outputs, leakage, permutation, by-centre."""

from __future__ import annotations

import json
import os
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
from hepablate.schemas.metrics import ModelTime, SurvivalStudySummary
from hepablate.study import StudyConfig, StudyConfigError, run_study, study_data
from hepablate.study import run as run_module
from hepablate.study.results import summarise

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

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
def features(virtual_tables: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tabular cohort (no images) of 120 patients in 3 centres, as a FeatureTable."""
    table = extract(load_cohort(virtual_tables))
    path = tmp_path_factory.mktemp("train") / "features.parquet"
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


def test_metrics_json_holds_each_models_fit_time(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {**FAST, "validation": {**FAST["validation"], "repeats": 1, "bootstrap": 100}}
    )
    result = run_study(study_data(table, config), config, refit=True)
    summary = summarise(result)
    splits = summary.validation.splits
    assert len(splits) == 3
    for name, scored in summary.models.items():
        time = scored.time
        assert isinstance(time, ModelTime), name
        assert len(time.per_split_seconds) == len(time.per_split_cpu_seconds) == 3
        assert all(s > 0 for s in time.per_split_seconds + time.per_split_cpu_seconds)
        assert time.fit_seconds == pytest.approx(sum(time.per_split_seconds), abs=0.01)
        assert time.mean_split_seconds == pytest.approx(time.fit_seconds / 3, abs=0.01)
        assert time.fit_cpu_seconds > 0
        assert time.refit_seconds is not None and time.refit_seconds > 0
        assert time.per_split_seconds == [round(s, 3) for s in result.models[name].fit_seconds]
    selection = summary.selection
    assert len(selection.per_split_seconds) == 3
    assert all(s > 0 for s in selection.per_split_seconds)
    # without the refit there is no refit time, and it says so
    unrefitted = summarise(run_study(study_data(table, config), config, refit=False))
    time = unrefitted.models["logistic"].time
    assert time is not None and time.refit_seconds is None


def test_with_shuffled_labels_the_auc_ci_contains_chance(features: Path) -> None:
    table = pd.read_parquet(features)
    config = StudyConfig.model_validate(
        {**FAST, "validation": {**FAST["validation"], "repeats": 1, "permutations": 2}}
    )
    result = run_study(study_data(table, config), config, refit=False)
    from hepablate.study.results import summarise

    permutation = summarise(result).permutation
    assert permutation is not None
    assert permutation.metric == "auc" and len(permutation.runs) == 2
    for run in permutation.runs:
        assert run.ci is not None and run.ci[0] <= 0.5 <= run.ci[1]
        assert run.value is not None and abs(run.value - 0.5) < 0.15
    assert all(permutation.ci_contains_chance)


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
    config = StudyConfig.model_validate(  # in this process, where the spies are
        {**FAST, "validation": {**FAST["validation"], "permutations": 0}, "workers": 1}
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


def test_the_splits_in_worker_processes_give_what_one_process_gives(features: Path) -> None:
    from hepablate.study.results import summarise

    table = pd.read_parquet(features)
    summaries = []
    for workers in (1, 2):
        config = StudyConfig.model_validate(
            {**FAST, "validation": {**FAST["validation"], "repeats": 1}, "workers": workers}
        )
        result = run_study(study_data(table, config), config, refit=False)
        summaries.append((summarise(result), result))
    (one, one_result), (two, two_result) = summaries
    for name in one_result.models:
        np.testing.assert_array_equal(one_result.models[name].oof, two_result.models[name].oof)
        assert one_result.models[name].best_params == two_result.models[name].best_params
        assert one.models[name].metrics == two.models[name].metrics
    assert one_result.selected == two_result.selected
    assert one.permutation is not None and two.permutation is not None
    assert one.permutation.runs == two.permutation.runs


def test_a_saga_logistic_grid_gives_the_same_study_twice(features: Path) -> None:
    """The saga solver shuffles: seeded by the study, two runs in one process are equal."""
    table = pd.read_parquet(features)
    grid = {"C": [0.1, 1.0], "l1_ratio": [0.0, 1.0], "solver": ["saga"]}
    config = StudyConfig.model_validate(
        {
            **FAST,
            "models": [{"name": "logistic", "kind": "logistic", "grid": grid}],
            "validation": {**FAST["validation"], "repeats": 1, "permutations": 0},
            "workers": 1,
        }
    )
    first, second = (run_study(study_data(table, config), config, refit=False) for _ in range(2))
    np.testing.assert_array_equal(first.models["logistic"].oof, second.models["logistic"].oof)
    assert first.models["logistic"].best_params == second.models["logistic"].best_params


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
    assert summary.by_centre is not None
    assert list(summary.by_centre) == [f"test centre {c}" for c in centres]
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
    assert isinstance(summary, SurvivalStudySummary)
    scored = summary.models["cox"]
    c = scored.metrics.harrell_c
    risk = np.nanmean(result.models["cox"].oof, axis=0)
    data = result.data
    expected = concordance_index_censored(data.y["event"], data.y["time"], risk)[0]
    assert c.value == pytest.approx(expected)
    assert c.ci is not None and c.ci[0] <= c.value <= c.ci[1]
    groups = scored.risk_groups.groups
    assert [g.name for g in groups] == ["low", "intermediate", "high"]
    assert sum(g.n for g in groups) == summary.cohort.rows
    assert all(g.km.survival[0] == 1.0 for g in groups)
    logrank = scored.risk_groups.logrank
    assert logrank is not None and logrank.p_value is not None and 0 <= logrank.p_value <= 1


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


# --- outputs that are never lost, input errors that are not bugs -----------------------------

QUICK: dict[str, Any] = {
    "name": "quick study",
    "endpoint": "rfs_24m",
    "selection": [
        {"method": "near_zero_variance"},
        {"method": "univariate", "params": {"fdr": 0.5}},
    ],
    "models": [{"name": "logistic", "kind": "logistic", "grid": {"C": [0.1, 1.0]}}],
    "validation": {"folds": 3, "repeats": 1, "bootstrap": 100, "permutations": 0},
}


def _quick(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump({**QUICK, **changes}), encoding="utf-8")
    return path


def _train(*args: str) -> Any:
    return CliRunner().invoke(app, ["train", *args])


def _an_input_error(result: Any, *named: str) -> None:
    """Exit 2, no traceback, no "bug", and every ``named`` thing in the message."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "bug" not in result.output and "Traceback" not in result.output
    for name in named:
        assert name in result.output, (name, result.output)


@pytest.mark.parametrize(
    "broken", ["truncated", "empty", "not Parquet", "Parquet of something else"]
)
def test_a_broken_feature_table_is_an_input_error_naming_the_file(
    features: Path, tmp_path: Path, broken: str
) -> None:
    path = tmp_path / "features.parquet"
    data = features.read_bytes()
    if broken == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif broken == "empty":
        path.write_bytes(b"")
    elif broken == "not Parquet":
        path.write_text("group,centre\nP1,A\n", encoding="utf-8")
    else:
        pd.DataFrame({"group": ["P1"], "outcome.rfs_24m": [1]}).to_parquet(path)
    expected = {
        "truncated": "not a readable Parquet file",
        "empty": "empty file (0 bytes)",
        "not Parquet": "not a readable Parquet file",
        "Parquet of something else": "without a FeatureTable's hepablate metadata",
    }[broken]
    result = _train(str(path), "--config", str(_quick(tmp_path)), "--out", str(tmp_path / "run"))
    _an_input_error(result, f"{path}: ", expected)
    assert not (tmp_path / "run").exists()


def test_a_config_that_is_not_utf8_or_names_unknown_parameters_exits_2(
    features: Path, tmp_path: Path
) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: étude\nendpoint: rfs_24m\n".encode("latin-1"))
    _an_input_error(
        _train(str(features), "--config", str(latin), "--out", str(tmp_path / "run")),
        str(latin),
        "not UTF-8",
    )
    config = _quick(
        tmp_path,
        selection=[{"method": "univariate", "params": {"fdr": 0.1, "q": 1}}],
        models=[{"name": "lr", "kind": "logistic", "grid": {"C": [0, 1]}}],
    )
    _an_input_error(
        _train(str(features), "--config", str(config), "--out", str(tmp_path / "run")),
        f"{config}: selection.0 (univariate).params.q: Univariate has no parameter 'q'",
        f"{config}: models.0 (lr).grid.C: 0: The 'C' parameter of LogisticRegression",
    )


@pytest.mark.parametrize("where", ["a file", "under a file", "a foreign folder", "read-only"])
def test_an_out_that_cannot_be_written_is_refused_before_anything_is_read(
    features: Path, tmp_path: Path, where: str
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("text", encoding="utf-8")
    out, named, reason = {
        "a file": (a_file, a_file, "is a file"),
        "under a file": (a_file / "run", a_file, "cannot be created under it"),
        "a foreign folder": (foreign, foreign, "--overwrite"),
        "read-only": (Path("/sys/hepablate-run"), Path("/sys"), "cannot be written"),
    }[where]
    if where == "read-only" and os.access("/sys", os.W_OK) and _writable(Path("/sys")):
        pytest.skip("no read-only sysfs here")
    # the config does not exist: the output is checked before the config is even read
    missing_config = tmp_path / "no-such-study.yaml"
    result = _train(str(features), "--config", str(missing_config), "--out", str(out))
    _an_input_error(result, f"{named}: ", reason)
    assert str(missing_config) not in result.output
    assert a_file.read_text(encoding="utf-8") == "mine"
    assert [p.name for p in foreign.iterdir()] == ["chapter1.tex"]


def _writable(folder: Path) -> bool:
    try:
        (folder / ".hepablate-test").touch()
    except OSError:
        return False
    (folder / ".hepablate-test").unlink()
    return True


def _with_events(features: Path, folder: Path, events: int) -> Path:
    """The FeatureTable with only the first ``events`` patients' rfs_24m events kept."""
    table = pd.read_parquet(features)
    label = table["outcome.rfs_24m"].astype("Int64")
    kept = set(list(table.loc[label == 1, "group"].unique())[:events])
    table.loc[(label == 1) & ~table["group"].isin(kept), "outcome.rfs_24m"] = 0
    path = folder / f"features_{events}_events.parquet"
    table.to_parquet(path)
    return path


def test_an_endpoint_with_too_few_events_to_fit_is_an_input_error(
    features: Path, tmp_path: Path
) -> None:
    for events, named in ((0, "0 events in"), (2, "an inner training fold of repeat 1 fold")):
        table = _with_events(features, tmp_path, events)
        result = _train(str(table), "--config", str(_quick(tmp_path)), "--out", str(tmp_path / "r"))
        _an_input_error(result, "endpoint 'rfs_24m'", named)


def test_few_events_are_warned_of_in_plain_words_and_in_metrics(
    features: Path, tmp_path: Path
) -> None:
    table = _with_events(features, tmp_path, 3)
    out = tmp_path / "run"
    result = _train(
        str(table),
        "--config",
        str(_quick(tmp_path)),
        "--out",
        str(out),
        "--no-report",
        "--no-bundle",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    few = "endpoint 'rfs_24m': only 3 events in"
    assert any(w.startswith(few) for w in metrics["warnings"])
    assert f"WARNING {few}" in result.output
    # scikit-learn's warnings: once each, counted, without a source path
    assert any(w.startswith("sklearn (") for w in metrics["warnings"])
    assert "site-packages" not in result.output and "warnings.warn" not in result.output


def _bundle_is_valid(bundle: Path) -> bool:
    from hepablate.bundle import BundleError, load_bundle

    try:
        load_bundle(bundle)
    except (BundleError, OSError, ValueError):
        return False
    return True


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def test_training_again_replaces_its_own_files_and_keeps_every_other(
    features: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = str(_quick(tmp_path))
    assert _train(str(features), "--config", config, "--out", str(out)).exit_code == 0
    assert _bundle_is_valid(out / "bundle") and (out / "report.pdf").is_file()
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    (out / "figures").mkdir()
    (out / "figures" / "roc.png").write_bytes(b"png")

    again = _train(
        str(features), "--config", config, "--out", str(out), "--no-report", "--no-bundle"
    )
    assert again.exit_code == 0, again.output
    # the earlier run's report and bundle are not left beside the new metrics
    assert not (out / "bundle").exists() and not (out / "report.html").exists()
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert (out / "figures" / "roc.png").read_bytes() == b"png"
    marker = json.loads((out / ".hepablate-output.json").read_text(encoding="utf-8"))
    assert marker["kind"] == "train" and marker["kept"] == ["figures", "notes.txt"]
    assert "metrics.json" in marker["files"] and "bundle" not in marker["files"]
    assert _partials(out) == []

    # a file of an output's name that hepablate did not write is replaced only on request
    (out / "report.html").write_text("written by hand", encoding="utf-8")
    refused = _train(str(features), "--config", config, "--out", str(out))
    _an_input_error(refused, str(out / "report.html"), "--overwrite")
    assert (out / "report.html").read_text(encoding="utf-8") == "written by hand"
    replaced = _train(
        str(features), "--config", config, "--out", str(out), "--overwrite", "--no-bundle"
    )
    assert replaced.exit_code == 0, replaced.output
    assert "written by hand" not in (out / "report.html").read_text(encoding="utf-8")
    assert (out / "notes.txt").is_file() and (out / "figures" / "roc.png").is_file()


def _hepablate_script() -> str:
    import shutil
    import sys

    script = shutil.which("hepablate", path=str(Path(sys.executable).parent))
    assert script is not None, "the hepablate script is not installed in this environment"
    return script


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HEPABLATE_DEBUG"}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.mark.slow
def test_a_kill_in_the_middle_of_training_loses_nothing(features: Path, tmp_path: Path) -> None:
    """Training into a folder with a previous run and a foreign file: the old bundle is valid
    at every moment, a SIGKILL while the new run is being written loses nothing, and the next
    run cleans what the killed one left."""
    import signal
    import subprocess

    out = tmp_path / "run"
    config = str(_quick(tmp_path))
    first_run = _train(str(features), "--config", config, "--out", str(out), "--no-report")
    assert first_run.exit_code == 0, first_run.output
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    first = (out / "bundle" / "manifest.json").read_bytes()

    run = subprocess.Popen(
        [_hepablate_script(), "train", str(features), "--config", config, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_environment(),
    )
    checks, killed_while_writing = 0, False
    while run.poll() is None:
        assert _bundle_is_valid(out / "bundle")
        assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"
        checks += 1
        if _partials(out):  # the new run is being written beside OUT: kill it there
            run.send_signal(signal.SIGKILL)
            run.wait()
            killed_while_writing = True
    assert killed_while_writing, "the run finished before its outputs were seen being written"
    assert checks > 1
    assert _partials(out), "the kill should have left the partial run behind"
    assert _bundle_is_valid(out / "bundle")
    assert (out / "bundle" / "manifest.json").read_bytes() == first
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"

    again = _train(str(features), "--config", config, "--out", str(out), "--no-report")
    assert again.exit_code == 0, again.output
    assert _partials(out) == []
    assert _bundle_is_valid(out / "bundle")
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"

    # files put inside the bundle (a subfolder too) are not deleted: refused before the work
    (out / "bundle" / "extra").mkdir()
    (out / "bundle" / "extra" / "readme.txt").write_text("mine", encoding="utf-8")
    refused = _train(str(features), "--config", config, "--out", str(out))
    _an_input_error(refused, str(out / "bundle" / "extra" / "readme.txt"), "--overwrite")
    assert (out / "bundle" / "extra" / "readme.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.slow
def test_ctrl_c_with_the_output_piped_says_what_is_kept_and_exits_130(
    features: Path, tmp_path: Path
) -> None:
    import signal
    import subprocess

    out = tmp_path / "run"
    run = subprocess.Popen(
        [
            _hepablate_script(),
            "train",
            str(features),
            "--config",
            # A study of minutes (it is stopped in its first second): on a loaded machine the
            # signal may come late, and it must still find the study running.
            str(_quick(tmp_path, validation={**QUICK["validation"], "repeats": 50})),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=_environment(),
        # As from a terminal: a shell that starts a job in the background (CI's, nohup) has it
        # ignore SIGINT, and Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert run.stdout is not None
    first = run.stdout.readline()  # printed once the data are read, before the study runs
    assert first.startswith("Endpoint rfs_24m"), first
    run.send_signal(signal.SIGINT)
    rest, errors = run.communicate()
    assert run.returncode == 130, (first, rest, errors)
    assert "stopped: train, extract, predict and demo write nothing half-done" in errors
    assert "Traceback" not in errors
    assert not out.exists() and _partials(out) == []


def test_a_permutation_run_that_could_not_be_fitted_is_found_before_the_study(
    features: Path, tmp_path: Path
) -> None:
    """With 3 events the real folds can be fitted, but shuffled labels leave an inner training
    fold without events: found up front, not as a crash after the real validation."""
    table = _with_events(features, tmp_path, 3)
    validation = {**QUICK["validation"], "permutations": 3}
    config = _quick(tmp_path, validation=validation)
    result = _train(str(table), "--config", str(config), "--out", str(tmp_path / "run"))
    _an_input_error(result, "label permutation", "validation.permutations")


def test_validation_on_held_out_centres_runs_through_without_raw_warnings(
    features: Path, tmp_path: Path
) -> None:
    """Rows of the training centres are never test rows: expected, and said by the metrics'
    row counts, not by numpy's "Mean of empty slice" with a source path; the permutation run
    has one split and so no CI (it used to crash the summary line)."""
    held_out = sorted(pd.read_parquet(features)["centre"].astype(str).unique())[-1]
    validation = {
        "scheme": "by_centre",
        "test_centres": [held_out],
        "bootstrap": 100,
        "permutations": 1,
    }
    out = tmp_path / "run"
    result = _train(
        str(features),
        "--config",
        str(_quick(tmp_path, validation=validation)),
        "--out",
        str(out),
        "--no-report",
        "--no-bundle",
    )
    assert result.exit_code == 0, result.output
    assert "label permutation (logistic): auc" in result.output
    assert "Mean of empty slice" not in result.output and "WARNING" not in result.output
    predictions = pd.read_csv(out / "predictions.csv")
    tested = predictions["centre"].astype(str) == held_out
    assert predictions.loc[tested, "logistic"].notna().all()
    assert predictions.loc[~tested, "logistic"].isna().all()


def test_one_tumour_per_patient_still_gives_the_patient_rows_their_tumour_count() -> None:
    """A new patient with one tumour (what `hepablate predict` reduces for a patient-level
    bundle) gets ``clin.n_tumours`` like the training rows; it used to be left without it."""
    from hepablate.features.table import one_row_per_patient

    index = pd.MultiIndex.from_tuples([("P1", 1)], names=["patient_id", "tumour_id"])
    table = pd.DataFrame({"group": ["P1"], "centre": ["A"], "clin.age": [61.0]}, index=index)
    reduced = one_row_per_patient(table)
    assert list(reduced.index) == ["P1"]
    assert reduced["clin.n_tumours"].tolist() == [1]
