"""How often the shipped selection finds each simulated driver of local progression, over
several virtual cohorts, beside the evidence the cohort itself carries for each driver.

    .venv/bin/python benchmarks/selection_power.py --n 500 --seeds 11 21 31 41 51 --work DIR

For every seed: ``simulate_cohort`` (small images) and the light extraction (no crops) into
``DIR/n{N}_seed{S}/`` (reused when there), then the selection of the shipped study config
``virtual_ltp_24m`` alone (no models) refitted in each of its outer training sets (3 repeats of
5 folds unless ``--repeats``), and the share of those sets that keep a column measuring each
driver (``hepablate.simulate.oracle.driver_columns``, as the acceptance test counts it).

Beside each share, the cohort's own evidence for that driver, from the simulator's truth (only
this evaluation reads ``truth.csv``): the coefficient, standard error and Wald p-value of the
driver's true value in a logistic model of the study's 2-year label on *all* true drivers (the
margin, size over 30 mm, perivascular RFA, the latent aggressiveness, log10 AFP), and the
p-value of the true value alone (Mann-Whitney, as the selection's univariate step tests). A
driver whose effect the truth itself cannot separate from zero on a cohort is one no selection
can be expected to find in most folds of it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from hepablate import configs
from hepablate.cohort import load_cohort
from hepablate.features.extract import extract, load_extraction_config
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import (
    LTP_DRIVERS,
    NOISE_COLUMNS,
    driver_columns,
    driver_shares,
    read_truth,
)
from hepablate.study import load_study_config, study_data
from hepablate.study.pipeline import fit_selection
from hepablate.study.run import _prepare, outer_splits

ENDPOINT = "outcome.ltp_24m"


def cohort_table(n: int, seed: int, work: Path) -> tuple[Path, pd.DataFrame]:
    """The simulated cohort and its light FeatureTable, made once per (n, seed)."""
    folder = work / f"n{n}_seed{seed}"
    cohort_dir, features = folder / "cohort", folder / "features.parquet"
    if not (cohort_dir / "truth.csv").is_file():
        start = time.perf_counter()
        simulate_cohort(SimulationConfig(n=n, seed=seed), cohort_dir, workers=2)
        print(f"seed {seed}: simulated in {time.perf_counter() - start:.0f} s", flush=True)
    if not features.is_file():
        start = time.perf_counter()
        extraction = load_extraction_config(configs.path("light_extraction"))
        extraction = extraction.model_copy(
            update={"crops": extraction.crops.model_copy(update={"enabled": False})}
        )
        table = extract(load_cohort(cohort_dir), extraction, workers=2)
        table.to_parquet(features)
        print(f"seed {seed}: extracted in {time.perf_counter() - start:.0f} s", flush=True)
    return cohort_dir, pd.read_parquet(features)


def selection_shares(table: pd.DataFrame, cohort_dir: Path, repeats: int) -> dict[str, float]:
    config = load_study_config(configs.path("virtual_ltp_24m"))
    validation = config.validation.model_copy(update={"repeats": repeats})
    config = config.model_copy(update={"validation": validation})
    data = study_data(table, config)
    selected = []
    for split in outer_splits(data, config.validation):
        pipeline = _prepare(data, config, clinical=False)
        train = data.X.iloc[split.train]
        fit_selection(pipeline, train, data.y[split.train], data.groups[split.train])
        selected.append([str(c) for c in pipeline.transform(train.iloc[:1]).columns])
    shares = driver_shares(selected, driver_columns(table, read_truth(cohort_dir)))
    shares["folds"] = float(len(selected))
    shares["kept"] = float(np.mean([len(s) for s in selected]))
    return shares


def truth_evidence(table: pd.DataFrame, cohort_dir: Path) -> dict[str, tuple[float, ...]]:
    """Per driver: (coefficient, SE, p) in the all-drivers logistic model on true values, and
    the p-value of the true value alone."""
    truth = read_truth(cohort_dir).reindex(table.index)
    tumours = pd.read_csv(cohort_dir / "tumours.csv", dtype={"patient_id": str})
    tumours = tumours.set_index(["patient_id", "tumour_id"]).rename_axis(truth.index.names)
    tumours = tumours.reindex(table.index)
    label = table[ENDPOINT]
    known = label.notna().to_numpy()
    y = label[known].astype(float).to_numpy()
    true = pd.DataFrame(
        {
            "margin": truth["true_mam_mm"].clip(-4, 12),
            "size": (truth["true_diameter_mm"] > 30).astype(float),
            "perivascular": (
                tumours["perivascular"].astype(bool) & (tumours["modality"] == "RFA")
            ).astype(float),
            "texture": truth["latent"],
            "afp": np.log10(table["clin.afp_ng_ml"].astype(float)),
        }
    )[known]
    fit = sm.Logit(y, sm.add_constant(true)).fit(disp=0)
    evidence = {}
    for driver in LTP_DRIVERS:
        alone = stats.mannwhitneyu(true[driver][y == 1], true[driver][y == 0]).pvalue
        evidence[driver] = (
            float(fit.params[driver]),
            float(fit.bse[driver]),
            float(fit.pvalues[driver]),
            float(alone),
        )
    return evidence


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 21, 31, 41, 51])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        cohort_dir, table = cohort_table(args.n, seed, args.work)
        shares = selection_shares(table, cohort_dir, args.repeats)
        evidence = truth_evidence(table, cohort_dir)
        events = int(table[ENDPOINT].sum())
        row = {"seed": seed, "events": events, "folds": int(shares["folds"])}
        for driver in LTP_DRIVERS:
            coefficient, se, p, alone = evidence[driver]
            evidence_text = f"{coefficient:+.2f}±{se:.2f}, p {p:.2g}; {alone:.2g}"
            row[driver] = f"{shares[driver]:.0%} ({evidence_text})"
        noise = np.mean([shares[c] for c in NOISE_COLUMNS])
        row["noise (mean, max)"] = f"{noise:.0%}, {max(shares[c] for c in NOISE_COLUMNS):.0%}"
        row["kept"] = f"{shares['kept']:.1f}"
        rows.append(row)
        print(row, flush=True)
    print(
        f"\n{args.n} patients per cohort. Per driver: share of outer training sets whose selection"
        " keeps it (true coefficient ± SE and Wald p in the all-drivers logistic model on true"
        " values; p of the true value alone)\n"
    )
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
