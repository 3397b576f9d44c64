"""Clinical scores from the patients table: ALBI, Child-Pugh and MELD, as ``clin.score.*``.

Inputs are found by the *concept* their column declares in ``cohort.yaml`` (never by column
name) and converted from the declared unit. A score whose inputs are not all declared is not
computed; a patient with a missing input gets a missing score, never a guessed one.

- ALBI = 0.66 log10(bilirubin, µmol/L) − 0.085 albumin (g/L); grade 1 ≤ −2.60 < 2 ≤ −1.39 < 3
  (Johnson et al., J Clin Oncol 2015).
- Child-Pugh: bilirubin (< 34, 34-50, > 50 µmol/L), albumin (> 35, 28-35, < 28 g/L), INR
  (< 1.7, 1.7-2.3, > 2.3), ascites and encephalopathy (none, mild / grade 1-2, moderate-severe
  / grade 3-4), 1-3 points each; class A 5-6, B 7-9, C 10-15 (Pugh et al., Br J Surg 1973).
- MELD (UNOS) = 3.78 ln(bilirubin mg/dL) + 11.2 ln(INR) + 9.57 ln(creatinine mg/dL) + 6.43,
  each input at least 1.0 and creatinine at most 4.0 (Kamath et al., Hepatology 2001).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hepablate.cohort import Cohort
from hepablate.cohort.schema import ColumnRole, TableSpec

__all__ = ["SCORE_COLUMNS", "clinical_scores", "table_predictors"]

SCORE_COLUMNS = (
    "clin.score.albi",
    "clin.score.albi_grade",
    "clin.score.child_pugh",
    "clin.score.child_pugh_class",
    "clin.score.meld",
)

# Factor from each declared unit to the unit the formulas use.
_TO_FORMULA_UNIT = {
    "total_bilirubin": {"µmol/L": 1.0, "mg/dL": 17.104},  # -> µmol/L
    "albumin": {"g/L": 1.0, "g/dL": 10.0},  # -> g/L
    "creatinine": {"µmol/L": 1.0 / 88.42, "mg/dL": 1.0},  # -> mg/dL
    "inr": {"1": 1.0},
}
_CATEGORY_POINTS = {
    "ascites": {"none": 1, "mild": 2, "moderate_severe": 3},
    "encephalopathy": {"none": 1, "grade_1_2": 2, "grade_3_4": 3},
}


def _by_concept(frame: pd.DataFrame, spec: TableSpec, concept: str) -> pd.Series | None:
    for name, column in spec.columns.items():
        if column.concept == concept:
            values = frame[name]
            if concept in _TO_FORMULA_UNIT:
                factor = _TO_FORMULA_UNIT[concept][column.unit or "1"]
                return values.astype("float64") * factor
            return values.astype("object").map(_CATEGORY_POINTS[concept]).astype("Float64")
    return None


def clinical_scores(cohort: Cohort) -> pd.DataFrame:
    """``clin.score.*`` per patient (columns present only when their inputs are declared)."""
    spec = cohort.schema.tables.patients
    patients = cohort.patients
    bilirubin = _by_concept(patients, spec, "total_bilirubin")
    albumin = _by_concept(patients, spec, "albumin")
    inr = _by_concept(patients, spec, "inr")
    creatinine = _by_concept(patients, spec, "creatinine")
    ascites = _by_concept(patients, spec, "ascites")
    encephalopathy = _by_concept(patients, spec, "encephalopathy")
    scores = pd.DataFrame(index=patients.index)

    if bilirubin is not None and albumin is not None:
        albi = 0.66 * np.log10(bilirubin) - 0.085 * albumin
        scores["clin.score.albi"] = albi
        grade = pd.cut(albi, [-np.inf, -2.60, -1.39, np.inf], labels=[1, 2, 3])
        scores["clin.score.albi_grade"] = grade.astype("Float64")
    if all(s is not None for s in (bilirubin, albumin, inr, ascites, encephalopathy)):
        assert bilirubin is not None and albumin is not None and inr is not None
        assert ascites is not None and encephalopathy is not None
        lab_points = (
            3
            + (bilirubin >= 34).to_numpy(int)
            + (bilirubin > 50).to_numpy(int)
            + (albumin <= 35).to_numpy(int)
            + (albumin < 28).to_numpy(int)
            + (inr >= 1.7).to_numpy(int)
            + (inr > 2.3).to_numpy(int)
        )
        points = pd.Series(lab_points, index=patients.index, dtype="Float64")
        points = points + ascites.astype("Float64") + encephalopathy.astype("Float64")
        missing = bilirubin.isna() | albumin.isna() | inr.isna()
        points = points.mask(missing)
        scores["clin.score.child_pugh"] = points
        scores["clin.score.child_pugh_class"] = pd.cut(
            points.astype("float64"), [0, 6, 9, 15], labels=["A", "B", "C"]
        )
    if bilirubin is not None and inr is not None and creatinine is not None:
        bili_mg_dl = (bilirubin / 17.104).clip(lower=1.0)
        meld = (
            3.78 * np.log(bili_mg_dl)
            + 11.2 * np.log(inr.clip(lower=1.0))
            + 9.57 * np.log(creatinine.clip(lower=1.0, upper=4.0))
            + 6.43
        )
        scores["clin.score.meld"] = meld
    return scores


def table_predictors(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The predictor columns of a table as ``clin.<column>``, typed as in the cohort."""
    names = spec.columns_with_role(ColumnRole.PREDICTOR)
    return frame[names].rename(columns={n: f"clin.{n}" for n in names})
