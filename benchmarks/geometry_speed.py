"""CPU time of the geometry per tumour on a virtual cohort: fitted surfaces against voxel centres.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/geometry_speed.py [--n N]

Simulates a cohort (``small`` images, 1.5 x 1.5 x 2.5 mm, seed 3), brings each zone onto the
pre-ablation grid by the simulator's true motion (nearest neighbour, as
``tests/simulate/test_generate.py`` does; no registration, which is not measured here), and
times per tumour, with ``time.process_time`` in one run:

- *now*: ``tumour_geometry`` with the zone (margins between fitted surfaces);
- *voxel baseline*: ``tumour_geometry`` without the zone (sizes and distances) plus the margins
  of the method before issue 16 (the distance map of the zone, the space outside the liver
  counted as ablated, at the tumour's boundary voxel centres).

Process time counts every thread of the process: run with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) for the cost on one core. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepablate.features.geometry import large_vessels, signed_distance_mm, tumour_geometry
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth

PAD_MM = 15.0
Spacing = tuple[float, float, float]


def voxel_margins(
    tumour: np.ndarray, zone: np.ndarray, liver: np.ndarray, spacing: Spacing
) -> np.ndarray:
    """The margins before issue 16, in the tumour's bounding box plus 15 mm."""
    where = np.argwhere(tumour)
    pad = np.ceil(PAD_MM / np.asarray(spacing)).astype(int)
    low, high = np.maximum(where.min(axis=0) - pad, 0), where.max(axis=0) + pad + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    tumour_box = tumour[box]
    surface = tumour_box & ~ndimage.binary_erosion(tumour_box)
    distance = signed_distance_mm(zone[box] | ~liver[box], spacing)
    return np.clip(distance[surface], -PAD_MM, PAD_MM)


def _zone_on_pre(folder: Path, matrix: str, translation: str) -> np.ndarray:
    pre = sitk.ReadImage(str(folder / "pre_tumours.nii.gz"))
    post = sitk.ReadImage(str(folder / "post_ablation.nii.gz"))
    motion = sitk.AffineTransform(3)
    motion.SetMatrix([float(v) for v in matrix.split()])
    motion.SetTranslation([float(v) for v in translation.split()])
    return sitk.GetArrayFromImage(sitk.Resample(post, pre, motion, sitk.sitkNearestNeighbor, 0))


def run(n: int, seed: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU seconds per tumour and MAM error (mm, against the simulator's truth), per method."""
    seconds: dict[str, list[float]] = {"now": [], "voxel baseline": []}
    errors: dict[str, list[float]] = {"now": [], "voxel baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort"
        simulate_cohort(SimulationConfig(n=n, seed=seed, size="small"), out, workers=1)
        truth = read_truth(out)
        for patient, group in truth.groupby(level=0):
            folder = out / "images" / str(patient)
            image = sitk.ReadImage(str(folder / "pre_tumours.nii.gz"))
            labels = sitk.GetArrayFromImage(image)
            spacing: Spacing = tuple(float(s) for s in image.GetSpacing()[::-1])  # type: ignore[assignment]
            liver = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "liver.nii.gz"))) > 0
            vessels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "vessels.nii.gz"))) > 0
            large = large_vessels(vessels, spacing)
            first = group.iloc[0]
            zones = _zone_on_pre(folder, first["motion_matrix"], first["motion_translation_mm"])
            for tumour_id, true_mam in zip(
                group.index.get_level_values(1), group["true_mam_mm"], strict=True
            ):
                tumour, zone = labels == tumour_id, zones == tumour_id
                others = (labels > 0) & ~tumour
                kwargs = {"liver": liver, "large_vessel_mask": large, "other_tumours": others}
                start = time.process_time()
                now = tumour_geometry(tumour, zone, spacing, **kwargs)
                seconds["now"].append(time.process_time() - start)
                start = time.process_time()
                tumour_geometry(tumour, None, spacing, **kwargs)
                margin = float(voxel_margins(tumour, zone, liver, spacing).min())
                seconds["voxel baseline"].append(time.process_time() - start)
                assert now.minimal_ablative_margin_mm is not None
                errors["now"].append(now.minimal_ablative_margin_mm - true_mam)
                errors["voxel baseline"].append(margin - true_mam)
    return seconds, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="patients")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    seconds, errors = run(args.n, args.seed)
    now, voxel = np.array(seconds["now"]), np.array(seconds["voxel baseline"])
    print(f"{len(now)} tumours of {args.n} virtual patients (seed {args.seed})\n")
    print("| method | CPU s per tumour (median) | max | total | |MAM error| median | max |")
    print("|---|---|---|---|---|---|")
    for name, cpu, error in (
        ("fitted surfaces (now)", now, np.abs(errors["now"])),
        ("voxel centres (baseline)", voxel, np.abs(errors["voxel baseline"])),
    ):
        print(
            f"| {name} | {np.median(cpu):.3f} | {cpu.max():.3f} | {cpu.sum():.2f} "
            f"| {np.median(error):.2f} | {error.max():.2f} |"
        )
    print(
        f"\nratio now / baseline: {np.median(now) / np.median(voxel):.1f}x (medians), "
        f"{now.sum() / voxel.sum():.1f}x (totals)"
    )


if __name__ == "__main__":
    main()
