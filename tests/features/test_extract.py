"""`extract` and `hepablate extract` on a virtual cohort, checked against its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.cache import FeatureCache
from hepablate.features.crops import CropConfig
from hepablate.features.extract import (
    ExtractionConfig,
    ExtractionConfigError,
    extract,
    load_extraction_config,
)
from hepablate.features.geometry import ZONE_COLUMNS
from hepablate.imaging.io import Volume, read_volume, write_volume
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extract") / "cohort"
    simulate_cohort(SimulationConfig(n=10, seed=11), out, workers=2)
    return out


# Geometry only: the radiomics and crops have their own tests (test_radiomics_extraction.py).
GEOMETRY = ExtractionConfig(radiomics=None, crops=CropConfig(enabled=False))


@pytest.fixture(scope="module")
def geometry(virtual: Path) -> pd.DataFrame:
    """The virtual cohort extracted with GEOMETRY, read by several tests (do not change it)."""
    return extract(load_cohort(virtual), GEOMETRY, workers=2)


def _errors(table: pd.DataFrame, cohort_dir: Path) -> pd.Series:
    truth = read_truth(cohort_dir)["true_mam_mm"].reindex(table.index)
    return (table["geom.minimal_ablative_margin_mm"].astype(float) - truth).abs()


def test_registration_recovers_the_margin_and_without_it_the_error_grows(
    virtual: Path, geometry: pd.DataFrame
) -> None:
    registered = geometry
    unregistered = extract(
        load_cohort(virtual), GEOMETRY.model_copy(update={"register_post_ct": False}), workers=2
    )

    with_registration = _errors(registered, virtual).median()
    without_registration = _errors(unregistered, virtual).median()
    assert with_registration <= 1.0
    assert without_registration >= 2 * with_registration
    assert registered["qa.registration_ok"].all()
    assert (
        registered["qa.registration_liver_dice"] > registered["qa.registration_liver_dice_before"]
    ).all()


def test_feature_table_layout(virtual: Path, geometry: pd.DataFrame) -> None:
    cohort = load_cohort(virtual)
    table = geometry

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
    assert table[list(ZONE_COLUMNS)].isna().all().all()
    # what needs only the pre-ablation CT is still measured
    assert table["geom.tumour_volume_ml"].notna().all()
    assert table["qa.registration_note"].str.contains("below 1.00").all()
    warnings = table.attrs["hepablate"]["warnings"]
    assert {w["patient"] for w in warnings} == set(table["group"])
    for warning in warnings:
        assert warning["step"] == "registration" and warning["tumour"] is None
        assert warning["columns"] == [*ZONE_COLUMNS, "rad.ablation.*"] and warning["left_empty"]
        assert "below 1.00" in warning["reason"]


def test_extract_cli_writes_parquet_with_metadata(
    virtual: Path, geometry: pd.DataFrame, tmp_path: Path
) -> None:
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
    # The command writes what the function gives for the same settings.
    pd.testing.assert_series_equal(
        table["geom.minimal_ablative_margin_mm"],
        geometry["geom.minimal_ablative_margin_mm"],
        check_dtype=False,
    )


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


def test_an_extraction_config_that_is_not_utf8_is_named(
    example_cohort: Path, tmp_path: Path
) -> None:
    config = tmp_path / "extraction.yaml"
    config.write_bytes("# réglages\nradiomics: null\n".encode("latin-1"))

    with pytest.raises(ExtractionConfigError, match=r"extraction\.yaml: not UTF-8 text"):
        load_extraction_config(config)
    result = CliRunner().invoke(
        app,
        ["extract", str(example_cohort), "--out", str(tmp_path / "f.pq"), "--config", str(config)],
    )
    assert result.exit_code == 2, result.output
    assert "extraction.yaml: not UTF-8 text (byte 0xe9" in result.stdout


LIGHT = ExtractionConfig.model_validate(
    {
        "radiomics": {"families": ["stat"]},
        "regions": ["tumour", "ring"],
        "morphology_regions": [],
        "crops": {"enabled": False},
    }
)


@pytest.fixture(scope="module")
def one_voxel_tumour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two virtual patients; the first one's tumour cut down to a single voxel."""
    out = tmp_path_factory.mktemp("small") / "cohort"
    simulate_cohort(SimulationConfig(n=2, seed=11), out, workers=2)
    path = out / "images" / "SIM0001" / "pre_tumours.nii.gz"
    mask = read_volume(path)
    labels = mask.array.copy()
    voxels = np.argwhere(labels == 1)
    labels[labels == 1] = 0
    labels[tuple(voxels[len(voxels) // 2])] = 1  # the other tumours as they were
    write_volume(Volume(labels, mask.grid), path)
    return out


def test_a_tumour_too_small_for_radiomics_is_a_warning_and_its_columns_stay_empty(
    one_voxel_tumour: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    config = tmp_path / "light.yaml"
    config.write_text(yaml.safe_dump(LIGHT.model_dump(mode="json")), encoding="utf-8")

    command = ["extract", str(one_voxel_tumour), "--out", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, [*command, "--config", str(config), "--no-cache"])

    assert result.exit_code == 0, result.output
    assert "WARNING patient SIM0001 tumour 1 · radiomics: the tumour region has" in result.stdout
    assert "radiomics needs at least 27 (left empty: rad.tumour.*)" in result.stdout
    table = pd.read_parquet(out)  # the warnings survive the file
    assert (
        table.loc[("SIM0001", 1), "rad.tumour.stat.mean"]
        != table.loc[("SIM0001", 1), "rad.tumour.stat.mean"]
    )  # NaN: not measured
    assert np.isfinite(table.loc[("SIM0002", 1), "rad.tumour.stat.mean"])
    assert np.isfinite(table.loc[("SIM0001", 1), "rad.ring.stat.mean"])  # the rest goes on
    assert np.isfinite(table.loc[("SIM0001", 1), "geom.minimal_ablative_margin_mm"])
    warnings = table.attrs["hepablate"]["warnings"]
    [radiomics] = [w for w in warnings if w["step"] == "radiomics"]
    assert (radiomics["patient"], radiomics["tumour"], radiomics["columns"]) == (
        "SIM0001",
        1,
        ["rad.tumour.*"],
    )
    assert radiomics["left_empty"] and "at least 27" in radiomics["reason"]
    [validation] = [w for w in warnings if w["step"] == "validation"]
    assert validation["code"] == "images.too_small_for_radiomics"
    assert validation["tumour"] == 1 and "pre_tumours.nii.gz" in validation["reason"]
    assert table.attrs["hepablate"]["failed_patients"] == []


def test_a_patient_whose_extraction_raises_is_named_with_step_and_reason(
    one_voxel_tumour: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hepablate.features import patient as extraction

    original = extraction.large_vessels

    def failing(vessels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        if vessels.sum() == vessels_of_sim0002:
            raise MemoryError("no memory left for the distance map")
        return original(vessels, spacing)

    vessels_of_sim0002 = int(
        (read_volume(one_voxel_tumour / "images" / "SIM0002" / "vessels.nii.gz").array > 0).sum()
    )
    monkeypatch.setattr(extraction, "large_vessels", failing)
    out = tmp_path / "features.parquet"
    config = tmp_path / "geometry.yaml"
    config.write_text("radiomics: null\ncrops: {enabled: false}\n", encoding="utf-8")

    command = ["extract", str(one_voxel_tumour), "--out", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, [*command, "--no-cache", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert (
        "ERROR patient SIM0002: extraction failed at geometry: MemoryError: no memory left"
        in result.stdout
    )
    table = pd.read_parquet(out)
    assert table.attrs["hepablate"]["failed_patients"] == [
        {
            "patient": "SIM0002",
            "step": "geometry",
            "reason": "MemoryError: no memory left for the distance map",
        }
    ]
    assert table.loc[("SIM0002", 1), "qa.extraction_error"].startswith("geometry: MemoryError")
    assert np.isfinite(table.loc[("SIM0001", 1), "geom.minimal_ablative_margin_mm"])


def test_a_damaged_cache_entry_is_named_discarded_and_recomputed(
    virtual: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "features.parquet", tmp_path / "cache"
    config = tmp_path / "geometry.yaml"
    config.write_text("radiomics: null\n", encoding="utf-8")  # geometry and crops
    command = ["extract", str(virtual), "--out", str(out), "--workers", "2"]
    command += ["--config", str(config), "--cache", str(cache)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    before = pd.read_parquet(out)
    [result_file] = (cache / "SIM0003").glob("*/result.json")
    result_file.write_bytes(result_file.read_bytes()[:100])  # truncated
    [crops_file] = (cache / "SIM0005").glob("*/crops.npz")
    crops_file.write_bytes(crops_file.read_bytes()[:-200])
    [edited] = (cache / "SIM0007").glob("*/result.json")
    edited.write_text(
        edited.read_text(encoding="utf-8").replace('"qa.registration_ok": true', '"x": 1', 1),
        encoding="utf-8",
    )

    again = CliRunner().invoke(app, command)

    assert again.exit_code == 0, again.output
    for patient, file in (
        ("SIM0003", result_file),
        ("SIM0005", crops_file),
        ("SIM0007", edited),
    ):
        assert f"WARNING patient {patient} · cache: {file}: does not match its checksum" in (
            again.stdout
        )
    after = pd.read_parquet(out)
    pd.testing.assert_frame_equal(
        before.drop(columns=[c for c in before if c.startswith("qa.registration_liver")]),
        after.drop(columns=[c for c in after if c.startswith("qa.registration_liver")]),
    )
    steps = [w["step"] for w in after.attrs["hepablate"]["warnings"]]
    assert steps.count("cache") == 3
    for patient in ("SIM0003", "SIM0005", "SIM0007"):
        assert FeatureCache(cache).get(patient, after.attrs["hepablate"]["crops"]["keys"][patient])


def test_a_ct_without_a_tumour_table_or_mask_is_named_in_a_warning(
    virtual: Path, tmp_path: Path
) -> None:
    """A CT and no tumour mask gives one row per patient with only the tables' columns; the
    extraction says why there is no geometry or radiomics instead of writing it silently."""
    cohort = tmp_path / "ct_only"
    (cohort / "images" / "P1").mkdir(parents=True)
    (cohort / "images" / "P1" / "pre_ct.nii.gz").write_bytes(
        (virtual / "images" / "SIM0001" / "pre_ct.nii.gz").read_bytes()
    )
    (cohort / "patients.csv").write_text("patient_id,age\nP1,60\n", encoding="utf-8")
    (cohort / "cohort.yaml").write_text(
        "name: CT only\ntables:\n  patients:\n    file: patients.csv\n    columns:\n"
        "      patient_id: {role: id, type: string}\n"
        "      age: {role: predictor, type: integer}\n"
        "images:\n  scans:\n    pre_ct: {modality: CT}\n",
        encoding="utf-8",
    )
    out = tmp_path / "features.parquet"

    result = CliRunner().invoke(app, ["extract", str(cohort), "--out", str(out)])

    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Wrote 1 patients x" in text
    assert "WARNING patient P1 · images: images but no tumour table in cohort.yaml: no " in text
    table = pd.read_parquet(out)
    assert not any(c.startswith(("geom.", "rad.")) for c in table.columns)
    [warning] = table.attrs["hepablate"]["warnings"]
    assert warning["patient"] == "P1" and "pre_tumours mask" in warning["reason"]


def test_a_patient_without_tumour_rows_is_named_in_a_warning(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("pid,age\nA,60\nB,70\n", encoding="utf-8")
    (tmp_path / "tumours.csv").write_text("pid,tid,size\nA,1,20\n", encoding="utf-8")
    (tmp_path / "cohort.yaml").write_text(
        "name: tumours\n"
        "tables:\n  patients:\n    file: patients.csv\n    columns:\n"
        "      pid: {role: id, type: string}\n"
        "      age: {role: predictor, type: integer}\n"
        "  tumours:\n    file: tumours.csv\n    columns:\n"
        "      pid: {role: patient_id, type: string}\n"
        "      tid: {role: id, type: integer}\n"
        "      size: {role: predictor, type: number}\n",
        encoding="utf-8",
    )

    table = extract(load_cohort(tmp_path))

    assert list(table["group"]) == ["A"]
    warnings = table.attrs["hepablate"]["warnings"]
    [warning] = [w for w in warnings if w["patient"] == "B"]
    assert warning["step"] == "tumours" and not warning["left_empty"]
    assert "no row in the tumours table" in warning["reason"]
