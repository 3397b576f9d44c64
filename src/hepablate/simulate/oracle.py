"""The best possible prediction on a virtual cohort, and the cohort's rates.

The oracle knows the true risk of every tumour and patient (``truth.csv``): its AUC and C-index
are the ceiling for any model on the same rows, since no model can know more than the true
probability. A model evaluated on a subset (a test fold, a centre) is compared with
:func:`oracle_scores` on that same subset.

Only evaluation code may call this module; training and prediction never read ``truth.csv``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

from hepablate.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort, load_cohort
from hepablate.simulate.generate import TRUTH_FILE

__all__ = [
    "LTP_DRIVERS",
    "NOISE_COLUMNS",
    "cohort_rates",
    "driver_columns",
    "driver_shares",
    "oracle_scores",
    "read_truth",
]

# The simulator's drivers of local progression (hepablate.simulate.outcomes). A selection
# "finds" a driver when it keeps a column that measures it (see ``driver_columns``).
LTP_DRIVERS = ("margin", "size", "perivascular", "texture")
# Columns that measure a driver by construction.
_DESIGNED: dict[str, tuple[str, ...]] = {
    "margin": (
        "geom.minimal_ablative_margin_mm",
        "geom.margin_p5_mm",
        "geom.margin_mean_mm",
        "geom.tumour_coverage_pct",
        "geom.residual_tumour_ml",
    ),
    "size": ("clin.diameter_mm", "geom.tumour_volume_ml", "geom.tumour_max_diameter_mm"),
    "perivascular": ("clin.perivascular", "geom.distance_to_vessel_mm"),
    "texture": (),
}
# Plausible, correlated with liver function or aetiology, and without effect on any outcome
# (docs/simulator.md): what a selection should reject.
NOISE_COLUMNS: tuple[str, ...] = (
    "clin.ast_u_l",
    "clin.alt_u_l",
    "clin.ggt_u_l",
    "clin.creatinine_umol_l",
    "clin.sodium_mmol_l",
    "clin.haemoglobin_g_l",
    "clin.bmi_kg_m2",
    "clin.diabetes",
)
# What else measures a driver, judged on the cohort against its truth (Spearman's rho): a
# radiomics feature that is the tumour's volume in disguise (first-order energy sums the
# squared intensity of every voxel: rho 0.99 with the true volume) measures size, not texture;
# the tumour's latent aggressiveness sets its intensity spread (hepablate.simulate.render),
# which tumour features such as the variance or the MAD measure (rho about 0.85 on 500
# patients), and the 10th percentile in part (rho -0.50 with the latent, -0.52 with the volume).
SIZE_RHO = 0.95
TEXTURE_RHO = 0.4


def driver_columns(table: pd.DataFrame, truth: pd.DataFrame) -> dict[str, set[str]]:
    """Per driver, the FeatureTable columns that measure it: the designed ones, plus those
    whose Spearman correlation with the driver's true value on this cohort says so. Only
    evaluation code calls this (it reads the truth)."""
    truth = truth.reindex(table.index)
    numeric = table.filter(regex=r"^(clin|geom|rad)\.").apply(pd.to_numeric, errors="coerce")
    numeric = numeric.loc[:, numeric.nunique() > 1]

    def rho(column: str) -> pd.Series:
        return numeric.corrwith(truth[column].astype(float), method="spearman").abs()

    volume, latent = rho("true_tumour_volume_ml"), rho("latent")
    columns = {driver: set(designed) for driver, designed in _DESIGNED.items()}
    columns["size"] |= set(volume[volume >= SIZE_RHO].index)
    tumour_intensity = [
        c for c in numeric.columns if c.startswith("rad.tumour.") and ".morph." not in c
    ]
    columns["texture"] |= {
        c for c in tumour_intensity if latent[c] >= TEXTURE_RHO and volume[c] < SIZE_RHO
    }
    return columns


def driver_shares(selected: list[list[str]], columns: dict[str, set[str]]) -> dict[str, float]:
    """Per driver, and per noise column, the share of ``selected`` sets (one per outer
    training set) that keep a column measuring it (``columns``: see ``driver_columns``)."""
    if not selected:
        raise ValueError("no selected feature sets")
    shares = {
        driver: float(np.mean([bool(columns[driver] & set(s)) for s in selected]))
        for driver in LTP_DRIVERS
    }
    for column in NOISE_COLUMNS:
        shares[column] = float(np.mean([any(_is(c, column) for c in s) for s in selected]))
    return shares


def _is(feature: str, column: str) -> bool:
    # A one-hot encoded boolean (``clin.diabetes_True``) is still the column.
    return feature == column or feature.startswith(f"{column}_")


def read_truth(cohort_dir: Path) -> pd.DataFrame:
    """``truth.csv`` indexed by (patient id, tumour id)."""
    path = Path(cohort_dir) / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ground truth (only simulated cohorts have one)")
    truth = pd.read_csv(path, dtype={"patient_id": str})
    return truth.set_index(["patient_id", "tumour_id"]).rename_axis([PATIENT_INDEX, TUMOUR_INDEX])


def _auc(labels: pd.Series, scores: pd.Series) -> float | None:
    known = labels.notna()
    y = labels[known].astype(int)
    if y.nunique() < 2:
        return None
    return float(roc_auc_score(y, scores[known]))


def _c_index(outcomes: pd.DataFrame, risk: pd.Series) -> float | None:
    known = outcomes.dropna().index
    # A C-index needs a pair: one row (a single simulated patient) has none.
    if len(known) < 2 or outcomes.loc[known, "event"].astype(bool).sum() == 0:
        return None
    return float(
        concordance_index_censored(
            outcomes.loc[known, "event"].astype(bool).to_numpy(),
            outcomes.loc[known, "time_months"].to_numpy(dtype=float),
            risk.loc[known].to_numpy(dtype=float),
        )[0]
    )


def oracle_scores(
    cohort_dir: Path | str,
    patients: Iterable[str] | None = None,
    *,
    cohort: Cohort | None = None,
    truth: pd.DataFrame | None = None,
) -> dict[str, float | None]:
    """AUC and Harrell's C-index of the true risks, on all patients or on ``patients``.

    ``ltp_24m_auc`` scores the true 2-year progression probability against the observed
    2-year label (tumours censored earlier are left out, as for any model); ``ltp_c_index``
    the true linear predictor against observed time to progression; ``rfs_*`` the same per
    patient for recurrence.
    """
    cohort = cohort or load_cohort(cohort_dir, check_images=False)
    truth = read_truth(Path(cohort_dir)) if truth is None else truth
    keep = None if patients is None else {str(p) for p in patients}

    def subset(frame: pd.DataFrame) -> pd.DataFrame:
        if keep is None:
            return frame
        level = frame.index.get_level_values(PATIENT_INDEX)
        return frame[level.isin(keep)]

    tumour_truth = subset(truth)
    patient_truth = tumour_truth.groupby(level=PATIENT_INDEX).first()
    ltp_labels = subset(cohort.outcomes("ltp_24m"))["label"]
    ltp = subset(cohort.outcomes("ltp"))
    rfs_labels = subset(cohort.outcomes("rfs_24m"))["label"]
    rfs = subset(cohort.outcomes("rfs"))
    return {
        "ltp_24m_auc": _auc(ltp_labels, tumour_truth["ltp_p24"].reindex(ltp_labels.index)),
        "ltp_c_index": _c_index(ltp, tumour_truth["ltp_lp"].reindex(ltp.index)),
        "rfs_24m_auc": _auc(rfs_labels, patient_truth["rfs_p24"].reindex(rfs_labels.index)),
        "rfs_c_index": _c_index(rfs, patient_truth["rfs_lp"].reindex(rfs.index)),
    }


def _cumulative_incidence(outcomes: pd.DataFrame, months: float) -> float:
    known = outcomes.dropna()
    times, survival = kaplan_meier_estimator(
        known["event"].astype(bool).to_numpy(), known["time_months"].to_numpy(dtype=float)
    )
    before = survival[times <= months]
    return float(1.0 - before[-1]) if len(before) else 0.0


def cohort_rates(cohort_dir: Path | str) -> dict[str, Any]:
    """The rates ``hepablate simulate`` prints, measured on the written cohort and its truth."""
    cohort = load_cohort(cohort_dir, check_images=False)
    truth = read_truth(Path(cohort_dir))
    assert cohort.tumours is not None
    margin = truth["true_mam_mm"]
    ltp, rfs = cohort.outcomes("ltp"), cohort.outcomes("rfs")
    patients, tumours = cohort.patients, cohort.tumours
    lost = truth.groupby(level=PATIENT_INDEX)["lost_to_follow_up"].first()
    follow = truth.groupby(level=PATIENT_INDEX)["follow_up_months"].first()
    return {
        "patients": len(patients),
        "tumours": len(tumours),
        "ltp_24m_km": _cumulative_incidence(ltp, 24.0),
        "rfs_24m_km": _cumulative_incidence(rfs, 24.0),
        "margin_median_mm": float(margin.median()),
        "margin_iqr_mm": [float(margin.quantile(0.25)), float(margin.quantile(0.75))],
        "margin_below_0_pct": float((margin < 0).mean() * 100),
        "margin_below_5_pct": float((margin < 5).mean() * 100),
        "lost_before_24m_pct": float(((follow < 24) & lost).mean() * 100),
        "follow_up_median_months": float(follow.median()),
        "ltp_censored_pct": float((~ltp["event"].astype(bool)).mean() * 100),
        "single_tumour_pct": float((tumours.groupby(level=PATIENT_INDEX).size() == 1).mean() * 100),
        "tumour_diameter_median_mm": float(tumours["diameter_mm"].median()),
        "subcapsular_pct": float(tumours["subcapsular"].astype(bool).mean() * 100),
        "perivascular_pct": float(tumours["perivascular"].astype(bool).mean() * 100),
        "male_pct": float((patients["sex"] == "M").mean() * 100),
        "hbv_pct": float((patients["aetiology"] == "HBV").mean() * 100),
        "cirrhosis_pct": float(patients["cirrhosis"].astype(bool).mean() * 100),
        "child_pugh_a_pct": float((patients["child_pugh_class"] == "A").mean() * 100),
        "afp_over_20_pct": float((patients["afp_ng_ml"] > 20).mean() * 100),
        "age_mean": float(np.mean(patients["age"].astype(float))),
        **oracle_scores(cohort_dir, cohort=cohort, truth=truth),
    }
