"""Time of a tabular study with the default config, and what the networks add (issue 16).

    .venv/bin/python benchmarks/study_time.py FEATURES.parquet [--before]

FEATURES.parquet is `hepablate extract` of a 200-patient virtual cohort, e.g.

    hepablate simulate --n 200 --seed 1 --out c200
    hepablate extract c200 --config src/hepablate/configs/light_extraction.yaml --out c200.parquet

For each endpoint (ltp_24m: binary; ltp: time to local progression) it runs `hepablate train
FEATURES --config STUDY --out RUN --no-report --no-bundle` as a fresh process, for two studies:

- the default config (only the endpoint given: the default selection, the default baselines,
  5 folds x 3 repeats, 3 inner folds, 1000 bootstrap resamples, one label permutation);
- the same with the tabular networks added (`mlp`; `deep_surv` and `deep_discrete`).

and prints the wall-clock and CPU seconds of each run (CPU: the process's, all threads, from
``resource.getrusage(RUSAGE_CHILDREN)``), their ratio to the baseline-only run of the same
endpoint, and every model's seconds from `metrics.json` (``models.<name>.time``) summed over the
15 outer splits and per split. The table's columns are tabular (clin, geom, rad): without a
trained image encoder there are no deep.* columns, and no model of these studies reads crops.

``--before`` adds, per network, one outer split's fit with the settings of before issue 16
(a grid ``embedding: [0, 8]`` searched over 3 inner folds, two torch threads) beside the
current default (one point, no inner folds, one thread), in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

NETWORKS = {"ltp_24m": ["mlp"], "ltp": ["deep_surv", "deep_discrete"]}


def _hepablate() -> list[str]:
    return [sys.executable, "-c", "from hepablate.cli import app; app()"]


def _study(endpoint: str, networks: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "name": f"default study, {endpoint}",
        "endpoint": endpoint,
    }
    if networks:
        from hepablate.study.config import StudyConfig

        survival = endpoint == "ltp"
        defaults = StudyConfig(endpoint=endpoint).models_for(survival)
        settings["models"] = [m.model_dump(exclude_defaults=True) for m in defaults] + [
            {"name": kind, "kind": kind} for kind in NETWORKS[endpoint]
        ]
    return settings


def _train(features: Path, settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    """One `hepablate train` process: its wall and CPU seconds, and its metrics.json."""
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    out = folder / "run"
    command = [*_hepablate(), "train", str(features), "--config", str(config), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [*command, "--no-report", "--no-bundle"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"wall": wall, "cpu": cpu, "metrics": metrics}


def _before_and_after(features: Path, endpoint: str) -> list[tuple[str, float, float]]:
    """One outer split per network: the fit of before issue 16 and today's, CPU seconds."""
    import pandas as pd

    from hepablate.study import StudyConfig, study_data
    from hepablate.study.config import ModelSpec
    from hepablate.study.pipeline import (
        fit_selection,
        inner_splits,
        make_selection,
        make_tuned_model,
    )
    from hepablate.study.run import outer_splits

    config = StudyConfig.model_validate(_study(endpoint, networks=False))
    data = study_data(pd.read_parquet(features), config)
    split = outer_splits(data, config.validation)[0]
    selection = make_selection(
        data.X, config.selection, icc=data.icc, force=(), imputation="median", log=data.log
    )
    rows_x, y, groups = data.X.iloc[split.train], data.y[split.train], data.groups[split.train]
    selected = fit_selection(selection, rows_x, y, groups).transform(rows_x)
    cv = inner_splits(data.events[split.train], groups, 3, config.validation.seed)
    rows = []
    for kind in NETWORKS[endpoint]:
        seconds = []
        for grid in ({"embedding": [0, 8], "n_threads": [2]}, None):
            spec = ModelSpec(name=kind, kind=kind, grid=grid)
            search = make_tuned_model(spec, cv=cv, seed=1, survival=data.survival)
            start = time.process_time()
            search.fit(selected, y)
            seconds.append(time.process_time() - start)
        rows.append((kind, seconds[0], seconds[1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("features", type=Path)
    parser.add_argument("--before", action="store_true", help="also time the old settings")
    args = parser.parse_args()
    features = args.features.resolve()
    print(f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at the start")
    for endpoint in NETWORKS:
        runs = {}
        for networks in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                runs[networks] = _train(features, _study(endpoint, networks), Path(folder))
        base = runs[False]
        cohort = base["metrics"]["cohort"]
        print(
            f"\n### {endpoint}: {cohort['rows']} rows, {cohort['patients']} patients, "
            f"{cohort['events']} events, {cohort['candidate_columns']} candidate columns\n"
        )
        print("| study | wall (s) | CPU (s) | wall / baseline-only | CPU / baseline-only |")
        print("|---|---|---|---|---|")
        for networks, label in ((False, "default config"), (True, "default + networks")):
            run = runs[networks]
            print(
                f"| {label} | {run['wall']:.1f} | {run['cpu']:.1f} | "
                f"{run['wall'] / base['wall']:.2f} | {run['cpu'] / base['cpu']:.2f} |"
            )
        print(
            "\n| model (default + networks run) | fit, all splits: wall (s) | CPU (s) "
            "| per split: wall (s) | refit (s) |\n|---|---|---|---|---|"
        )
        metrics = runs[True]["metrics"]
        for name, model in metrics["models"].items():
            t = model["time"]
            print(
                f"| {name} ({model['kind']}) | {t['fit_seconds']:.1f} | {t['fit_cpu_seconds']:.1f}"
                f" | {t['mean_split_seconds']:.2f} | {t['refit_seconds']:.2f} |"
            )
        selection = metrics["selection"]
        print(f"| preparation and selection | {selection['seconds']:.1f} | | | |")
        if args.before:
            print("\n| network, one outer split | before: CPU (s) | now: CPU (s) | ratio |")
            print("|---|---|---|---|")
            for kind, old, new in _before_and_after(features, endpoint):
                print(f"| {kind} | {old:.1f} | {new:.1f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
