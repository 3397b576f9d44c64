"""Reading the cohort's tables (CSV, TSV, XLSX, Parquet alike) and parsing their cells.

A table is first read *raw*, every cell as it stands in the file, so that no value is converted
or dropped before validation has looked at it (pandas would otherwise turn ``"NA"`` into a
missing value, ``"1,5"`` into text and a malformed date into ``NaT`` without a word). Each cell is
then parsed against its column's declared type; a cell that does not parse is reported with its
row, never replaced.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.cohort.schema import ColumnSpec, ColumnType, TableSpec

__all__ = [
    "HEADER_ROWS",
    "CellIssue",
    "TableReadError",
    "parse_column",
    "read_raw_table",
]

# Row numbers are reported as a spreadsheet shows them: the header is row 1.
HEADER_ROWS = 1

_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


class TableReadError(Exception):
    """A table file that cannot be read at all (missing, corrupt, wrong encoding)."""


@dataclass(frozen=True)
class CellIssue:
    """A cell that does not parse as its column's type."""

    position: int  # 0-based data row
    raw: Any
    reason: str


def read_raw_table(path: Path, spec: TableSpec) -> pd.DataFrame:
    """Read ``path`` with every cell as it stands; the header row gives the column names.

    Empty cells come back as ``""``. Duplicate column names are an error here, since pandas
    would rename them silently.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else spec.delimiter
            grid = pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                skip_blank_lines=True,
            )
        elif suffix == ".xlsx":
            grid = _read_sheet(path, spec.sheet)
        elif suffix == ".parquet":
            table = pd.read_parquet(path)
            names = pd.DataFrame([list(table.columns)], columns=table.columns)
            grid = pd.concat([names, table.astype(object)], ignore_index=True)
        else:
            raise TableReadError(f"unsupported table format {suffix!r}")
    except TableReadError:
        raise
    except FileNotFoundError as exc:
        raise TableReadError("file not found") from exc
    except UnicodeDecodeError as exc:
        raise TableReadError("not UTF-8 text; save the file as UTF-8 (CSV UTF-8)") from exc
    except pd.errors.ParserError as exc:
        raise TableReadError(f"malformed table: {_first_line(exc)}") from exc
    except pd.errors.EmptyDataError as exc:
        raise TableReadError("the file is empty") from exc
    except (ValueError, OSError, KeyError) as exc:
        raise TableReadError(f"cannot read the file: {_first_line(exc)}") from exc
    except Exception as exc:  # corrupt zip/parquet containers raise library-specific errors
        raise TableReadError(
            f"cannot read the file: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc

    if grid.empty:
        raise TableReadError("the file is empty")
    grid = grid.map(_blank_if_missing)
    header = [str(name) for name in grid.iloc[0]]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise TableReadError(f"column(s) named twice in the header: {', '.join(duplicated)}")
    if "" in header:
        raise TableReadError(f"column {header.index('') + 1} has no name in the header row")
    body = grid.iloc[1:].reset_index(drop=True)
    body.columns = pd.Index(header)
    return body


def _read_sheet(path: Path, sheet: str | None) -> pd.DataFrame:
    """The named sheet of a workbook (the first when none is named), every cell as stored."""
    with pd.ExcelFile(path, engine="openpyxl") as workbook:
        names = [str(name) for name in workbook.sheet_names]
        if sheet is not None and sheet not in names:
            raise TableReadError(f"no sheet named {sheet!r}; the workbook has: {', '.join(names)}")
        return pd.read_excel(
            workbook, sheet_name=sheet if sheet is not None else 0, header=None, dtype=object
        )


def _blank_if_missing(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _MissingCodes:
    """The declared missing-value codes, matched against text and numeric cells alike.

    A text cell is missing when its text (stripped) is a code. A code that reads as a number
    (``-999``, ``"-999"``, ``99.0``) also matches every cell holding that number: a numeric
    spreadsheet or Parquet cell, or a text cell such as ``-999.0``. True/false cells are never
    numbers here, although Python counts ``True == 1``.
    """

    def __init__(self, codes: Iterable[str]) -> None:
        self.text = {code.strip() for code in codes}
        self.numbers = {n for n in map(_finite_number, self.text) if n is not None}

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, str):
            text = value.strip()
            return text in self.text or (
                bool(self.numbers) and _finite_number(text) in self.numbers
            )
        return bool(self.numbers) and _number_cell(value) in self.numbers


def _finite_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _number_cell(value: Any) -> float | None:
    """The value of a cell the file stores as a number (not as text, not true/false)."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_number(value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        raise ValueError("a true/false value where a number is expected")
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        text = str(value).strip()
        if _DECIMAL_COMMA.match(text):
            raise ValueError(f"{text!r} uses a decimal comma; write {text.replace(',', '.')!r}")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _parse_integer(value: Any) -> int:
    number = _parse_number(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _parse_boolean(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and float(value) in (0.0, 1.0):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a yes/no value (use true/false, yes/no or 1/0)")


def _parse_date(value: Any) -> pd.Timestamp:
    if isinstance(value, dt.date | pd.Timestamp | np.datetime64):
        return pd.Timestamp(value)
    text = str(value).strip()
    if not _ISO_DATE.match(text):
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD (other orders are ambiguous)")
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid calendar date") from None


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a spreadsheet cell 2.0 in a category or id column means "2"
    return str(value).strip()


def _parse_text(value: Any) -> str:
    text = _as_text(value)
    if not text:
        raise ValueError("empty text")
    return text


_PARSERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.NUMBER: _parse_number,
    ColumnType.INTEGER: _parse_integer,
    ColumnType.BOOLEAN: _parse_boolean,
    ColumnType.DATE: _parse_date,
    ColumnType.CATEGORY: _parse_text,
    ColumnType.STRING: _parse_text,
}


def parse_column(
    raw: pd.Series, spec: ColumnSpec, missing_values: Iterable[str]
) -> tuple[pd.Series, list[CellIssue]]:
    """Parse one raw column to its declared type.

    Returns the typed column (missing cells as NA) and the cells that could not be parsed, which
    are left NA in the typed column and must be reported by the caller. Ranges and units are not
    checked here.
    """
    missing = _MissingCodes(missing_values)
    parser = _PARSERS[spec.type]
    values: list[Any] = []
    issues: list[CellIssue] = []
    for position, cell in enumerate(raw.tolist()):
        if cell in missing:
            values.append(None)
            continue
        try:
            parsed = parser(cell)
            if spec.type is ColumnType.CATEGORY:
                parsed = _level_of(cell, parsed, spec.levels or [])
        except ValueError as exc:
            issues.append(CellIssue(position, cell, str(exc)))
            values.append(None)
            continue
        values.append(parsed)
    return _typed_series(values, spec, raw.name), issues


def _level_of(cell: Any, text: str, levels: list[str]) -> str:
    """The level a category cell holds: a text cell as written, a numeric cell by its value.

    A text cell must be spelt as the level (``"01"`` is not the level ``1``). A cell the file
    stores as a number has no spelling, only a value: the XLSX cell 1 (stored 1.0) is the level
    ``1``, and the Parquet value 2.5 the level ``2.50`` if no level is spelt ``2.5``.
    """
    if text in levels:
        return text
    number = _number_cell(cell)
    if number is not None:
        same = [level for level in levels if _finite_number(level) == number]
        if len(same) == 1:
            return same[0]
        if same:
            raise ValueError(f"{cell!r} equals several levels ({', '.join(same)})")
    raise ValueError(f"{text!r} is not one of: {', '.join(levels)}")


def _typed_series(values: list[Any], spec: ColumnSpec, name: Any) -> pd.Series:
    if spec.type is ColumnType.NUMBER:
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64", name=name)
    if spec.type is ColumnType.INTEGER:
        return pd.Series(values, dtype="Int64", name=name)
    if spec.type is ColumnType.BOOLEAN:
        return pd.Series(values, dtype="boolean", name=name)
    if spec.type is ColumnType.DATE:
        return pd.Series(pd.to_datetime(values), name=name)
    if spec.type is ColumnType.CATEGORY:
        return pd.Series(pd.Categorical(values, categories=spec.levels), name=name)
    return pd.Series(values, dtype="string", name=name)
