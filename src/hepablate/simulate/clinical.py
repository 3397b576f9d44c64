"""Clinical variables of a virtual patient, with the correlations of a real ablation series.

A hidden liver-dysfunction score drives albumin, bilirubin, INR, platelets, ascites and
encephalopathy together (so that Child-Pugh and ALBI come out as in series of ablated HCC);
the tumours' hidden aggressiveness raises AFP. Noise columns (labs, patient and procedure
numbers) have no effect on any outcome. Parameters and sources: docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AETIOLOGIES",
    "CentreProfile",
    "child_pugh_class",
    "draw_centres",
    "draw_patient",
    "draw_tumour_count",
    "draw_tumour_diameter_mm",
]

AETIOLOGIES = ("HBV", "HCV", "alcohol", "NASH")
_AETIOLOGY_P = np.array([0.60, 0.17, 0.13, 0.10])


@dataclass(frozen=True)
class CentreProfile:
    """What differs between hospitals: scanner, HU calibration and case mix."""

    name: str
    noise_hu: float
    hu_offset: float
    p_mwa: float
    size_factor: float
    hbv_shift: float
    weight: float


def draw_centres(rng: np.random.Generator, count: int) -> list[CentreProfile]:
    """``count`` centres; with one centre, a typical scanner and case mix."""
    if count == 1:
        return [CentreProfile("C1", 15.0, 0.0, 0.55, 1.0, 0.0, 1.0)]
    weights = rng.dirichlet(np.full(count, 4.0))
    return [
        CentreProfile(
            name=f"C{k + 1}",
            noise_hu=float(rng.uniform(10.0, 20.0)),
            hu_offset=float(rng.normal(0.0, 6.0)),
            p_mwa=float(rng.uniform(0.3, 0.8)),
            size_factor=float(rng.uniform(0.9, 1.15)),
            hbv_shift=float(rng.normal(0.0, 0.12)),
            weight=float(weights[k]),
        )
        for k in range(count)
    ]


def child_pugh_points(
    bilirubin_umol_l: float, albumin_g_l: float, inr: float, ascites: str, encephalopathy: str
) -> int:
    """Child-Pugh score (Pugh 1973, with INR for prothrombin time), 5 to 15."""
    points = 1 + (bilirubin_umol_l >= 34) + (bilirubin_umol_l > 50)
    points += 1 + (albumin_g_l <= 35) + (albumin_g_l < 28)
    points += 1 + (inr >= 1.7) + (inr > 2.3)
    points += {"none": 1, "mild": 2, "moderate_severe": 3}[ascites]
    points += {"none": 1, "grade_1_2": 2, "grade_3_4": 3}[encephalopathy]
    return int(points)


def child_pugh_class(points: int) -> str:
    return "A" if points <= 6 else ("B" if points <= 9 else "C")


def _logistic(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def draw_patient(rng: np.random.Generator, centre: CentreProfile) -> dict[str, Any]:
    """Demographics, aetiology, liver function and noise labs (AFP comes with the tumours)."""
    p = _AETIOLOGY_P.copy()
    p[0] = np.clip(p[0] + centre.hbv_shift, 0.2, 0.85)
    p[1:] *= (1.0 - p[0]) / p[1:].sum()
    aetiology = str(rng.choice(AETIOLOGIES, p=p))
    p_cirrhosis = {"HBV": 0.8, "HCV": 0.88, "alcohol": 0.9, "NASH": 0.6}[aetiology]
    cirrhosis = bool(rng.random() < p_cirrhosis)
    liver_dysfunction = float(rng.normal(0.0, 1.0) + 0.6 * cirrhosis + 0.1)

    albumin = float(np.clip(41.0 - 3.6 * liver_dysfunction + rng.normal(0.0, 2.5), 20.0, 52.0))
    bilirubin = float(
        np.clip(np.exp(np.log(14.0) + 0.42 * liver_dysfunction + rng.normal(0.0, 0.3)), 3.0, 150.0)
    )
    inr = float(np.clip(1.06 + 0.10 * liver_dysfunction + rng.normal(0.0, 0.06), 0.85, 2.6))
    platelets = float(
        np.clip(
            np.exp(
                np.log(165.0) - 0.22 * liver_dysfunction - 0.35 * cirrhosis + rng.normal(0.0, 0.3)
            ),
            25.0,
            450.0,
        )
    )
    ascites = "mild" if rng.random() < _logistic(-4.0 + 1.6 * liver_dysfunction) else "none"
    encephalopathy = (
        "grade_1_2" if rng.random() < _logistic(-5.5 + 1.4 * liver_dysfunction) else "none"
    )
    points = child_pugh_points(bilirubin, albumin, inr, ascites, encephalopathy)
    return {
        "age": int(np.clip(np.round(rng.normal(60.0, 10.0)), 25, 90)),
        "sex": "M" if rng.random() < 0.77 else "F",
        "aetiology": aetiology,
        "cirrhosis": cirrhosis,
        "albumin_g_l": round(albumin, 1),
        "bilirubin_umol_l": round(bilirubin, 1),
        "inr": round(inr, 2),
        "platelets_10e9_l": round(platelets),
        "ascites": ascites,
        "encephalopathy": encephalopathy,
        "child_pugh_class": child_pugh_class(points),
        "ecog": 0 if rng.random() < 0.95 else 1,
        # Noise: plausible and correlated with liver function or aetiology, but no effect.
        "ast_u_l": round(
            float(np.exp(np.log(42.0) + 0.2 * liver_dysfunction + rng.normal(0.0, 0.4)))
        ),
        "alt_u_l": round(
            float(
                np.exp(
                    np.log(38.0)
                    + 0.12 * liver_dysfunction
                    + 0.25 * (aetiology == "HCV")
                    + rng.normal(0.0, 0.45)
                )
            )
        ),
        "ggt_u_l": round(
            float(np.exp(np.log(60.0) + 0.4 * (aetiology == "alcohol") + rng.normal(0.0, 0.6)))
        ),
        "creatinine_umol_l": round(float(np.clip(rng.normal(78.0, 16.0), 40.0, 160.0))),
        "sodium_mmol_l": round(float(np.clip(rng.normal(139.0, 3.0), 126.0, 148.0))),
        "haemoglobin_g_l": round(float(np.clip(rng.normal(136.0, 16.0) - 4 * cirrhosis, 80, 180))),
        "bmi_kg_m2": round(
            float(np.clip(rng.normal(24.5, 3.5) + 3.0 * (aetiology == "NASH"), 16.0, 45.0)), 1
        ),
        "diabetes": bool(rng.random() < 0.2 + 0.4 * (aetiology == "NASH")),
        "liver_dysfunction": liver_dysfunction,  # hidden: truth only
    }


def draw_tumour_count(rng: np.random.Generator) -> int:
    """1 tumour in about 75% of patients, else 2 (18%) or 3 (7%)."""
    return int(rng.choice([1, 2, 3], p=[0.75, 0.18, 0.07]))


def draw_tumour_diameter_mm(rng: np.random.Generator, size_factor: float) -> float:
    """Log-normal, median about 23 mm, within 8-45 mm (ablation candidates)."""
    return float(np.clip(np.exp(np.log(23.0) + rng.normal(0.0, 0.32)) * size_factor, 8.0, 45.0))


def draw_afp_ng_ml(rng: np.random.Generator, latent_mean: float, liver_dysfunction: float) -> float:
    """Log-normal AFP, higher with aggressive tumours: about 30% above 20 ng/mL."""
    log_afp = np.log(11.0) + 1.0 * latent_mean + 0.25 * liver_dysfunction + rng.normal(0.0, 1.1)
    return round(float(np.clip(np.exp(log_afp), 0.8, 60000.0)), 1)
