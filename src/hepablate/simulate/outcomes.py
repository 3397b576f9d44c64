"""The hazard model: local tumour progression, intrahepatic recurrence and follow-up.

**Local tumour progression (LTP), per tumour** is a cure model. A tumour progresses at all with
probability ``p_ever = logistic(lp)``; if it does, the time to progression is log-normal with
a median of 11 months (most LTP shows within two years). The linear predictor is

    lp = a0 + b_margin * clip(MAM, -4, 12) - b_steep * sigmoid((MAM - 5) / 0.7)
            + b_size * [diameter > 30 mm] + b_rfa_vessel * [perivascular and RFA]
            + b_latent * latent + b_afp * (log10 AFP - 1)

so the odds of progression fall by about 0.7 per mm of minimal ablative margin (Laimer 2020)
and drop further past 5 mm, where real series see almost none.

**Intrahepatic distant recurrence, per patient**: Weibull proportional hazards in tumour number,
AFP, ALBI, HCV aetiology and the tumours' mean latent aggressiveness. Recurrence-free survival
(RFS) ends at the first of distant recurrence and any of the patient's LTPs.

**Follow-up**: administrative censoring uniform in 24-60 months (the study closes while patients
are still being followed) and loss to follow-up at 5% a year.

The coefficients and their sources are in docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = [
    "LTP_COEFFICIENTS",
    "RFS_COEFFICIENTS",
    "FollowUp",
    "draw_follow_up",
    "ltp_linear_predictor",
    "ltp_probability_by",
    "rfs_linear_predictor",
    "rfs_probability_by",
]

LTP_COEFFICIENTS = {
    "intercept": -1.4,
    "margin_per_mm": -0.36,  # OR 0.70 per mm
    "beyond_5mm": -1.2,
    "diameter_over_30mm": 0.7,
    "perivascular_rfa": 0.7,
    "latent": 0.45,
    "log10_afp": 0.3,
}
LTP_MEDIAN_MONTHS = 11.0
LTP_LOG_SD = 0.65

RFS_COEFFICIENTS = {
    "extra_tumour": 0.35,
    "log10_afp": 0.35,
    "albi": 0.55,
    "hcv": 0.3,
    "latent_mean": 0.35,
}
RFS_WEIBULL_SHAPE = 0.9
RFS_SCALE_MONTHS = 250.0  # baseline: about 10% distant recurrence by 2 years at lp = 0

LOSS_TO_FOLLOW_UP_PER_YEAR = 0.05
ADMINISTRATIVE_CENSORING_MONTHS = (24.0, 60.0)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float))))


def ltp_linear_predictor(
    margin_mm: np.ndarray,
    diameter_mm: np.ndarray,
    perivascular: np.ndarray,
    rfa: np.ndarray,
    latent: np.ndarray,
    afp_ng_ml: np.ndarray,
) -> np.ndarray:
    c = LTP_COEFFICIENTS
    margin = np.clip(np.asarray(margin_mm, dtype=float), -4.0, 12.0)
    return np.asarray(
        c["intercept"]
        + c["margin_per_mm"] * margin
        + c["beyond_5mm"] * _sigmoid((margin - 5.0) / 0.7)
        + c["diameter_over_30mm"] * (np.asarray(diameter_mm) > 30.0)
        + c["perivascular_rfa"] * (np.asarray(perivascular) & np.asarray(rfa))
        + c["latent"] * np.asarray(latent)
        + c["log10_afp"] * (np.log10(np.asarray(afp_ng_ml)) - 1.0)
    )


def ltp_probability_by(lp: np.ndarray, months: float) -> np.ndarray:
    """True probability of LTP by ``months``."""
    by_then = norm.cdf((np.log(months) - np.log(LTP_MEDIAN_MONTHS)) / LTP_LOG_SD)
    return np.asarray(_sigmoid(lp) * by_then)


def draw_ltp_months(rng: np.random.Generator, lp: np.ndarray) -> np.ndarray:
    """Time of LTP (inf for a tumour that never progresses)."""
    lp = np.asarray(lp, dtype=float)
    progresses = rng.random(lp.shape) < _sigmoid(lp)
    times = np.exp(np.log(LTP_MEDIAN_MONTHS) + LTP_LOG_SD * rng.standard_normal(lp.shape))
    return np.where(progresses, times, np.inf)


def rfs_linear_predictor(
    n_tumours: int, afp_ng_ml: float, albi: float, hcv: bool, latent_mean: float
) -> float:
    c = RFS_COEFFICIENTS
    return float(
        c["extra_tumour"] * (n_tumours - 1)
        + c["log10_afp"] * (np.log10(afp_ng_ml) - 1.0)
        + c["albi"] * (albi + 2.6)
        + c["hcv"] * hcv
        + c["latent_mean"] * latent_mean
    )


def distant_recurrence_probability_by(lp: float, months: float) -> float:
    return float(1.0 - np.exp(-((months / RFS_SCALE_MONTHS) ** RFS_WEIBULL_SHAPE) * np.exp(lp)))


def rfs_probability_by(lp: float, ltp_lps: np.ndarray, months: float) -> float:
    """True probability of recurrence (distant or any LTP) by ``months``."""
    free = 1.0 - distant_recurrence_probability_by(lp, months)
    free *= float(np.prod(1.0 - ltp_probability_by(np.asarray(ltp_lps), months)))
    return 1.0 - free


def draw_distant_recurrence_months(rng: np.random.Generator, lp: float) -> float:
    # Inverse of S(t) = exp(-(t/scale)^k exp(lp)).
    u = rng.random()
    return float(RFS_SCALE_MONTHS * (-np.log(u) / np.exp(lp)) ** (1.0 / RFS_WEIBULL_SHAPE))


@dataclass(frozen=True)
class FollowUp:
    months: float
    lost: bool  # ended by loss to follow-up rather than by the study's close


def draw_follow_up(rng: np.random.Generator) -> FollowUp:
    administrative = rng.uniform(*ADMINISTRATIVE_CENSORING_MONTHS)
    rate = -np.log(1.0 - LOSS_TO_FOLLOW_UP_PER_YEAR) / 12.0
    lost = rng.exponential(1.0 / rate)
    return FollowUp(float(min(administrative, lost)), bool(lost < administrative))


def albi_score(bilirubin_umol_l: float, albumin_g_l: float) -> float:
    """ALBI = 0.66 log10(bilirubin µmol/L) - 0.085 albumin g/L (Johnson 2015)."""
    return float(0.66 * np.log10(bilirubin_umol_l) - 0.085 * albumin_g_l)
