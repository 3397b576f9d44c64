"""Reading tables in every format alike, and parsing cells by declared type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hepablate.cohort import load_cohort
from hepablate.cohort.schema import ColumnSpec, TableSpec
from hepablate.cohort.tables import TableReadError, parse_column, read_raw_table


def _spec(**kwargs: object) -> ColumnSpec:
    return ColumnSpec.model_validate({"role": "predictor", **kwargs})


def _parse(values: list[object], **kwargs: object) -> tuple[list[object], list[str]]:
    series, issues = parse_column(pd.Series(values, dtype=object), _spec(**kwargs), ["", "NA"])
    return series.tolist(), [issue.reason for issue in issues]


def test_numbers_accept_text_and_native_cells_and_refuse_the_rest() -> None:
    values, issues = _parse(
        ["1.5", " 2 ", 3, 4.25, "", "NA", "1e3", "1,5", "inf", True], type="number"
    )

    assert values[:4] == [1.5, 2.0, 3.0, 4.25]
    assert np.isnan(values[4]) and np.isnan(values[5])
    assert values[6] == 1000.0
    assert issues == [
        "'1,5' uses a decimal comma; write '1.5'",
        "'inf' is not a finite number",
        "a true/false value where a number is expected",
    ]


def test_integers_refuse_fractions() -> None:
    values, issues = _parse(["3", 4.0, "2.5"], type="integer")

    assert values[:2] == [3, 4]
    assert issues == ["'2.5' is not a whole number"]


def test_booleans_accept_common_spellings_only() -> None:
    values, issues = _parse(["yes", "No", "1", 0, "TRUE", "f", "maybe"], type="boolean")

    assert values[:6] == [True, False, True, False, True, False]
    assert len(issues) == 1 and "'maybe' is not a yes/no value" in issues[0]


def test_dates_must_be_iso_because_other_orders_are_ambiguous() -> None:
    values, issues = _parse(
        ["2021-03-04", pd.Timestamp("2022-01-02"), "04/03/2021", "2021-02-30"], type="date"
    )

    assert values[:2] == [pd.Timestamp("2021-03-04"), pd.Timestamp("2022-01-02")]
    assert issues == [
        "'04/03/2021' is not a date written YYYY-MM-DD (other orders are ambiguous)",
        "'2021-02-30' is not a valid calendar date",
    ]


def test_categories_accept_declared_levels_and_whole_number_cells() -> None:
    values, issues = _parse(["A", "B ", 2.0, "c"], type="category", levels=["A", "B", "2"])

    assert values[:3] == ["A", "B", "2"]
    assert issues == ["'c' is not one of: A, B, 2"]


def test_csv_header_with_a_duplicate_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("patient_id,age,age\nP1,50,51\n", encoding="utf-8")
    spec = TableSpec.model_validate(
        {"file": "t.csv", "columns": {"patient_id": {"role": "id", "type": "string"}}}
    )

    with pytest.raises(TableReadError, match="column\\(s\\) named twice in the header: age"):
        read_raw_table(path, spec)


def test_semicolon_csv_reads_with_a_declared_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("patient_id;albumin\nP1;38.5\nP2;NA\n", encoding="utf-8")
    spec = TableSpec.model_validate(
        {
            "file": "t.csv",
            "delimiter": ";",
            "columns": {
                "patient_id": {"role": "id", "type": "string"},
                "albumin": {"role": "predictor", "type": "number"},
            },
        }
    )

    raw = read_raw_table(path, spec)

    assert list(raw.columns) == ["patient_id", "albumin"]
    assert raw["albumin"].tolist() == ["38.5", "NA"]


@pytest.mark.parametrize("suffix", [".xlsx", ".parquet"])
def test_xlsx_and_parquet_read_like_csv(suffix: str, cohort_copy: Path) -> None:
    reference = load_cohort(cohort_copy, check_images=False)
    for table in ("patients", "tumours"):
        frame = pd.read_csv(cohort_copy / f"{table}.csv", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            # Parquet holds typed columns: write numbers as numbers, missing as null.
            for column in frame.columns:
                numeric = pd.to_numeric(
                    frame[column].replace({"NA": None, "": None}), errors="coerce"
                )
                if (
                    numeric.notna().sum()
                    == frame[column]
                    .replace(
                        {
                            "NA": "",
                        }
                    )
                    .ne("")
                    .sum()
                ):
                    frame[column] = numeric
            frame.to_parquet(cohort_copy / f"{table}{suffix}")
        else:
            frame.to_excel(cohort_copy / f"{table}{suffix}", index=False)
        (cohort_copy / f"{table}.csv").unlink()
    yaml_path = cohort_copy / "cohort.yaml"
    text = yaml_path.read_text(encoding="utf-8")
    text = text.replace("file: patients.csv", f"file: patients{suffix}")
    yaml_path.write_text(
        text.replace("file: tumours.csv", f"file: tumours{suffix}"), encoding="utf-8"
    )

    cohort = load_cohort(cohort_copy, check_images=False)

    pd.testing.assert_frame_equal(cohort.patients, reference.patients)
    assert cohort.tumours is not None and reference.tumours is not None
    pd.testing.assert_frame_equal(cohort.tumours, reference.tumours)
