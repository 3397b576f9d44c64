"""The example cohort loads typed, and outcomes come out per endpoint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hepablate.cohort import load_cohort, validate_cohort


def test_example_cohort_is_valid_without_warnings(example_cohort: Path) -> None:
    report = validate_cohort(example_cohort)

    assert report.problems == []
    assert report.summary["patients"] == 6
    assert report.summary["tumours"] == 8
    assert report.summary["centres"] == {"A": 3, "B": 3}
    assert report.summary["images"] == 34
    assert report.summary["missing_pct"] == {"afp_ng_ml": 16.7}


def test_tables_are_typed_and_indexed(example_cohort: Path) -> None:
    cohort = load_cohort(example_cohort)

    assert cohort.patient_ids == ["P01", "P02", "P03", "P04", "P05", "P06"]
    assert cohort.patients["albumin_g_l"].dtype == "float64"
    assert cohort.patients["age"].dtype == "Int64"
    assert cohort.patients["cirrhosis"].dtype == "boolean"
    assert cohort.patients.loc["P03", "cirrhosis"] == False  # noqa: E712 (nullable boolean)
    assert pd.isna(cohort.patients.loc["P05", "afp_ng_ml"])
    assert cohort.patients.loc["P04", "ablation_date"] == pd.Timestamp("2022-01-11")
    assert cohort.tumours is not None
    assert cohort.tumours.index.names == ["patient_id", "tumour_id"]
    assert cohort.tumours.loc[("P02", 2), "diameter_mm"] == 14.0
    assert cohort.images["P05"]["pre_ct"].name == "pre_ct"  # a DICOM folder
    assert cohort.images["P04"]["pre_ct"].name == "pre_ct.nrrd"
    assert "liver" not in cohort.images["P06"]


def test_binary_endpoint_labels_at_the_horizon(cohort_copy: Path) -> None:
    tumours = (cohort_copy / "tumours.csv").read_text(encoding="utf-8")
    # P06's tumour now censored at 14 months: unlabelled at 24 months, still in time-to-event.
    (cohort_copy / "tumours.csv").write_text(
        tumours.replace(
            "P06,1,VIII,24,yes,no,MWA,100,7,26.4", "P06,1,VIII,24,yes,no,MWA,100,7,14.0"
        ),
        encoding="utf-8",
    )
    cohort = load_cohort(cohort_copy, check_images=False)

    labels = cohort.outcomes("ltp_24m")["label"]
    survival = cohort.outcomes("ltp")

    assert labels.astype(object).where(labels.notna(), None).to_dict() == {
        ("P01", 1): 0,
        ("P02", 1): 0,
        ("P02", 2): 1,
        ("P03", 1): 0,
        ("P04", 1): 1,
        ("P05", 1): 0,
        ("P05", 2): 1,
        ("P06", 1): None,
    }
    assert survival.loc[("P06", 1)].tolist() == [14.0, False]
    assert survival["event"].sum() == 3


def test_time_in_weeks_is_converted_to_months(cohort_copy: Path) -> None:
    yaml_path = cohort_copy / "cohort.yaml"
    text = yaml_path.read_text(encoding="utf-8").replace(
        "rfs_months: {role: outcome, type: number, unit: months, range: [0, 60]}",
        "rfs_months: {role: outcome, type: number, unit: weeks, range: [0, 260]}",
    )
    yaml_path.write_text(text, encoding="utf-8")

    cohort = load_cohort(cohort_copy, check_images=False)

    rfs = cohort.outcomes("rfs")
    assert abs(rfs.loc["P01", "time_months"] - 31.2 * 7 * 12 / 365.25) < 1e-9
