"""Issue 6's acceptance check on a virtual cohort with images, as a benchmark.

    .venv/bin/python benchmarks/study_virtual.py FEATURES.parquet COHORT_DIR \\
        [--config examples/studies/virtual_ltp_24m.yaml]

FEATURES.parquet is `hepablate extract COHORT_DIR` of a simulated cohort. Runs the study's
validation (no report) and prints, per true driver of local progression in the simulator
(docs/simulator.md), the share of outer training sets whose selection contains it, the
selection frequency of every noise column, and the best model's cross-validated AUC beside the
oracle's on the same rows (hepablate.simulate.oracle; only evaluation code reads truth.csv).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from hepablate.simulate.oracle import LTP_DRIVERS, NOISE_COLUMNS, driver_shares, oracle_scores
from hepablate.study import load_study_config, run_study, study_data
from hepablate.study.results import selection_frequency, summarise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("features", type=Path)
    parser.add_argument("cohort", type=Path)
    parser.add_argument(
        "--config", type=Path, default=Path("examples/studies/virtual_ltp_24m.yaml")
    )
    args = parser.parse_args()
    config = load_study_config(args.config)
    data = study_data(pd.read_parquet(args.features), config)
    start = time.perf_counter()
    result = run_study(data, config, refit=False)
    seconds = time.perf_counter() - start
    summary = summarise(result)
    folds = len(result.selected)
    print(
        f"`{args.config}` on {len(data.y)} tumours ({data.endpoint['events']} events), "
        f"{folds} outer training sets, {seconds:.0f} s\n"
    )
    shares = driver_shares(result.selected)
    print("| driver | share of outer training sets selecting it |")
    print("|---|---|")
    for driver, columns in LTP_DRIVERS.items():
        print(f"| {driver} ({', '.join(columns)}) | {shares[driver]:.0%} |")
    texture = "image texture (any non-morphology rad.tumour.* / rad.ring.*)"
    print(f"| {texture} | {shares['texture']:.0%} |")
    frequency = selection_frequency(result).set_index("feature")["frequency"]
    noise = ", ".join(f"{c.removeprefix('clin.')} {shares[c]:.0%}" for c in NOISE_COLUMNS)
    print(f"\nNoise columns (no effect in the simulator), share of sets: {noise}.")
    top = frequency[frequency > 0].head(10)
    print("Most often selected: " + ", ".join(f"{k} {v:.0%}" for k, v in top.items()) + ".")
    oracle = oracle_scores(args.cohort, sorted(set(data.groups)))["ltp_24m_auc"]
    print("\n| model | cross-validated AUC (95% CI) | oracle AUC, same rows | gap |")
    print("|---|---|---|---|")
    for name in summary["comparison"]["ranking"]:
        auc = summary["models"][name]["metrics"]["auc"]
        gap = "-" if oracle is None else f"{oracle - auc['value']:.3f}"
        print(
            f"| {name} | {auc['value']:.3f} ({auc['ci'][0]:.3f} to {auc['ci'][1]:.3f}) | "
            f"{oracle:.3f} | {gap} |"
        )


if __name__ == "__main__":
    main()
