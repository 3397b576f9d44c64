"""`--out` of extract, predict and demo: checked before any work, written whole, never lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

runner = CliRunner()


@pytest.fixture(scope="module")
def tabular_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outputs") / "cohort"
    simulate_cohort(SimulationConfig(n=8, seed=3, images=False), folder, workers=1)
    return folder


def _an_input_error(result: Any, *named: str) -> None:
    assert result.exit_code == 2, result.output
    assert "bug" not in result.output and "Traceback" not in result.output
    for name in named:
        assert name in result.output, (name, result.output)


def _places(tmp_path: Path) -> dict[str, tuple[Path, Path, str]]:
    """Outputs that cannot be written: (out, the path the message names, the reason)."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {
        "a folder": (folder, folder, "is a folder"),
        "under a file": (a_file / "out", a_file, "cannot be created under it"),
    }


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_extract_checks_out_before_reading_the_cohort(tmp_path: Path, where: str) -> None:
    out, named, reason = _places(tmp_path)[where]
    missing = tmp_path / "no-such-cohort"
    result = runner.invoke(app, ["extract", str(missing), "--out", str(out)])
    _an_input_error(result, f"{named}: ", reason)
    assert str(missing) not in result.output  # the cohort was not even looked at


@pytest.mark.slow
def test_extract_refuses_to_replace_a_file_that_is_not_a_feature_table(
    tabular_cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(out)
    before = out.read_bytes()
    result = runner.invoke(app, ["extract", str(tabular_cohort), "--out", str(out)])
    _an_input_error(result, f"{out}: exists and is not a FeatureTable", "--overwrite")
    assert out.read_bytes() == before

    replaced = runner.invoke(
        app, ["extract", str(tabular_cohort), "--out", str(out), "--overwrite", "--no-cache"]
    )
    assert replaced.exit_code == 0, replaced.output
    table = pd.read_parquet(out)
    assert table["group"].nunique() == 8 and "hepablate" in table.attrs
    # a FeatureTable is replaced by the next extraction without asking, and nothing is left
    again = runner.invoke(app, ["extract", str(tabular_cohort), "--out", str(out), "--no-cache"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.parquet"]


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_predict_checks_out_before_reading_the_bundle(tmp_path: Path, where: str) -> None:
    out, named, reason = _places(tmp_path)[where]
    bundle = tmp_path / "no-such-bundle"
    result = runner.invoke(app, ["predict", str(bundle), str(tmp_path), "--out", str(out)])
    _an_input_error(result, f"{named}: ", reason)
    assert str(bundle) not in result.output


def test_predict_refuses_to_replace_a_file_that_is_not_a_prediction(tmp_path: Path) -> None:
    out = tmp_path / "prediction.json"
    out.write_text(json.dumps({"my": "notes"}), encoding="utf-8")
    result = runner.invoke(
        app, ["predict", str(tmp_path / "bundle"), str(tmp_path), "--out", str(out)]
    )
    _an_input_error(result, f"{out}: exists and is not a prediction", "--overwrite")
    assert json.loads(out.read_text(encoding="utf-8")) == {"my": "notes"}


def test_demo_refuses_a_folder_that_is_not_an_earlier_demo(tmp_path: Path) -> None:
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("text", encoding="utf-8")
    result = runner.invoke(app, ["demo", "--out", str(out), "--n", "20"])
    _an_input_error(result, f"{out}: not empty and not the output of an earlier `hepablate demo`")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing staged


def test_a_demo_rerun_replaces_the_earlier_demo_whole_and_keeps_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's own staging (its five steps replaced by a quick stand-in that writes what
    they write): a rerun replaces the earlier demo, a failed one leaves it as it was."""
    import importlib

    from hepablate.study.config import StudyConfigError

    # `hepablate.app.demo` as an attribute is the job; the module is in sys.modules
    demo_module = importlib.import_module("hepablate.app.demo")

    def steps(out: Path, *, n: int, seed: int, workers: int, progress: Any) -> list[Any]:
        (out / "cohort").mkdir()
        (out / "cohort" / "patients.csv").write_text(f"n={n}", encoding="utf-8")
        (out / "prediction.json").write_text("{}", encoding="utf-8")
        if n == 21:
            raise StudyConfigError("a step that refused its input")
        return []

    monkeypatch.setattr(demo_module, "_steps", steps)
    out = tmp_path / "demo"
    assert runner.invoke(app, ["demo", "--out", str(out), "--n", "20"]).exit_code == 0
    (out / "my_notes.txt").write_text("mine", encoding="utf-8")
    assert runner.invoke(app, ["demo", "--out", str(out), "--n", "22"]).exit_code == 0
    assert (out / "cohort" / "patients.csv").read_text(encoding="utf-8") == "n=22"
    assert (out / "my_notes.txt").read_text(encoding="utf-8") == "mine"

    failed = runner.invoke(app, ["demo", "--out", str(out), "--n", "21"])
    _an_input_error(failed, "a step that refused its input")
    assert (out / "cohort" / "patients.csv").read_text(encoding="utf-8") == "n=22"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging left
