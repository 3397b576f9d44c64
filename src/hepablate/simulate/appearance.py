"""How a patient's CT looks with ``appearance: varied``: contrast phase, kernel, slice thickness,
tumour appearance and cysts.

Drawn from a random stream of its own (the patient's fourth), after the anatomy, tumours and
zones: the patients, tumours, margins and outcomes are those of the plain cohort; only the
images differ. Every number is in docs/simulator.md ("Varied appearance"), with its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hepablate.simulate.anatomy import AblationZone, Anatomy, TumourSite, place_cyst
from hepablate.simulate.shapes import Ellipsoid

__all__ = [
    "KERNELS",
    "SLICE_THICKNESSES_MM",
    "Kernel",
    "PatientLook",
    "ScanLook",
    "TumourLook",
    "draw_look",
]

Phase = Literal["arterial", "portal"]

# Reconstructed slice thickness (= z spacing), as scanners offer them, and how often.
SLICE_THICKNESSES_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
_SLICE_WEIGHTS = (0.15, 0.15, 0.1, 0.15, 0.15, 0.15, 0.15)
_P_ARTERIAL_PRE = 0.4  # the pre-ablation (planning) CT in the late arterial phase
_P_ARTERIAL_POST = 0.2  # the follow-up CT: mostly portal venous
_P_SHARP = 0.3
_P_HYPER = 0.45  # hypervascular (HCC-like) tumours; the others hypovascular
_CYST_COUNT_WEIGHTS = (0.45, 0.3, 0.15, 0.1)  # 0, 1, 2, 3 cysts


@dataclass(frozen=True)
class Kernel:
    """A reconstruction kernel: its blur, its noise's grain and level, its edge overshoot."""

    name: str
    blur_mm: float  # Gaussian sigma in-plane
    noise_grain_mm: float  # sigma of the filter that correlates the noise in-plane
    noise_factor: float  # noise relative to a smooth kernel's at the same dose
    overshoot: float  # unsharp-mask amount: the edge ringing of a sharp kernel


KERNELS = {
    "smooth": Kernel("smooth", blur_mm=0.9, noise_grain_mm=1.1, noise_factor=1.0, overshoot=0.0),
    "sharp": Kernel("sharp", blur_mm=0.35, noise_grain_mm=0.35, noise_factor=1.8, overshoot=0.6),
}


@dataclass(frozen=True)
class ScanLook:
    """One scan's contrast phase, its tissues' HU and its noise."""

    phase: Phase
    liver_hu: float
    liver_mottle_hu: float  # sd of a smooth parenchymal heterogeneity (perfusion, fibrosis)
    portal_hu: float
    hepatic_hu: float  # hepatic veins and IVC
    aorta_hu: float
    kidney_hu: float
    noise_hu: float  # sd of the noise in this scan's voxels
    zone_hu: float  # coagulated tissue (post-ablation scan only)
    zone_rim_hu: float  # its hyperaemic rim, above the liver


@dataclass(frozen=True)
class TumourLook:
    """One tumour's enhancement (HU above the liver, per phase), rim, necrosis and edge."""

    kind: Literal["hyper", "hypo"]
    contrast_hu: dict[str, float]
    rim_hu: dict[str, float]
    rim_mm: float
    necrosis: float  # radius of a necrotic core, as a fraction of the tumour's; 0: none
    necrosis_hu: float
    edge_mm: float  # width of a soft (infiltrative) transition into the liver; 0: sharp


@dataclass(frozen=True)
class PatientLook:
    """Everything ``appearance: varied`` draws for one patient."""

    slice_mm: float
    kernel: Kernel
    pre: ScanLook
    post: ScanLook
    tumours: list[TumourLook]
    cysts: list[tuple[Ellipsoid, float]]  # shape, HU

    def rows(self, patient_id: str, sites: list[TumourSite]) -> list[dict[str, Any]]:
        """One row a lesion (tumours, then cysts) for ``appearance.csv``; ``centre_mm`` is in
        the pre CT's frame (x y z)."""
        scan = {
            "slice_mm": self.slice_mm,
            "kernel": self.kernel.name,
            "pre_phase": self.pre.phase,
            "post_phase": self.post.phase,
            "pre_liver_hu": round(self.pre.liver_hu, 1),
            "pre_noise_hu": round(self.pre.noise_hu, 1),
        }
        rows: list[dict[str, Any]] = []
        for site, look in zip(sites, self.tumours, strict=True):
            rows.append(
                {
                    "patient_id": patient_id,
                    "lesion": "tumour",
                    "tumour_id": site.tumour_id,
                    "kind": look.kind,
                    "diameter_mm": round(site.diameter_mm, 1),
                    "centre_mm": " ".join(f"{v:.1f}" for v in site.centre),
                    "pre_contrast_hu": round(look.contrast_hu[self.pre.phase], 1),
                    "pre_rim_hu": round(look.rim_hu[self.pre.phase], 1),
                    "necrosis": round(look.necrosis, 2),
                    "edge_mm": round(look.edge_mm, 2),
                    **scan,
                }
            )
        for shape, hu in self.cysts:
            rows.append(
                {
                    "patient_id": patient_id,
                    "lesion": "cyst",
                    "tumour_id": None,
                    "kind": "cyst",
                    "diameter_mm": round(float(2.0 * np.cbrt(np.prod(shape.radii))), 1),
                    "centre_mm": " ".join(f"{v:.1f}" for v in shape.centre),
                    "pre_contrast_hu": round(hu - self.pre.liver_hu, 1),
                    "pre_rim_hu": 0.0,
                    "necrosis": 0.0,
                    "edge_mm": 0.0,
                    **scan,
                }
            )
        return rows


def _scan_look(
    rng: np.random.Generator, p_arterial: float, noise_hu: float, slice_mm: float, kernel: Kernel
) -> ScanLook:
    arterial = bool(rng.random() < p_arterial)
    if arterial:  # late arterial, about 35 s: aorta bright, hepatic veins not yet filled
        liver, portal = rng.uniform(65.0, 90.0), rng.uniform(100.0, 160.0)
        hepatic, aorta = rng.uniform(40.0, 70.0), rng.uniform(250.0, 350.0)
        kidney = rng.uniform(170.0, 230.0)  # corticomedullary
    else:  # portal venous, about 70 s
        liver, portal = rng.uniform(95.0, 130.0), rng.uniform(150.0, 200.0)
        hepatic = portal - rng.uniform(0.0, 25.0)
        aorta, kidney = rng.uniform(140.0, 190.0), rng.uniform(150.0, 200.0)
    # Noise grows as 1/sqrt(slice thickness) (fewer photons a voxel), with the kernel, and with
    # the dose the patient's size and the protocol give (log-normal).
    sigma = noise_hu * kernel.noise_factor * np.sqrt(2.5 / slice_mm) * rng.lognormal(0.0, 0.2)
    return ScanLook(
        phase="arterial" if arterial else "portal",
        liver_hu=float(liver),
        liver_mottle_hu=float(rng.uniform(1.0, 6.0)),
        portal_hu=float(portal),
        hepatic_hu=float(hepatic),
        aorta_hu=float(aorta),
        kidney_hu=float(kidney),
        noise_hu=float(np.clip(sigma, 6.0, 60.0)),
        zone_hu=float(rng.uniform(20.0, 45.0)),
        zone_rim_hu=float(rng.uniform(5.0, 30.0)),
    )


def _tumour_look(rng: np.random.Generator, diameter_mm: float) -> TumourLook:
    rim = {"arterial": 0.0, "portal": 0.0}
    if rng.random() < _P_HYPER:
        # HCC: arterial hyper-enhancement; in the portal phase washout (most) or persistence,
        # often with an enhancing capsule. Never iso-attenuating: a tumour no one could see in
        # this scan would teach a network to draw at random.
        kind: Literal["hyper", "hypo"] = "hyper"
        washout = bool(rng.random() < 0.7)
        portal = rng.uniform(-30.0, -8.0) if washout else rng.uniform(8.0, 20.0)
        contrast = {"arterial": rng.uniform(15.0, 60.0), "portal": portal}
        if rng.random() < 0.5:
            rim["portal"] = rng.uniform(10.0, 35.0)
    else:
        # Hypovascular HCC or metastasis: darker than the liver in both phases, often with a
        # peripheral ring that enhances most in the arterial phase.
        kind = "hypo"
        contrast = {"arterial": rng.uniform(-45.0, -10.0), "portal": rng.uniform(-65.0, -15.0)}
        if rng.random() < 0.5:
            rim["arterial"] = rng.uniform(15.0, 45.0)
            rim["portal"] = rim["arterial"] * rng.uniform(0.3, 0.7)
    rim_mm = float(rng.uniform(1.0, 2.5))
    # Necrosis is common in large tumours and rare in small ones.
    p_necrosis = 0.05 + 0.55 / (1.0 + np.exp(-(diameter_mm - 28.0) / 5.0))
    necrotic = bool(rng.random() < p_necrosis)
    necrosis = float(rng.uniform(0.35, 0.7)) if necrotic else 0.0
    necrosis_hu = float(rng.uniform(5.0, 30.0))
    edge_mm = float(rng.uniform(0.0, 2.5)) if rng.random() < 0.5 else 0.0
    return TumourLook(
        kind,
        {k: float(v) for k, v in contrast.items()},
        {k: float(v) for k, v in rim.items()},
        rim_mm,
        necrosis,
        necrosis_hu,
        edge_mm,
    )


def draw_look(
    rng: np.random.Generator,
    anatomy: Anatomy,
    sites: list[TumourSite],
    zones: list[AblationZone],
    noise_hu: float,
) -> PatientLook:
    """The patient's protocol (slice thickness, kernel, phase of each scan), the look of each
    tumour and the cysts; ``noise_hu`` is the centre's noise at 2.5 mm with a smooth kernel."""
    slice_mm = float(rng.choice(SLICE_THICKNESSES_MM, p=_SLICE_WEIGHTS))
    kernel = KERNELS["sharp" if rng.random() < _P_SHARP else "smooth"]
    pre = _scan_look(rng, _P_ARTERIAL_PRE, noise_hu, slice_mm, kernel)
    post = _scan_look(rng, _P_ARTERIAL_POST, noise_hu, slice_mm, kernel)
    looks = [_tumour_look(rng, site.diameter_mm) for site in sites]
    cysts: list[tuple[Ellipsoid, float]] = []
    count = int(rng.choice(len(_CYST_COUNT_WEIGHTS), p=_CYST_COUNT_WEIGHTS))
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(np.log(4.0), np.log(30.0))))
        cyst = place_cyst(rng, anatomy, diameter, sites, zones, [c for c, _ in cysts])
        if cyst is not None:
            cysts.append((cyst, float(rng.uniform(0.0, 20.0))))
    return PatientLook(slice_mm, kernel, pre, post, looks, cysts)
