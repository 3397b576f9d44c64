"""``simulate_cohort``: a virtual ablation cohort in the cohort format, with its ground truth.

Each patient is simulated from its own random streams (spawned from the cohort's seed), so a
cohort is the same whatever the number of worker processes, and the image size (``small`` or
``full``) changes the images only: the same seed gives the same patients, geometry and
outcomes at both sizes. ``appearance: varied`` changes the images only too (a fourth stream,
:mod:`hepablate.simulate.appearance`), and writes what it drew to ``appearance.csv``. The truth
goes to ``truth.csv``, which no training or prediction code
reads; :mod:`hepablate.simulate.oracle` scores the best possible prediction from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml
from pydantic import BaseModel, ConfigDict, Field

from hepablate.imaging.io import Grid
from hepablate.parallel import run_tasks
from hepablate.simulate.anatomy import (
    FIELD_OF_VIEW_MM,
    AblationZone,
    TumourSite,
    draw_anatomy,
    place_tumour,
    plan_ablation,
)
from hepablate.simulate.appearance import draw_look
from hepablate.simulate.clinical import (
    CentreProfile,
    draw_afp_ng_ml,
    draw_centres,
    draw_patient,
    draw_tumour_count,
    draw_tumour_diameter_mm,
)
from hepablate.simulate.outcomes import (
    albi_score,
    draw_distant_recurrence_months,
    draw_follow_up,
    draw_ltp_months,
    ltp_linear_predictor,
    ltp_probability_by,
    rfs_linear_predictor,
    rfs_probability_by,
)
from hepablate.simulate.render import ScannerProfile, render_post, render_pre
from hepablate.simulate.shapes import RigidTransform
from hepablate.simulate.truth import measure_tumour

__all__ = [
    "APPEARANCE_FILE",
    "IMAGE_SPACING_MM",
    "TRUTH_FILE",
    "SimulationConfig",
    "simulate_cohort",
]

IMAGE_SPACING_MM: dict[str, tuple[float, float, float]] = {
    "small": (1.5, 1.5, 2.5),
    "full": (0.8, 0.8, 2.5),
}
TRUTH_FILE = "truth.csv"
APPEARANCE_FILE = "appearance.csv"  # varied appearance only: each lesion's look, each scan's
# Chances of wanting a site; the realised location is measured and recorded afterwards.
_P_WANT_SUBCAPSULAR = 0.25
_P_WANT_PERIVASCULAR = 0.2
_STUDY_START = dt.date(2015, 1, 1)


class SimulationConfig(BaseModel):
    """What ``hepablate simulate`` was asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(gt=0)
    seed: int = Field(ge=0)
    size: Literal["small", "full"] = "small"
    centres: int = Field(default=1, ge=1, le=20)
    images: bool = True
    # "plain": the scans of earlier versions, voxel for voxel (the benchmarks' figures were
    # measured on them). "varied": contrast phase, kernel, noise, slice thickness 1-5 mm,
    # tumour appearances and cysts vary per patient (docs/simulator.md); same tables.
    appearance: Literal["plain", "varied"] = "plain"


@dataclass(frozen=True)
class _PatientTask:
    patient_id: str
    seed: np.random.SeedSequence
    centre: CentreProfile
    size: str
    images_dir: Path | None
    appearance: str = "plain"


@dataclass
class _PatientResult:
    patient: dict[str, Any]
    tumours: list[dict[str, Any]]
    truth: list[dict[str, Any]]
    appearance: list[dict[str, Any]]


def _couinaud_segment(position: np.ndarray, liver_centre: np.ndarray) -> str:
    """An approximate Couinaud segment from a position relative to the liver's centre."""
    x, y, z = position - liver_centre
    if x > 22.0:  # left lateral section
        return "II" if z >= 0 else "III"
    if x > 2.0:
        return "IVa" if z >= 0 else "IVb"
    if x > -6.0 and y > 22.0:
        return "I"
    posterior = y > 0.0
    if z >= 0:
        return "VII" if posterior else "VIII"
    return "VI" if posterior else "V"


def _bclc(n_tumours: int, largest_mm: float, child_pugh: str, ecog: int) -> str:
    if ecog > 0:
        return "C"
    if n_tumours == 1 and largest_mm <= 20 and child_pugh == "A":
        return "0"
    if n_tumours == 1 or largest_mm <= 30:
        return "A"
    return "B"


def _grids(rng: np.random.Generator, size: str, slice_mm: float | None = None) -> tuple[Grid, Grid]:
    """The pre and post CT grids: ``size``'s spacing, or its in-plane one with ``slice_mm``."""
    spacing = IMAGE_SPACING_MM[size]
    if slice_mm is not None:
        spacing = (spacing[0], spacing[1], slice_mm)
    counts = tuple(round(f / s) for f, s in zip(FIELD_OF_VIEW_MM, spacing, strict=True))
    origin = np.array([-f / 2 for f in FIELD_OF_VIEW_MM]) + rng.uniform(-3.0, 3.0, 3)
    post_origin = origin + rng.uniform(-0.5, 0.5, 3) * np.asarray(spacing)
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    return (
        Grid(counts, spacing, tuple(float(o) for o in origin), identity),
        Grid(counts, spacing, tuple(float(o) for o in post_origin), identity),
    )


def _write(array: np.ndarray, grid: Grid, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(grid.spacing_mm)
    image.SetOrigin(grid.origin_mm)
    sitk.WriteImage(image, str(path), useCompression=True)


def _simulate_patient(task: _PatientTask) -> _PatientResult:
    # A fourth stream for the varied appearance only: the first three are the same either way.
    varied = task.appearance == "varied"
    streams = [np.random.default_rng(s) for s in task.seed.spawn(4 if varied else 3)]
    body_rng, outcome_rng, image_rng = streams[:3]
    centre = task.centre
    clinical = draw_patient(body_rng, centre)
    anatomy = draw_anatomy(body_rng)
    modality = "MWA" if body_rng.random() < centre.p_mwa else "RFA"
    patient_latent = body_rng.normal(0.0, 0.7)
    sites: list[TumourSite] = []
    zones: list[AblationZone] = []
    for tumour_id in range(1, draw_tumour_count(body_rng) + 1):
        site = place_tumour(
            body_rng,
            anatomy,
            tumour_id,
            draw_tumour_diameter_mm(body_rng, centre.size_factor),
            float(patient_latent + body_rng.normal(0.0, 0.71)),
            subcapsular=bool(body_rng.random() < _P_WANT_SUBCAPSULAR),
            perivascular=bool(body_rng.random() < _P_WANT_PERIVASCULAR),
            others=sites,
        )
        sites.append(site)
        zones.append(plan_ablation(body_rng, anatomy, site, modality))
    truths = [measure_tumour(s, z, anatomy) for s, z in zip(sites, zones, strict=True)]
    latents = np.array([s.latent for s in sites])
    liver_dysfunction = float(clinical.pop("liver_dysfunction"))
    afp = draw_afp_ng_ml(body_rng, float(latents.mean()), liver_dysfunction)
    ax, ay, az = (float(a) for a in np.clip(body_rng.normal(0.0, 2.0, 3), -5.0, 5.0))
    tx, ty, tz = (float(t) for t in np.clip(body_rng.normal(0.0, 4.0, 3), -10.0, 10.0))
    angles, shift = (ax, ay, az), (tx, ty, tz)
    motion = RigidTransform.from_angles(angles, shift)
    ablation_date = _STUDY_START + dt.timedelta(days=int(body_rng.integers(0, 5 * 365)))

    # Outcomes, from their own stream.
    diameters = np.array([s.diameter_mm for s in sites])
    ltp_lp = ltp_linear_predictor(
        np.array([t.minimal_margin_mm for t in truths]),
        diameters,
        np.array([t.perivascular for t in truths]),
        np.full(len(sites), modality == "RFA"),
        latents,
        np.full(len(sites), afp),
    )
    ltp_true = draw_ltp_months(outcome_rng, ltp_lp)
    albi = albi_score(float(clinical["bilirubin_umol_l"]), float(clinical["albumin_g_l"]))
    rfs_lp = rfs_linear_predictor(
        len(sites), afp, albi, clinical["aetiology"] == "HCV", float(latents.mean())
    )
    distant = draw_distant_recurrence_months(outcome_rng, rfs_lp)
    follow_up = draw_follow_up(outcome_rng)
    rfs_true = min(distant, float(ltp_true.min()))

    appearance: list[dict[str, Any]] = []
    if task.images_dir is not None:
        look = draw_look(streams[3], anatomy, sites, zones, centre.noise_hu) if varied else None
        pre_grid, post_grid = _grids(image_rng, task.size, look.slice_mm if look else None)
        scanner = ScannerProfile(noise_hu=centre.noise_hu, hu_offset=centre.hu_offset)
        folder = task.images_dir / task.patient_id
        folder.mkdir(parents=True, exist_ok=True)
        pre = render_pre(anatomy, sites, pre_grid, scanner, image_rng, look)
        for name, array in pre.items():
            _write(array, pre_grid, folder / f"{name}.nii.gz")
        post = render_post(anatomy, sites, zones, post_grid, motion, scanner, image_rng, look)
        for name, array in post.items():
            _write(array, post_grid, folder / f"{name}.nii.gz")
        if look is not None:
            appearance = look.rows(task.patient_id, sites)

    follow = follow_up.months
    patient = {
        "patient_id": task.patient_id,
        "centre": centre.name,
        **clinical,
        "afp_ng_ml": afp,
        "bclc": _bclc(
            len(sites),
            float(diameters.max()),
            str(clinical["child_pugh_class"]),
            int(clinical["ecog"]),
        ),
        "ablation_date": ablation_date.isoformat(),
        "rfs_months": round(min(rfs_true, follow), 1),
        "rfs_event": bool(rfs_true <= follow),
    }
    tumours, truth = [], []
    for site, zone, measured, lp, ltp in zip(sites, zones, truths, ltp_lp, ltp_true, strict=True):
        tumours.append(
            {
                "patient_id": task.patient_id,
                "tumour_id": site.tumour_id,
                "segment": _couinaud_segment(site.centre, anatomy.liver.centre),
                "diameter_mm": round(site.diameter_mm + float(body_rng.normal(0.0, 1.0))),
                "subcapsular": measured.subcapsular,
                "perivascular": measured.perivascular,
                "modality": modality,
                "power_w": round(zone.power_w),
                "ablation_time_min": round(zone.time_min),
                "applications": len(zone.ellipsoids),
                "ltp_months": round(min(float(ltp), follow), 1),
                "ltp_event": bool(ltp <= follow),
            }
        )
        truth.append(
            {
                "patient_id": task.patient_id,
                "tumour_id": site.tumour_id,
                "true_mam_mm": round(measured.minimal_margin_mm, 3),
                "true_coverage_pct": round(measured.coverage_pct, 3),
                "true_tumour_volume_ml": round(measured.volume_ml, 4),
                "true_diameter_mm": round(site.diameter_mm, 3),
                "true_capsule_gap_mm": round(measured.capsule_gap_mm, 3),
                "true_vessel_gap_mm": round(measured.vessel_gap_mm, 3),
                "latent": round(site.latent, 5),
                "planned_margin_mm": round(zone.planned_margin_mm, 3),
                "ltp_lp": round(float(lp), 6),
                "ltp_p24": round(float(ltp_probability_by(np.array([lp]), 24.0)[0]), 6),
                "ltp_true_months": None if not np.isfinite(ltp) else round(float(ltp), 3),
                "liver_dysfunction": round(liver_dysfunction, 5),
                "rfs_lp": round(rfs_lp, 6),
                "rfs_p24": round(rfs_probability_by(rfs_lp, ltp_lp, 24.0), 6),
                "follow_up_months": round(follow, 3),
                "lost_to_follow_up": follow_up.lost,
                "motion_angles_deg": " ".join(f"{a:.4f}" for a in angles),
                "motion_matrix": " ".join(f"{v:.9f}" for v in motion.matrix.ravel()),
                "motion_translation_mm": " ".join(f"{v:.6f}" for v in motion.translation),
            }
        )
    return _PatientResult(patient, tumours, truth, appearance)


def simulate_cohort(
    config: SimulationConfig,
    out: Path,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a virtual cohort to ``out`` and return its truth table (also in ``truth.csv``)."""
    out.mkdir(parents=True, exist_ok=True)
    root = np.random.SeedSequence(config.seed)
    centre_seed, *patient_seeds = root.spawn(config.n + 1)
    centres = draw_centres(np.random.default_rng(centre_seed), config.centres)
    assign_rng = np.random.default_rng(centre_seed.spawn(1)[0])
    weights = np.array([c.weight for c in centres])
    which = assign_rng.choice(len(centres), size=config.n, p=weights / weights.sum())
    width = max(4, len(str(config.n)))
    tasks = [
        _PatientTask(
            patient_id=f"SIM{i + 1:0{width}d}",
            seed=patient_seeds[i],
            centre=centres[which[i]],
            size=config.size,
            images_dir=out / "images" if config.images else None,
            appearance=config.appearance,
        )
        for i in range(config.n)
    ]
    done: dict[int, _PatientResult] = {}
    for position, result in run_tasks(_simulate_patient, tasks, workers=workers):
        done[position] = result
        if progress:
            progress(len(done), config.n)
    results = [done[i] for i in range(len(tasks))]  # the tables in patient order

    patients = pd.DataFrame([r.patient for r in results])
    tumours = pd.DataFrame([row for r in results for row in r.tumours])
    truth = pd.DataFrame([row for r in results for row in r.truth])
    patients.to_csv(out / "patients.csv", index=False)
    tumours.to_csv(out / "tumours.csv", index=False)
    truth.to_csv(out / TRUTH_FILE, index=False)
    if config.appearance == "varied" and config.images:
        looks = pd.DataFrame([row for r in results for row in r.appearance])
        looks["tumour_id"] = looks["tumour_id"].astype("Int64")  # empty for a cyst
        looks.to_csv(out / APPEARANCE_FILE, index=False)
    (out / "cohort.yaml").write_text(_cohort_yaml(config, centres), encoding="utf-8")
    return truth


def _cohort_yaml(config: SimulationConfig, centres: list[CentreProfile]) -> str:
    levels = [c.name for c in centres]

    def number(unit: str, low: float, high: float, concept: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "role": "predictor",
            "type": "number",
            "unit": unit,
            "range": [low, high],
        }
        if concept:
            spec["concept"] = concept
        return spec

    def category(*values: str, concept: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"role": "predictor", "type": "category", "levels": list(values)}
        if concept:
            spec["concept"] = concept
        return spec

    boolean = {"role": "predictor", "type": "boolean"}
    patients = {
        "patient_id": {"role": "id", "type": "string"},
        "centre": {"role": "centre", "type": "category", "levels": levels},
        "age": {
            "role": "predictor",
            "type": "integer",
            "unit": "years",
            "range": [18, 100],
            "concept": "age",
        },
        "sex": category("M", "F"),
        "aetiology": category("HBV", "HCV", "alcohol", "NASH"),
        "cirrhosis": boolean,
        "albumin_g_l": number("g/L", 10, 70, "albumin"),
        "bilirubin_umol_l": number("µmol/L", 1, 700, "total_bilirubin"),
        "inr": number("1", 0.5, 10, "inr"),
        "platelets_10e9_l": number("10^9/L", 5, 1000, "platelets"),
        "ascites": category("none", "mild", "moderate_severe", concept="ascites"),
        "encephalopathy": category("none", "grade_1_2", "grade_3_4", concept="encephalopathy"),
        "child_pugh_class": category("A", "B", "C"),
        "ecog": {"role": "predictor", "type": "integer", "range": [0, 4]},
        "ast_u_l": number("U/L", 1, 5000, "ast"),
        "alt_u_l": number("U/L", 1, 5000, "alt"),
        "ggt_u_l": number("U/L", 1, 5000),
        "creatinine_umol_l": number("µmol/L", 10, 1500, "creatinine"),
        "sodium_mmol_l": number("mmol/L", 100, 180, "sodium"),
        "haemoglobin_g_l": number("g/L", 40, 220),
        "bmi_kg_m2": number("kg/m^2", 12, 70),
        "diabetes": boolean,
        "afp_ng_ml": number("ng/mL", 0, 1_000_000, "afp"),
        "bclc": category("0", "A", "B", "C"),
        "ablation_date": {"role": "ignore", "type": "date"},
        "rfs_months": {"role": "outcome", "type": "number", "unit": "months", "range": [0, 60]},
        "rfs_event": {"role": "outcome", "type": "boolean"},
    }
    tumours = {
        "patient_id": {"role": "patient_id", "type": "string"},
        "tumour_id": {"role": "id", "type": "integer"},
        "segment": category("I", "II", "III", "IVa", "IVb", "V", "VI", "VII", "VIII"),
        "diameter_mm": number("mm", 3, 100, "tumour_diameter"),
        "subcapsular": boolean,
        "perivascular": boolean,
        "modality": category("RFA", "MWA"),
        "power_w": number("W", 0, 300, "ablation_power"),
        "ablation_time_min": number("min", 0, 60, "ablation_time"),
        "applications": {"role": "predictor", "type": "integer", "range": [1, 5]},
        "ltp_months": {"role": "outcome", "type": "number", "unit": "months", "range": [0, 60]},
        "ltp_event": {"role": "outcome", "type": "boolean"},
    }
    document: dict[str, Any] = {
        "format_version": 1,
        "name": f"Virtual ablation cohort (n={config.n}, seed={config.seed}, {config.size})",
        "description": (
            "Simulated by `hepablate simulate`; see docs/simulator.md. The ground truth is in "
            "truth.csv, which no training or prediction code reads."
        ),
        "follow_up_months": 60,
        "missing_values": ["", "NA"],
        "tables": {
            "patients": {"file": "patients.csv", "columns": patients},
            "tumours": {"file": "tumours.csv", "columns": tumours},
        },
        "endpoints": [
            {
                "name": "ltp_24m",
                "kind": "binary",
                "table": "tumours",
                "event": "ltp_event",
                "time": "ltp_months",
                "horizon_months": 24,
                "description": "Local tumour progression within 2 years",
            },
            {
                "name": "ltp",
                "kind": "time_to_event",
                "table": "tumours",
                "time": "ltp_months",
                "event": "ltp_event",
            },
            {
                "name": "rfs_24m",
                "kind": "binary",
                "table": "patients",
                "event": "rfs_event",
                "time": "rfs_months",
                "horizon_months": 24,
                "description": "Intrahepatic recurrence (local or distant) within 2 years",
            },
            {
                "name": "rfs",
                "kind": "time_to_event",
                "table": "patients",
                "time": "rfs_months",
                "event": "rfs_event",
            },
        ],
    }
    if config.images:
        document["images"] = {
            "scans": {"pre_ct": {"modality": "CT"}, "post_ct": {"modality": "CT"}},
            "masks": {
                "pre_tumours": {"scan": "pre_ct", "labels": "tumour_id"},
                "post_ablation": {"scan": "post_ct", "labels": "tumour_id"},
                "liver": {"scan": "pre_ct", "labels": "binary"},
                "vessels": {"scan": "pre_ct", "labels": "binary"},
                "post_liver": {"scan": "post_ct", "labels": "binary"},
            },
        }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
