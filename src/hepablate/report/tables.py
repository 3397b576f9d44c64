"""Table 1 and the missingness table of a study (``table1.csv``, ``missingness.csv``).

Table 1 gives descriptive statistics only, overall and by outcome, without p-values: TRIPOD
(item 20b) asks for the characteristics of the participants, and tests of baseline differences
between outcome groups say nothing about a prediction model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from hepablate.study.data import StudyData

__all__ = [
    "missingness_table",
    "table_one",
    "write_cohort_tables",
]

IMAGE_PREFIXES = ("rad.", "deep.")  # image features: not in table 1 (hundreds of columns)
SMALL_SCALE = 6  # whole-number columns with at most this many values: n (%) per value


def _number(x: float) -> str:
    """Three significant digits, never in scientific notation."""
    if not math.isfinite(x):
        return str(x)
    if float(x).is_integer():
        return f"{x:.0f}"
    decimals = min(4, max(0, 2 - math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def _median_iqr(values: pd.Series) -> str:
    known = values.dropna().to_numpy(dtype=float)
    if len(known) == 0:
        return "-"
    q1, q2, q3 = np.percentile(known, [25, 50, 75])
    return f"{_number(q2)} ({_number(q1)} to {_number(q3)})"


def _count(mask: pd.Series, known: pd.Series) -> str:
    n = int(known.sum())
    k = int((mask & known).sum())
    return f"{k} ({k / n * 100:.0f}%)" if n else "-"


def _is_boolean(column: str, table: pd.DataFrame | None) -> bool:
    """A yes/no column: boolean in the FeatureTable (``StudyData.X`` holds it as 0/1)."""
    if table is not None and column in table:
        return bool(pd.api.types.is_bool_dtype(table[column]))
    return False


def _levels(values: pd.Series) -> list[Any] | None:
    """The levels of a category column, or of a number with a few whole values (a score,
    a grade, a count: ECOG 0/1/2); None for a measurement."""
    known = values.dropna()
    if not pd.api.types.is_numeric_dtype(values):
        return sorted({str(v) for v in known})
    distinct = sorted(set(known.to_numpy(dtype=float).tolist()))
    if len(distinct) <= SMALL_SCALE and all(float(v).is_integer() for v in distinct):
        return distinct
    return None


def table_one(data: StudyData) -> pd.DataFrame:
    """Table 1: every candidate column except image features, overall and by outcome.

    Numbers as median (IQR); booleans, categories and whole-number scales of at most
    ``SMALL_SCALE`` values (scores, grades, counts) as n (%) of the rows where the value is
    known; and the number of rows where it is missing. Columns: ``variable``, ``level``,
    ``overall``, ``event``, ``no_event``, ``missing``.
    """
    features = data.X
    events = pd.Series(np.asarray(data.events, dtype=bool), index=features.index)
    groups = {"overall": events | True, "event": events, "no_event": ~events}
    rows: list[dict[str, Any]] = []
    for column in (str(c) for c in features.columns):
        if column.startswith(IMAGE_PREFIXES):
            continue
        values = features[column]
        known = values.notna()
        missing = int((~known).sum())
        levels = _levels(values)
        if _is_boolean(column, data.table):
            rows.append(
                {
                    "variable": column,
                    "level": "yes, n (%)",
                    **{
                        g: _count(values[rows_] == 1.0, known[rows_]) for g, rows_ in groups.items()
                    },
                    "missing": missing,
                }
            )
        elif levels is None:
            rows.append(
                {
                    "variable": column,
                    "level": "median (IQR)",
                    **{g: _median_iqr(values[rows_]) for g, rows_ in groups.items()},
                    "missing": missing,
                }
            )
        else:
            for index, level in enumerate(levels):
                name = _number(level) if isinstance(level, float) else level
                rows.append(
                    {
                        "variable": column if index == 0 else "",
                        "level": f"{name}, n (%)",
                        **{
                            g: _count(values[rows_] == level, known[rows_])
                            for g, rows_ in groups.items()
                        },
                        "missing": missing if index == 0 else "",
                    }
                )
    columns = ["variable", "level", "overall", "event", "no_event", "missing"]
    return pd.DataFrame(rows, columns=columns)


def missingness_table(data: StudyData) -> pd.DataFrame:
    """Every candidate column with a missing value: ``column``, ``missing`` (rows) and
    ``percent``, most missing first."""
    missing = data.X.isna().sum()
    frame = pd.DataFrame(
        {
            "column": [str(c) for c in missing.index],
            "missing": missing.to_numpy(dtype=int),
            "percent": (missing.to_numpy(dtype=float) / max(len(data.X), 1) * 100).round(1),
        }
    )
    frame = frame[frame["missing"] > 0]
    return frame.sort_values(["missing", "column"], ascending=[False, True]).reset_index(drop=True)


def write_cohort_tables(data: StudyData, run_dir: Path) -> None:
    """``table1.csv`` (``table_one``) and ``missingness.csv`` (``missingness_table``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    table_one(data).to_csv(run_dir / "table1.csv", index=False, encoding="utf-8")
    missingness_table(data).to_csv(run_dir / "missingness.csv", index=False, encoding="utf-8")
