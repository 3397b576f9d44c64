"""Reading tables in every format alike, and parsing cells by declared type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hepablate.cohort import load_cohort, validate_cohort
from hepablate.cohort.schema import CohortSchema, ColumnSpec, TableSpec
from hepablate.cohort.tables import TableReadError, parse_column, read_raw_table

_ID = {"role": "id", "type": "string"}


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


@pytest.mark.slow
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


def test_numeric_missing_codes_match_numeric_and_text_cells_alike() -> None:
    cells = [-999, -999.0, np.int64(-999), np.float32(-999), "-999", " -999.0 ", "NA", 5, True]
    series, issues = parse_column(
        pd.Series(cells, dtype=object), _spec(type="number"), ["", "NA", "-999"]
    )

    assert np.isnan(series.tolist()[:7]).all()
    assert series.tolist()[7] == 5.0
    # True is not the number 1 here, and only declared codes mean missing.
    assert [issue.reason for issue in issues] == ["a true/false value where a number is expected"]


def test_only_declared_codes_mean_missing() -> None:
    series, issues = parse_column(
        pd.Series([-999, "-998", "?"], dtype=object), _spec(type="number"), ["", "NA", "-998"]
    )

    assert series.tolist()[0] == -999.0
    assert np.isnan(series.tolist()[1])
    assert [(issue.position, issue.reason) for issue in issues] == [(2, "'?' is not a number")]


def test_a_code_declared_as_a_yaml_number_is_the_same_code() -> None:
    schema = CohortSchema.model_validate(
        {
            "name": "x",
            "missing_values": ["", -999, 99.5],
            "tables": {"patients": {"file": "p.csv", "columns": {"id": _ID}}},
        }
    )

    assert schema.missing_values == ["", "-999", "99.5"]
    series, _ = parse_column(
        pd.Series([-999.0, 99.5, "99.5", 7], dtype=object),
        _spec(type="number"),
        schema.missing_values,
    )
    assert np.isnan(series.tolist()[:3]).all() and series.tolist()[3] == 7.0


def test_numeric_levels_are_accepted_and_compared_as_written() -> None:
    spec = _spec(type="category", levels=[0, 1, 2.5])
    assert spec.levels == ["0", "1", "2.5"]

    series, issues = parse_column(
        pd.Series([0, "0", 0.0, 1, np.int64(1), "1 ", 2.5, "01", "2.50", "1.0"], dtype=object),
        spec,
        ["", "NA"],
    )

    assert series.tolist()[:7] == ["0", "0", "0", "1", "1", "1", "2.5"]
    assert list(series.cat.categories) == ["0", "1", "2.5"]
    # Text cells are compared as written: "01" is not the level 1.
    assert [issue.reason for issue in issues] == [
        "'01' is not one of: 0, 1, 2.5",
        "'2.50' is not one of: 0, 1, 2.5",
        "'1.0' is not one of: 0, 1, 2.5",
    ]


def test_a_numeric_cell_matches_a_level_by_its_value() -> None:
    series, issues = parse_column(
        pd.Series([2.5, "2.5"], dtype=object), _spec(type="category", levels=["2.50"]), []
    )

    assert series.tolist()[0] == "2.50"
    assert [issue.reason for issue in issues] == ["'2.5' is not one of: 2.50"]


def _albumin_to_xlsx(cohort: Path, sheet: str | None) -> None:
    """patients.csv as an XLSX with albumin a numeric column where -999 codes 'unknown'."""
    frame = pd.read_csv(cohort / "patients.csv", dtype=str, keep_default_na=False)
    albumin = pd.to_numeric(frame["albumin_g_l"].replace({"NA": None}))
    albumin.iloc[[1, 3]] = -999
    frame["albumin_g_l"] = albumin.astype(object)
    with pd.ExcelWriter(cohort / "patients.xlsx") as writer:
        pd.DataFrame({"note": ["the data are on the next sheet"]}).to_excel(
            writer, sheet_name="readme", index=False
        )
        frame.to_excel(writer, sheet_name=sheet or "Sheet1", index=False)
    (cohort / "patients.csv").unlink()


def test_xlsx_with_numeric_minus_999_declared_missing_validates(cohort_copy: Path) -> None:
    _albumin_to_xlsx(cohort_copy, sheet="clinical")
    yaml_path = cohort_copy / "cohort.yaml"
    text = yaml_path.read_text(encoding="utf-8").replace(
        "file: patients.csv", "file: patients.xlsx\n    sheet: clinical"
    )
    yaml_path.write_text(text, encoding="utf-8")

    undeclared = validate_cohort(cohort_copy, check_images=False)
    assert sorted((p.code, p.row) for p in undeclared.errors) == [
        ("value.out_of_range", 3),
        ("value.out_of_range", 5),
    ]

    yaml_path.write_text(
        text.replace('missing_values: ["", "NA"]', 'missing_values: ["", "NA", -999]'),
        encoding="utf-8",
    )
    report = validate_cohort(cohort_copy, check_images=False)

    assert report.errors == []
    cohort = load_cohort(cohort_copy, check_images=False)
    albumin = cohort.patients["albumin_g_l"]
    assert albumin.iloc[[1, 3]].isna().all()
    assert albumin.iloc[0] == 38.5


def test_text_code_matches_a_parquet_number(cohort_copy: Path) -> None:
    frame = pd.read_csv(cohort_copy / "patients.csv", dtype=str, keep_default_na=False)
    for column in ("age", "albumin_g_l"):
        frame[column] = pd.to_numeric(frame[column].replace({"NA": None}))
    frame.loc[2, "albumin_g_l"] = -999.0
    frame.to_parquet(cohort_copy / "patients.parquet")
    (cohort_copy / "patients.csv").unlink()
    yaml_path = cohort_copy / "cohort.yaml"
    yaml_path.write_text(
        yaml_path.read_text(encoding="utf-8")
        .replace("file: patients.csv", "file: patients.parquet")
        .replace('missing_values: ["", "NA"]', 'missing_values: ["", "NA", "-999"]'),
        encoding="utf-8",
    )

    assert validate_cohort(cohort_copy, check_images=False).errors == []
    assert np.isnan(load_cohort(cohort_copy, check_images=False).patients["albumin_g_l"].iloc[2])


def test_a_sheet_that_is_not_there_is_named(cohort_copy: Path) -> None:
    _albumin_to_xlsx(cohort_copy, sheet=None)
    yaml_path = cohort_copy / "cohort.yaml"
    yaml_path.write_text(
        yaml_path.read_text(encoding="utf-8").replace(
            "file: patients.csv", "file: patients.xlsx\n    sheet: clinical"
        ),
        encoding="utf-8",
    )

    errors = validate_cohort(cohort_copy, check_images=False).errors

    assert [p.code for p in errors] == ["table.unreadable"]
    assert "clinical" in errors[0].message and "readme, Sheet1" in errors[0].message
