"""`hepablate simulate` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import validate_cohort

runner = CliRunner()


def _text(output: str) -> str:
    """The output with the console's line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.slow
def test_simulate_writes_a_valid_cohort_with_previews_and_prints_its_rates(tmp_path: Path) -> None:
    out = tmp_path / "sim"

    result = runner.invoke(
        app,
        ["simulate", "--n", "3", "--seed", "2", "--out", str(out), "--preview", "--workers", "1"],
    )

    assert result.exit_code == 0, result.output
    assert "Wrote 3 patients" in result.stdout
    assert "true minimal ablative margin: median" in result.stdout
    # Three patients: no Kaplan-Meier rates or oracle scores, and the summary says why.
    assert "Kaplan-Meier" not in result.stdout and "oracle:" not in result.stdout
    assert "no progression rates or oracle scores below 10 patients" in _text(result.stdout)
    assert validate_cohort(out).errors == []
    previews = sorted(p.name for p in (out / "preview").glob("*.png"))
    assert previews == ["SIM0001.png", "SIM0002.png", "SIM0003.png"]
    assert all((out / "preview" / p).stat().st_size > 20_000 for p in previews)
    summary = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    assert summary["config"] == {"n": 3, "seed": 2, "size": "small", "centres": 1, "images": True}
    assert summary["rates"]["patients"] == 3


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_one_patient_cohort_is_valid_and_its_summary_has_no_rates(tmp_path: Path) -> None:
    """What `hepablate demo` makes for the new patient: one patient has no Kaplan-Meier rate
    and no C-index worth printing; simulation.json keeps the numbers (n/a as null)."""
    out = tmp_path / "one"

    result = runner.invoke(app, ["simulate", "--n", "1", "--seed", "10001", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "Wrote 1 patient, 1 tumour to" in result.stdout
    assert "Kaplan-Meier" not in result.stdout and "n/a" not in result.stdout
    assert "no progression rates or oracle scores below 10 patients" in _text(result.stdout)
    rates = json.loads((out / "simulation.json").read_text(encoding="utf-8"))["rates"]
    assert rates["patients"] == 1 and rates["ltp_c_index"] is None
    assert validate_cohort(out).errors == []


@pytest.mark.slow
def test_a_cohort_of_ten_patients_gets_its_rates_and_oracle(tmp_path: Path) -> None:
    out = tmp_path / "ten"

    result = runner.invoke(
        app, ["simulate", "--n", "10", "--seed", "2", "--out", str(out), "--no-images"]
    )

    assert result.exit_code == 0, result.output
    rates = json.loads((out / "simulation.json").read_text(encoding="utf-8"))["rates"]
    km = f"local tumour progression by 2 years (Kaplan-Meier): {100 * rates['ltp_24m_km']:.1f}%"
    assert km in _text(result.stdout) and "oracle: AUC" in result.stdout


def test_simulate_refuses_an_unknown_appearance(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["simulate", "--n", "2", "--out", str(tmp_path), "--appearance", "glossy"]
    )

    assert result.exit_code == 2
    assert "plain or varied" in result.output
    assert not (tmp_path / "patients.csv").exists()
