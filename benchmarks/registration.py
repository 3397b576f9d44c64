"""Registration settings: seconds per case against the error from the simulator's true motion.

    .venv/bin/python benchmarks/registration.py [--n 10] [--seed 3] [--size small]

Simulates ``--n`` virtual patients, then registers each one's post-ablation CT onto its
pre-ablation CT with every setting below, in the same run, one ITK thread as in extraction. The
target registration error (TRE) is the distance between where the found transform and the true
motion (truth.csv) put points across the pre-ablation liver (every 40th liver voxel). Prints
Markdown for docs/benchmarks.md; the speed-up is against ``previous default`` in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hepablate.imaging.io import read_volume
from hepablate.imaging.registration import RegistrationConfig, register
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth

SETTINGS = {
    "previous default": RegistrationConfig(gradient_filter=True, crop_margin_mm=None),
    "no gradient filter": RegistrationConfig(gradient_filter=False, crop_margin_mm=None),
    "cropped to the livers + 20 mm": RegistrationConfig(gradient_filter=True, crop_margin_mm=20),
    "both (default now)": RegistrationConfig(),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort"
        simulate_cohort(SimulationConfig(n=args.n, seed=args.seed, size=args.size), out)
        truth = read_truth(out).groupby(level=0).first()
        for patient, row in truth.iterrows():
            folder = out / "images" / str(patient)
            pre, post, liver, post_liver = (
                read_volume(folder / f"{name}.nii.gz")
                for name in ("pre_ct", "post_ct", "liver", "post_liver")
            )
            matrix = np.array([float(v) for v in row["motion_matrix"].split()]).reshape(3, 3)
            shift = np.array([float(v) for v in row["motion_translation_mm"].split()])
            image = liver.to_sitk()
            points = np.array(
                [
                    image.TransformContinuousIndexToPhysicalPoint([float(i) for i in p[::-1]])
                    for p in np.argwhere(liver.array > 0)[::40]
                ]
            )
            expected = points @ matrix.T + shift
            for name, config in SETTINGS.items():
                start = time.perf_counter()
                result = register(
                    pre, post, fixed_liver=liver, moving_liver=post_liver, config=config
                )
                seconds = time.perf_counter() - start
                found = np.array([result.transform.TransformPoint(p.tolist()) for p in points])
                error = np.linalg.norm(found - expected, axis=1)
                rows.append(
                    {
                        "setting": name,
                        "seconds": seconds,
                        "tre_mean": error.mean(),
                        "tre_max": error.max(),
                        "dice": result.liver_dice,
                        "ok": result.ok,
                    }
                )
    table = pd.DataFrame(rows)
    base = table.loc[table["setting"] == "previous default", "seconds"].mean()
    print(f"{args.n} virtual patients (seed {args.seed}, {args.size} images), one ITK thread\n")
    print(
        "| setting | s per case (mean) | speed-up | TRE mean (mm) | TRE max (mm) "
        "| liver Dice (min) | failed |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in SETTINGS:
        part = table[table["setting"] == name]
        print(
            f"| {name} | {part['seconds'].mean():.2f} | {base / part['seconds'].mean():.2f}x "
            f"| {part['tre_mean'].mean():.2f} | {part['tre_max'].max():.2f} "
            f"| {part['dice'].min():.3f} | {int((~part['ok']).sum())} |"
        )


if __name__ == "__main__":
    main()
