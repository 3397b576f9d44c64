"""Time per training epoch of the multimodal network on two CPU cores (issue 7).

    .venv/bin/python benchmarks/multimodal_epoch.py FEATURES.parquet [--epochs 5]

FEATURES.parquet is `hepablate extract` of a cohort with crops (the default cache). Trains one
ensemble member of the default network on every labelled tumour for ``--epochs`` epochs (no
early stopping), with and without augmentation, and prints seconds per epoch, the crop shape
and the process's peak memory. The baseline is loading the crops once (the time of a pass of
reading without training).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pandas as pd

from hepablate.features.crops import PHASES, CropStore
from hepablate.models.multimodal import MultimodalClassifier

ENDPOINT = "outcome.ltp_24m"
COLUMNS = ["geom.minimal_ablative_margin_mm", "clin.diameter_mm", "clin.perivascular"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("features", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    table = pd.read_parquet(args.features)
    table = table[table[ENDPOINT].notna()]
    inputs, y = table[COLUMNS].astype(float), table[ENDPOINT].astype(int)
    crops = table.attrs["hepablate"]["crops"]
    start = time.perf_counter()
    images = CropStore(crops).stack([(str(p), int(t)) for p, t in inputs.index], PHASES)
    loading = time.perf_counter() - start
    print(f"{len(inputs)} tumours, crops {images.shape[1:]} (channels, z, y, x)")
    print(f"| what | seconds per epoch |\n|---|---|\n| reading the crops (once) | {loading:.2f} |")
    for augment in (False, True):
        model = MultimodalClassifier(
            crops=crops, n_members=1, epochs=args.epochs, patience=args.epochs, augment=augment
        )
        start = time.perf_counter()
        model.fit(inputs, y)
        per_epoch = (time.perf_counter() - start - loading) / args.epochs
        label = "training, MONAI augmentation" if augment else "training, no augmentation"
        print(f"| {label} (80% of the patients; 2 threads) | {per_epoch:.2f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of the process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
