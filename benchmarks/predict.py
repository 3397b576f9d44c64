"""Latency of `hepablate predict` for one new patient, after the bundle is loaded (issue 7).

    .venv/bin/python benchmarks/predict.py BUNDLE PATIENT_DIR [--runs 20]

BUNDLE is RUN_DIR/bundle of `hepablate train`; PATIENT_DIR a one-patient cohort (e.g.
`hepablate simulate --n 1 --seed 10001 --out new_patient`). Loads and verifies the bundle once
(timed), validates the patient once, then times ``--runs`` predictions: the whole of it
(extraction with the bundle's config, then the prediction with contributions and what-if
curve), and the prediction alone on the extracted FeatureTable. Prints p50 and p90 of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hepablate.bundle import load_bundle
from hepablate.bundle.predict import predict_cohort, predict_table
from hepablate.cohort import load_cohort
from hepablate.features.extract import ExtractionConfig, extract


def _row(label: str, seconds: list[float]) -> str:
    p50, p90 = np.percentile(seconds, [50, 90])
    return f"| {label} | {len(seconds)} | {p50:.2f} | {p90:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("patient", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    bundle = load_bundle(args.bundle)
    loading = time.perf_counter() - start
    cohort = load_cohort(args.patient)
    whole, alone = [], []
    work = tempfile.TemporaryDirectory()
    # With a cache folder, as `hepablate predict` extracts (an image model reads its crops there).
    table = extract(
        cohort, ExtractionConfig.model_validate(bundle.extraction or {}), cache=Path(work.name)
    )
    for _ in range(args.runs):
        start = time.perf_counter()
        predict_cohort(bundle, cohort)
        whole.append(time.perf_counter() - start)
        start = time.perf_counter()
        predict_table(bundle, table)
        alone.append(time.perf_counter() - start)
    print(f"bundle {args.bundle} ({bundle.manifest.model}): loaded and verified in {loading:.2f} s")
    print("\n| step | runs | p50 (s) | p90 (s) |\n|---|---|---|---|")
    print(_row("extraction + prediction (what `hepablate predict` does after loading)", whole))
    print(_row("prediction alone (contributions and what-if included)", alone))
    work.cleanup()


if __name__ == "__main__":
    main()
