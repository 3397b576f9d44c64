"""`extract` and `hepablate extract` on a virtual cohort, checked against its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.crops import CropConfig
from hepablate.features.extract import ExtractionConfig, extract
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extract") / "cohort"
    simulate_cohort(SimulationConfig(n=10, seed=11), out, workers=2)
    return out


# Geometry only: the radiomics and crops have their own tests (test_radiomics_extraction.py).
GEOMETRY = ExtractionConfig(radiomics=None, crops=CropConfig(enabled=False))


def _errors(table: pd.DataFrame, cohort_dir: Path) -> pd.Series:
    truth = read_truth(cohort_dir)["true_mam_mm"].reindex(table.index)
    return (table["geom.minimal_ablative_margin_mm"].astype(float) - truth).abs()


def test_registration_recovers_the_margin_and_without_it_the_error_grows(virtual: Path) -> None:
    cohort = load_cohort(virtual)

    registered = extract(cohort, GEOMETRY, workers=2)
    unregistered = extract(
        cohort, GEOMETRY.model_copy(update={"register_post_ct": False}), workers=2
    )

    with_registration = _errors(registered, virtual).median()
    without_registration = _errors(unregistered, virtual).median()
    assert with_registration <= 1.0
    assert without_registration >= 2 * with_registration
    assert registered["qa.registration_ok"].all()
    assert (
        registered["qa.registration_liver_dice"] > registered["qa.registration_liver_dice_before"]
    ).all()


def test_feature_table_layout(virtual: Path) -> None:
    cohort = load_cohort(virtual)

    table = extract(cohort, GEOMETRY, workers=1)

    assert table.index.names == ["patient_id", "tumour_id"]
    assert len(table) == len(cohort.tumours)  # type: ignore[arg-type]
    assert (table["group"] == table.index.get_level_values("patient_id")).all()
    assert {
        "centre",
        "clin.age",
        "clin.diameter_mm",
        "clin.score.albi",
        "geom.minimal_ablative_margin_mm",
        "geom.subcapsular",
        "outcome.ltp_24m",
        "outcome.ltp.time_months",
        "outcome.rfs.event",
    } <= set(table.columns)
    assert not any(c.startswith("clin.") and "true" in c for c in table.columns)
    assert table.attrs["hepablate"]["extraction_config"]["registration"]["min_liver_dice"] == 0.85
    # Measured subcapsular location agrees with the simulator's recorded one for most tumours.
    agreement = (table["geom.subcapsular"] == table["clin.subcapsular"]).mean()
    assert agreement >= 0.8


def test_failed_registration_is_flagged_and_not_measured(virtual: Path) -> None:
    cohort = load_cohort(virtual)
    impossible = ExtractionConfig.model_validate(
        # no real registration reaches a Dice of 1
        {"registration": {"min_liver_dice": 1.0}, "radiomics": None, "crops": {"enabled": False}}
    )

    table = extract(cohort, impossible, workers=2)

    assert not table["qa.registration_ok"].any()
    assert table["geom.minimal_ablative_margin_mm"].isna().all()
    assert table["qa.registration_note"].str.contains("below 1.00").all()


def test_extract_cli_writes_parquet_with_metadata(virtual: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"

    config = tmp_path / "extraction.yaml"
    config.write_text("radiomics: null\ncrops: {enabled: false}\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["extract", str(virtual), "--out", str(out), "--workers", "2", "--config", str(config)],
    )

    assert result.exit_code == 0, result.output
    assert "registration: liver Dice median" in result.stdout
    table = pd.read_parquet(out)
    assert table.attrs["hepablate"]["rows"] == "tumour"
    assert np.isfinite(table["geom.minimal_ablative_margin_mm"].astype(float)).all()


def test_extract_cli_refuses_an_invalid_cohort(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["extract", str(tmp_path), "--out", str(tmp_path / "f.pq")])

    assert result.exit_code == 2
    assert "cohort.missing_directory" in result.stdout or "schema.missing" in result.stdout


def test_tabular_cohort_gives_one_row_per_patient(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text(
        "pid,albumin,bili,os_m,dead\nA,40,12,10,yes\nB,30,40,20,no\n", encoding="utf-8"
    )
    (tmp_path / "cohort.yaml").write_text(
        "name: tabular\n"
        "tables:\n  patients:\n    file: patients.csv\n    columns:\n"
        "      pid: {role: id, type: string}\n"
        "      albumin: {role: predictor, type: number, unit: g/L, concept: albumin}\n"
        "      bili: {role: predictor, type: number, unit: µmol/L, concept: total_bilirubin}\n"
        "      os_m: {role: outcome, type: number, unit: months}\n"
        "      dead: {role: outcome, type: boolean}\n"
        "endpoints:\n"
        "  - {name: os, kind: time_to_event, table: patients, time: os_m, event: dead}\n",
        encoding="utf-8",
    )

    table = extract(load_cohort(tmp_path))

    assert list(table.index) == ["A", "B"]
    assert table.loc["A", "clin.score.albi"] == pytest.approx(0.66 * np.log10(12) - 0.085 * 40)
    assert table.loc["B", "outcome.os.time_months"] == 20.0


def test_preprocessing_is_applied_and_recorded(virtual: Path) -> None:
    cohort = load_cohort(virtual)
    config = ExtractionConfig.model_validate(
        {
            "radiomics": None,
            "crops": {"enabled": False},
            "preprocessing": {
                "steps": [
                    {"kind": "resample", "spacing_mm": [1.5, 1.5, 1.5]},
                    {"kind": "window", "low_hu": -200, "high_hu": 300},
                ]
            },
        }
    )

    table = extract(cohort, config, workers=2)

    steps = table.attrs["hepablate"]["extraction_config"]["preprocessing"]["steps"]
    assert [s["kind"] for s in steps] == ["resample", "window"]
    assert _errors(table, virtual).median() <= 1.0


def test_extract_cli_names_a_bad_config_and_an_unreachable_scheduler(
    example_cohort: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "extraction.yaml"
    bad.write_text("radiomics: {bin_width: -3}\n", encoding="utf-8")
    out = tmp_path / "f.parquet"

    wrong = CliRunner().invoke(
        app, ["extract", str(example_cohort), "--out", str(out), "--config", str(bad)]
    )
    unreachable = CliRunner().invoke(
        app,
        ["extract", str(example_cohort), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"],
    )

    assert wrong.exit_code == 2
    assert "extraction.yaml" in wrong.stdout and "bin_width" in wrong.stdout
    assert unreachable.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in unreachable.stdout
    assert not out.exists()
