"""`hepablate simulate` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import validate_cohort

runner = CliRunner()


def test_simulate_writes_a_valid_cohort_with_previews_and_prints_its_rates(tmp_path: Path) -> None:
    out = tmp_path / "sim"

    result = runner.invoke(
        app,
        ["simulate", "--n", "3", "--seed", "2", "--out", str(out), "--preview", "--workers", "1"],
    )

    assert result.exit_code == 0, result.output
    assert "Wrote 3 patients" in result.stdout
    assert "oracle: AUC" in result.stdout
    assert validate_cohort(out).errors == []
    previews = sorted(p.name for p in (out / "preview").glob("*.png"))
    assert previews == ["SIM0001.png", "SIM0002.png", "SIM0003.png"]
    assert all((out / "preview" / p).stat().st_size > 20_000 for p in previews)
    summary = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    assert summary["config"] == {"n": 3, "seed": 2, "size": "small", "centres": 1, "images": True}
    assert summary["rates"]["patients"] == 3


def test_simulate_with_centres_writes_a_centre_column(tmp_path: Path) -> None:
    out = tmp_path / "sim"

    result = runner.invoke(
        app,
        [
            "simulate",
            "--n",
            "12",
            "--seed",
            "3",
            "--out",
            str(out),
            "--centres",
            "3",
            "--no-images",
            "--workers",
            "1",
        ],
    )

    assert result.exit_code == 0, result.output
    report = validate_cohort(out)
    assert report.errors == []
    assert set(report.summary["centres"]) <= {"C1", "C2", "C3"}
    assert len(report.summary["centres"]) >= 2


def test_simulate_refuses_an_unknown_size(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--n", "2", "--out", str(tmp_path), "--size", "huge"])

    assert result.exit_code == 2
    assert "small or full" in result.output


def test_a_one_patient_cohort_is_valid_and_its_oracle_says_n_a(tmp_path: Path) -> None:
    """What `hepablate demo` makes for the new patient: a C-index needs two rows."""
    out = tmp_path / "one"

    result = runner.invoke(app, ["simulate", "--n", "1", "--seed", "10001", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "Wrote 1 patients" in result.stdout and "C-index n/a" in result.stdout
    assert validate_cohort(out).errors == []
