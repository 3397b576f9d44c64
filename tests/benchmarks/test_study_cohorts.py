"""The real-data cohorts of the `hepablate train` benchmarks (benchmarks/studies/cohorts.py).

Both are built from the shared reference data (the ``shared_data`` fixture: skipped when it is
absent, a failure when ``HEPABLATE_REQUIRE_SHARED_DATA=1``). Event counts were checked by hand
on the raw files: UCI ``Class`` has 63 zeros (died; the UCI description says "63 cases labeled
as dies"); HCC-TACE-Seg has 45 ones in ``Censored_0_progressed_1`` and 93 in
``Death_1_StillAliveorLostToFU_0``; Mayo PBC's ``status`` has 161 twos (deaths) and 25 ones
(transplants).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from benchmarks.studies.cohorts import (
    TACE_DIR,
    TACE_EXCLUDED,
    TACE_FILE,
    SharedDataMissingError,
    build_pbc_cohort,
    build_tace_cohort,
    build_uci_cohort,
)

from hepablate.cohort import load_cohort, validate_cohort
from hepablate.cohort.schema import ColumnRole

pytestmark = pytest.mark.shared_data

READINGS = {"EASL", "RECIST", "mRECIST"}


def test_uci_cohort_validates_with_its_counts(shared_data: Path, tmp_path: Path) -> None:
    folder = build_uci_cohort(tmp_path / "uci", shared_data)
    report = validate_cohort(folder)
    assert report.errors == [], [str(p) for p in report.errors]
    cohort = load_cohort(folder)
    assert len(cohort.patients) == 165
    label = cohort.outcomes("death_1y")["label"]
    assert label.notna().all()
    assert int(label.sum()) == 63
    predictors = cohort.schema.tables.patients.columns_with_role(ColumnRole.PREDICTOR)
    assert len(predictors) == 49
    assert not {"Class", "died_1y"} & set(predictors)


def test_uci_question_mark_stays_missing(shared_data: Path, tmp_path: Path) -> None:
    cohort = load_cohort(build_uci_cohort(tmp_path / "uci", shared_data))
    patients = cohort.patients
    # Row 1 of the source: Obesity, Iron, SAT and Ferritin are '?'; row 2: Symptoms, INR ...
    for column in ("Obesity", "Iron", "SAT", "Ferritin"):
        assert pd.isna(patients.loc["P001", column]), column
    assert pd.isna(patients.loc["P002", "Symptoms"])
    assert pd.isna(patients.loc["P002", "INR"])
    # Counts of '?' in the source: Obesity 10, Grams_day 48, Ferritin 80; none became 0.
    assert int(patients["Obesity"].isna().sum()) == 10
    assert int((patients["Obesity"] == False).sum()) == 135  # noqa: E712  (nullable boolean)
    assert int(patients["Grams_day"].isna().sum()) == 48
    assert int(patients["Ferritin"].isna().sum()) == 80
    assert patients.loc["P001", "Total_Bil"] == pytest.approx(2.1)


def test_uci_unit_fixes(shared_data: Path, tmp_path: Path) -> None:
    patients = load_cohort(build_uci_cohort(tmp_path / "uci", shared_data)).patients
    # Source row 3: Leucocytes 8.4 (10^9/L) and Platelets 472 (10^9/L) unchanged; row 10:
    # Leucocytes 5100 and Platelets 193000 (per µL) become 5.1 and 193.
    assert patients.loc["P003", "Platelets"] == pytest.approx(472)
    assert patients.loc["P010", "Leucocytes"] == pytest.approx(5.1)
    assert patients.loc["P010", "Platelets"] == pytest.approx(193)
    assert patients["Platelets"].max() <= 1000
    assert patients["TP"].max() <= 20


def test_tace_cohort_validates_with_its_counts(shared_data: Path, tmp_path: Path) -> None:
    folder = build_tace_cohort(tmp_path / "tace", shared_data)
    report = validate_cohort(folder)
    assert report.errors == [], [str(p) for p in report.errors]
    cohort = load_cohort(folder)
    assert len(cohort.patients) == 105
    ttp = cohort.outcomes("ttp")
    os_ = cohort.outcomes("os")
    assert int(ttp["event"].sum()) == 45
    assert int(os_["event"].sum()) == 93
    # weeks -> months: HCC_001 has TTP 197 weeks, OS 350.29 weeks.
    assert ttp.loc["HCC_001", "time_months"] == pytest.approx(197 * 7 * 12 / 365.25)
    columns = cohort.schema.tables.patients.columns
    # Every follow-up reading and treatment response (post-TACE) is excluded from the
    # predictors, and so are the outcome columns.
    source = pd.read_csv(shared_data / TACE_DIR / TACE_FILE, nrows=0).columns
    post = [c for c in source if c.endswith("_FU") or c.split("_")[-1] in READINGS]
    assert len(post) == 15  # Interval_FU + 7 readings x (follow-up value, response)
    assert set(post) <= set(TACE_EXCLUDED)
    ignored = {n for n, c in columns.items() if c.role is ColumnRole.IGNORE}
    assert len(ignored) == len(TACE_EXCLUDED)
    outcomes = {n for n, c in columns.items() if c.role is ColumnRole.OUTCOME}
    assert outcomes == {"ttp_weeks", "progressed", "os_weeks", "died"}
    assert pd.isna(cohort.patients.loc["HCC_002", "tumour_size_cm"])


def test_pbc_cohort_validates_with_its_counts(shared_data: Path, tmp_path: Path) -> None:
    folder = build_pbc_cohort(tmp_path / "pbc", shared_data)
    report = validate_cohort(folder)
    assert report.errors == [], [str(p) for p in report.errors]
    cohort = load_cohort(folder)
    assert len(cohort.patients) == 418
    death = cohort.outcomes("death")
    assert int(death["event"].sum()) == 161
    # Source row 1: time 400 days, status 2 (dead); row 5: 1504 days, status 1 (transplant),
    # censored at the transplant.
    assert death.loc["PBC001", "time_months"] == pytest.approx(400 * 12 / 365.25)
    assert bool(death.loc["PBC001", "event"])
    assert cohort.patients.loc["PBC005", "status"] == "transplant"
    assert not bool(death.loc["PBC005", "event"])
    assert int((cohort.patients["status"] == "transplant").sum()) == 25
    columns = cohort.schema.tables.patients.columns
    predictors = set(cohort.schema.tables.patients.columns_with_role(ColumnRole.PREDICTOR))
    assert len(predictors) == 16
    assert not {"trt", "status", "died", "death_days"} & predictors
    # The 106 non-trial patients have no copper; stage is missing for 6.
    assert int(cohort.patients["copper"].isna().sum()) == 108
    assert int(cohort.patients["stage"].isna().sum()) == 6
    assert cohort.patients.loc["PBC001", "bilirubin"] == pytest.approx(14.5)
    assert columns["bilirubin"].concept == "total_bilirubin"


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SharedDataMissingError, match="HEPABLATE_SHARED_DATA"):
        build_uci_cohort(tmp_path / "uci", tmp_path / "nowhere")
