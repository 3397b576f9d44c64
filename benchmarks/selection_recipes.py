"""Selection recipes on real tables and the virtual cohort, on the same folds (issue 16).

    nice -n 19 .venv/bin/python benchmarks/selection_recipes.py [--work DIR] [--data DIR]
        [--virtual FEATURES.parquet] [--only uci,tace_ttp,tace_os,pbc,virtual]
        [--recipes none,nzv,...] [--repeats N] [--nonlinear]
    .venv/bin/python benchmarks/selection_recipes.py --report WORK [WORK ...]

For each data set and each selection recipe (``RECIPES``) this writes a study config (the data
set's benchmark config with its ``selection`` replaced by the recipe, the label permutation off)
and runs ``hepablate train --no-report --no-bundle`` on it in a subprocess, so the figures are
what a user gets. Every config of a data set has the same validation (folds, repeats, seed):
the outer folds, and so the comparison, are paired. Each run validates the linear model
(logistic or Cox, their default grids) on the recipe's features; the recipe ``none`` is the
plain linear model on every candidate column, the comparison the issue asks for.
``--nonlinear`` adds the default non-linear baselines (gradient boosting and random forest, or
their survival forms).

The real tables are built from the shared reference data (``benchmarks/studies/cohorts.py``:
UCI HCC Survival, HCC-TACE-Seg, Mayo PBC); the virtual cohort is a FeatureTable made once
(``hepablate simulate`` + ``hepablate extract`` with the light config) and given by
``--virtual``. The Markdown section for docs/benchmarks.md goes to stdout, progress to stderr;
``results.json`` in the work folder keeps every figure and wall time. ``--report`` runs
nothing and rebuilds the Markdown from the finished runs of one or more work folders.

The default is chosen by ``choose_default``: among the recipes that meet issue 16's done-when on
every real table (at least the plain linear model's metric, the recipe ``none``, and within the
best recipe's 95% CI), the one with the highest mean of the linear model's headline metric over
all the data sets; recipes within ``TIE`` of that mean tie, and a tie goes to the recipe with the
fewest steps. (The first rule, fixed before the first runs, had no eligibility step; it chose
near-zero variance + ICC, which fell 0.002 below the plain Cox on HCC-TACE-Seg OS. When no
recipe is eligible, the first rule decides.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# (benchmarks/ is on sys.path when this runs as a script; the line above also covers imports)
from studies.cohorts import (
    SharedDataMissingError,
    build_pbc_cohort,
    build_tace_cohort,
    build_uci_cohort,
    shared_data_dir,
)

REPO = Path(__file__).resolve().parents[1]
HEPABLATE = str(Path(sys.executable).parent / "hepablate")
STUDIES_DIR = Path(__file__).resolve().parent / "studies"
TIE = 0.005

Step = dict[str, Any]

# Each recipe's selectors, in order (the ``selection`` of a study config).
NZV: Step = {"method": "near_zero_variance"}
REPRODUCIBLE: Step = {"method": "reproducible", "params": {"min_icc": 0.75}}
REDUNDANCY: Step = {"method": "redundancy", "params": {"max_correlation": 0.8}}
RECIPES: dict[str, list[Step]] = {
    "none": [],
    "icc": [REPRODUCIBLE],
    "nzv": [NZV],
    "nzv_icc": [NZV, REPRODUCIBLE],
    "nzv_redundancy": [NZV, REDUNDANCY],
    "nzv_icc_redundancy": [NZV, REPRODUCIBLE, REDUNDANCY],
    "nzv_redundancy_fdr": [NZV, REDUNDANCY, {"method": "univariate", "params": {"fdr": 0.1}}],
    "nzv_redundancy_l1": [NZV, REDUNDANCY, {"method": "embedded", "params": {"penalty": "l1"}}],
    "nzv_redundancy_enet": [
        NZV,
        REDUNDANCY,
        {"method": "embedded", "params": {"penalty": "elasticnet", "l1_ratio": 0.5}},
    ],
    "nzv_stability": [NZV, {"method": "stability", "params": {"n_resamples": 50}}],
    "previous_default": [
        NZV,
        REPRODUCIBLE,
        REDUNDANCY,
        {"method": "stability", "params": {"n_resamples": 50}},
    ],
}
RECIPE_TEXT = {
    "none": "none (the plain linear model on every candidate)",
    "icc": "ICC >= 0.75",
    "nzv": "near-zero variance",
    "nzv_icc": "near-zero variance + ICC >= 0.75",
    "nzv_redundancy": "near-zero variance + redundancy (rho > 0.8)",
    "nzv_icc_redundancy": "near-zero variance + ICC + redundancy",
    "nzv_redundancy_fdr": "near-zero variance + redundancy + univariate FDR 10%",
    "nzv_redundancy_l1": "near-zero variance + redundancy + embedded L1",
    "nzv_redundancy_enet": "near-zero variance + redundancy + embedded elastic net (0.5)",
    "nzv_stability": "near-zero variance + stability selection (50)",
    "previous_default": "previous default: nzv + ICC + redundancy + stability (50)",
}


@dataclass(frozen=True)
class DataSet:
    key: str
    title: str
    config: Path  # the base study config
    cohort: str | None  # folder under <work>/cohorts (real tables); None: the virtual table


DATASETS = (
    DataSet(
        "uci",
        "UCI HCC Survival, death within 1 year",
        STUDIES_DIR / "hcc_survival_uci.yaml",
        "hcc_survival_uci",
    ),
    DataSet(
        "tace_ttp",
        "HCC-TACE-Seg, time to progression",
        STUDIES_DIR / "hcc_tace_ttp.yaml",
        "hcc_tace_seg",
    ),
    DataSet(
        "tace_os",
        "HCC-TACE-Seg, overall survival",
        STUDIES_DIR / "hcc_tace_os.yaml",
        "hcc_tace_seg",
    ),
    DataSet("pbc", "Mayo PBC, overall survival", STUDIES_DIR / "pbc_death.yaml", "pbc_mayo"),
    DataSet(
        "virtual",
        "Virtual cohort (200 patients), LTP at 2 years",
        REPO / "src" / "hepablate" / "configs" / "virtual_ltp_24m.yaml",
        None,
    ),
)
BUILDERS: dict[str, Callable[[Path, Path], Path]] = {
    "hcc_survival_uci": build_uci_cohort,
    "hcc_tace_seg": build_tace_cohort,
    "pbc_mayo": build_pbc_cohort,
}
SURVIVAL_NONLINEAR = [
    {"name": "random_survival_forest", "kind": "random_survival_forest"},
    {"name": "gradient_boosting", "kind": "gradient_boosting_survival"},
]
BINARY_NONLINEAR = [
    {"name": "gradient_boosting", "kind": "gradient_boosting"},
    {"name": "random_forest", "kind": "random_forest"},
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recipe_config(
    base: Mapping[str, Any],
    recipe: str,
    *,
    survival: bool,
    repeats: int | None = None,
    nonlinear: bool = False,
) -> dict[str, Any]:
    """The study config of one recipe on one data set: ``base`` with the recipe's selection,
    the linear model (``linear``), optionally the non-linear baselines, no clinical-only model,
    no label permutation, one extraction worker. Everything else (features, validation, seed)
    is the base's, so every recipe of a data set has the same outer folds."""
    config = json.loads(json.dumps(dict(base)))  # a deep copy of plain YAML data
    config["selection"] = json.loads(json.dumps(RECIPES[recipe]))
    linear = "cox" if survival else "logistic"
    models: list[dict[str, Any]] = [{"name": "linear", "kind": linear}]
    if nonlinear:
        models += SURVIVAL_NONLINEAR if survival else BINARY_NONLINEAR
    config["models"] = models
    validation = config.setdefault("validation", {})
    validation["permutations"] = 0
    if repeats is not None:
        validation["repeats"] = repeats
    config["workers"] = 1
    config["name"] = f"{config.get('name', 'study')}: selection {recipe}"
    return config


def headline(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model of a ``metrics.json``: its headline metric (value, CI) and, for the selected
    models, how many features were selected per outer training set."""
    metric = metrics["comparison"]["metric"]
    per_set = metrics["selection"]["selected_per_set"]
    out: dict[str, dict[str, Any]] = {}
    for name, model in metrics["models"].items():
        entry = model["metrics"][metric]
        out[name] = {
            "metric": metric,
            "value": entry.get("value"),
            "ci": list(entry.get("ci") or [None, None]),
        }
    out["_validation"] = {"repeats": int(metrics["study"]["validation"]["repeats"])}
    out["_selection"] = {
        "per_set": per_set,
        "candidates": metrics["selection"]["candidates_after_preparation"],
        "top": [row["feature"] for row in metrics["selection"]["top"][:5]],
    }
    return out


def _fmt(entry: Mapping[str, Any] | None, bold: bool = False) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    low, high = entry.get("ci") or [None, None]
    text = f"{entry['value']:.3f}"
    if bold:
        text = f"**{text}**"
    return text if low is None else f"{text} ({low:.3f}-{high:.3f})"


def best_recipe(results: Mapping[str, Mapping[str, Any]], model: str = "linear") -> str | None:
    """The recipe whose ``model`` has the highest headline value on one data set."""
    scored = {r: v[model]["value"] for r, v in results.items() if v.get(model, {}).get("value")}
    return max(scored, key=lambda r: scored[r]) if scored else None


def eligible(results: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The recipes that meet issue 16's done-when on one data set: the linear model at least as
    high as the plain one (``none``) and within the best recipe's 95% CI."""
    best = best_recipe(results)
    if best is None or "none" not in results:
        return set()
    plain = results["none"]["linear"]["value"]
    low, high = results[best]["linear"]["ci"]
    return {
        recipe
        for recipe, figures in results.items()
        if (value := figures.get("linear", {}).get("value")) is not None
        and value >= plain - 1e-9
        and low is not None
        and low <= value <= high
    }


def choose_default(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    tie: float = TIE,
    real: Sequence[str] | None = None,
) -> tuple[str, dict[str, float]]:
    """(chosen recipe, mean linear-model metric per recipe) over the data sets where every
    recipe ran. Candidates: the recipes eligible (:func:`eligible`) on every data set of
    ``real`` (default: every data set but the virtual cohort), or all when none is; then the
    highest mean, a tie (within ``tie``) going to the recipe with the fewest steps, then to the
    earlier one in ``RECIPES``."""
    recipes = [r for r in RECIPES if all(r in per for per in results.values())]
    means: dict[str, float] = {}
    for recipe in recipes:
        values = [per[recipe]["linear"]["value"] for per in results.values()]
        if all(v is not None for v in values):
            means[recipe] = sum(values) / len(values)
    if not means:
        raise ValueError("no recipe has a metric on every data set")
    real = [d for d in results if d != "virtual"] if real is None else list(real)
    allowed = set(means)
    for dataset in real:
        allowed &= eligible(results[dataset])
    candidates = {r: v for r, v in means.items() if r in allowed} or means
    top = max(candidates.values())
    tied = [r for r in candidates if candidates[r] >= top - tie]
    order = list(RECIPES)
    chosen = min(tied, key=lambda r: (len(RECIPES[r]), order.index(r)))
    return chosen, means


def recipe_table(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    titles: Mapping[str, str],
    model: str = "linear",
) -> list[str]:
    """Markdown: a row per recipe, a column per data set, the ``model``'s headline metric with
    its 95% CI (the best recipe of each data set in bold)."""
    datasets = list(results)
    header = "| recipe | " + " | ".join(titles[d] for d in datasets) + " |"
    lines = [header, "|---|" + "---|" * len(datasets)]
    best = {d: best_recipe(results[d], model) for d in datasets}
    for recipe in RECIPES:
        if not any(recipe in results[d] for d in datasets):
            continue
        cells = []
        for d in datasets:
            entry = results[d].get(recipe, {}).get(model)
            cells.append(_fmt(entry, bold=recipe == best[d]))
        lines.append(f"| {RECIPE_TEXT[recipe]} | " + " | ".join(cells) + " |")
    return lines


def selected_table(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]], titles: Mapping[str, str]
) -> list[str]:
    """Markdown: the median (range) number of features each recipe kept per outer training set."""
    datasets = list(results)
    lines = [
        "| recipe | " + " | ".join(titles[d] for d in datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for recipe in RECIPES:
        if not any(recipe in results[d] for d in datasets):
            continue
        cells = []
        for d in datasets:
            selection = results[d].get(recipe, {}).get("_selection")
            if not selection:
                cells.append("-")
                continue
            kept = sorted(selection["per_set"])
            median = kept[len(kept) // 2]
            cells.append(f"{median} ({kept[0]}-{kept[-1]}) of {selection['candidates']}")
        lines.append(f"| {RECIPE_TEXT[recipe]} | " + " | ".join(cells) + " |")
    return lines


def done_when(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]], default: str, titles: Mapping[str, str]
) -> list[str]:
    """Per data set: is the default's linear model within the best recipe's CI, and at least
    as high as the plain linear model (the recipe ``none``) on the same folds?"""
    lines = [
        "| data set | default | best recipe (95% CI) | within the CI | plain linear | >= plain |",
        "|---|---|---|---|---|---|",
    ]
    for d, per in results.items():
        if default not in per or "none" not in per:
            continue
        best = best_recipe(per)
        assert best is not None
        value = per[default]["linear"]["value"]
        low, high = per[best]["linear"]["ci"]
        plain = per["none"]["linear"]["value"]
        within = low is not None and low <= value <= high
        lines.append(
            f"| {titles[d]} | {value:.3f} | {RECIPE_TEXT[best]}: {_fmt(per[best]['linear'])} | "
            f"{'yes' if within else 'NO'} | {plain:.3f} | "
            f"{'yes' if value >= plain - 1e-9 else 'NO'} |"
        )
    return lines


def _environment() -> dict[str, str]:
    """One OpenMP thread unless set (thread oversubscription on a shared 2-core machine, as in
    benchmarks/study_real_data.py)."""
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def run_recipe(
    data_input: Path, config: dict[str, Any], out: Path
) -> tuple[dict[str, Any] | None, float]:
    """``hepablate train`` on one generated config; (metrics.json, seconds)."""
    config_file = out.with_suffix(".yaml")
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    command = [
        HEPABLATE,
        "train",
        str(data_input),
        "--config",
        str(config_file),
        "--out",
        str(out),
        "--no-report",
        "--no-bundle",
        "--overwrite",
    ]
    started = time.perf_counter()
    with out.with_suffix(".log").open("w", encoding="utf-8") as handle:
        done = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, check=False, env=_environment()
        )
    seconds = time.perf_counter() - started
    metrics_file = out / "metrics.json"
    if done.returncode != 0 or not metrics_file.is_file():
        log(f"  FAILED (exit code {done.returncode}); see {out.with_suffix('.log')}")
        return None, seconds
    return json.loads(metrics_file.read_text(encoding="utf-8")), seconds


def _survival(config: Mapping[str, Any], data_input: Path) -> bool:
    """Whether the data set's endpoint is time-to-event (from its base config's models)."""
    from hepablate.study.config import SURVIVAL_MODELS

    kinds = [m["kind"] for m in config.get("models", [])]
    if kinds:
        return kinds[0] in SURVIVAL_MODELS
    raise ValueError(f"the base config for {data_input} names no model")


def markdown(
    results: dict[str, dict[str, dict[str, Any]]],
    seconds: dict[str, dict[str, float]],
    titles: dict[str, str],
    command: str,
) -> list[str]:
    repeats = {
        d: sorted({v["_validation"]["repeats"] for v in per.values()}) for d, per in results.items()
    }
    default, means = choose_default(results)
    lines = [
        "## Selection recipes on real tables (issue 16)",
        "",
        f"Generated by `{command}` ({platform.machine()}, Python {platform.python_version()}, "
        "niced on a shared 2-core machine, `OMP_NUM_THREADS=1`). Each cell is one "
        "`hepablate train --no-report --no-bundle` of the data set's benchmark config with its "
        "`selection` replaced by the recipe; all recipes of a data set run on the same outer "
        "folds (same folds, repeats and seed: "
        + ", ".join(
            f"{titles[d]} 5 folds x {'/'.join(map(str, repeats[d]))} repeats" for d in results
        )
        + "). Headline metric of the linear model (logistic: AUC; Cox: Harrell's C) on the "
        "recipe's features, out-of-fold and averaged over the repeats, with its 95% CI "
        "(1000 bootstrap resamples of patients); the best recipe per data set in bold. The recipe "
        "`none` is the plain linear model (same kind and grid) on every candidate column.",
        "",
        *recipe_table(results, titles),
        "",
        "Features kept per outer training set, median (range), of the prepared columns as "
        "metrics.json counts them (`candidates_after_preparation`; the one-hot encoding inside "
        "each training set can give a few more or fewer):",
        "",
        *selected_table(results, titles),
        "",
    ]
    nonlinear = sorted(
        {m for per in results.values() for v in per.values() for m in v}
        - {"linear", "_selection", "_validation"}
    )
    for model in nonlinear:
        lines += [f"The same recipes with `{model}`:", "", *recipe_table(results, titles, model)]
        lines.append("")
    lines += [
        "Mean of the linear model's metric over the data sets: "
        + ", ".join(f"{RECIPE_TEXT[r]} {v:.3f}" for r, v in means.items())
        + ". Rule: of the recipes at least as high as the plain linear model and within the best "
        "recipe's CI on every real table (issue 16's done-when), the highest mean; recipes "
        f"within {TIE} of it tie, a tie goes to the fewest steps. Chosen: "
        f"**{RECIPE_TEXT[default]}**.",
        "",
        "The done-when of issue 16 with that default, per data set:",
        "",
        *done_when(results, default, titles),
        "",
        "Wall time per run (s): "
        + "; ".join(
            f"{titles[d]}: " + ", ".join(f"{r} {s:.0f}" for r, s in per.items())
            for d, per in seconds.items()
        )
        + f". Total {sum(sum(per.values()) for per in seconds.values()) / 60:.1f} min.",
        "",
    ]
    return lines


def collect(
    works: Sequence[Path],
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, float]]]:
    """The figures of every finished run (``runs/<data set>__<recipe>/metrics.json``) of these
    work folders, in the order of ``DATASETS`` and ``RECIPES`` (a later folder's run of the same
    cell replaces an earlier one), with the wall times their ``results.json`` recorded."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    took: dict[tuple[str, str], float] = {}
    for work in works:
        recorded = work / "results.json"
        if recorded.is_file():
            saved = json.loads(recorded.read_text(encoding="utf-8"))["seconds"]
            took.update({(d, r): s for d, per in saved.items() for r, s in per.items()})
        for metrics_file in sorted(work.glob("runs/*__*/metrics.json")):
            dataset, recipe = metrics_file.parent.name.split("__", 1)
            found[dataset, recipe] = headline(json.loads(metrics_file.read_text("utf-8")))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for dataset in DATASETS:
        for recipe in RECIPES:
            if (dataset.key, recipe) in found:
                results.setdefault(dataset.key, {})[recipe] = found[dataset.key, recipe]
                if (dataset.key, recipe) in took:
                    seconds.setdefault(dataset.key, {})[recipe] = took[dataset.key, recipe]
    return results, seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: /tmp/...)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--virtual", type=Path, default=None, help="the virtual FeatureTable")
    parser.add_argument("--only", default=",".join(d.key for d in DATASETS))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument(
        "--repeats", type=int, default=None, help="outer repeats (default: the base's)"
    )
    parser.add_argument("--nonlinear", action="store_true", help="also the non-linear baselines")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        default=None,
        metavar="WORK",
        help="run nothing: rebuild the Markdown from the runs of these work folders",
    )
    args = parser.parse_args(argv)
    titles = {d.key: d.title for d in DATASETS}
    command = "nice -n 19 .venv/bin/python benchmarks/selection_recipes.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.report is not None:
        results, seconds = collect(args.report)
        print("\n".join(markdown(results, seconds, titles, command.strip())))
        return 0
    wanted = [d for d in DATASETS if d.key in args.only.split(",")]
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown or not wanted:
        parser.error(f"unknown recipes {unknown} or no data set in {args.only!r}")
    if any(d.cohort is None for d in wanted) and args.virtual is None:
        wanted = [d for d in wanted if d.cohort is not None]
        log("no --virtual FeatureTable: the virtual cohort is left out")
    work = args.work or Path(tempfile.mkdtemp(prefix="hepablate-selection-recipes-"))
    (work / "runs").mkdir(parents=True, exist_ok=True)
    data_dir = shared_data_dir(args.data)
    inputs: dict[str, Path] = {}
    try:
        for dataset in wanted:
            if dataset.cohort is None:
                assert args.virtual is not None
                inputs[dataset.key] = args.virtual
            elif dataset.cohort not in inputs:
                inputs[dataset.cohort] = BUILDERS[dataset.cohort](
                    work / "cohorts" / dataset.cohort, data_dir
                )
    except SharedDataMissingError as exc:
        log(f"error: {exc}")
        return 2
    results: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, dict[str, float]] = {}
    failed = False
    for dataset in wanted:
        base = yaml.safe_load(dataset.config.read_text(encoding="utf-8"))
        data_input = inputs[dataset.cohort or dataset.key]
        survival = _survival(base, data_input)
        results[dataset.key], seconds[dataset.key] = {}, {}
        for recipe in recipes:
            config = recipe_config(
                base, recipe, survival=survival, repeats=args.repeats, nonlinear=args.nonlinear
            )
            log(f"[{dataset.key}] {recipe} ...")
            metrics, took = run_recipe(
                data_input, config, work / "runs" / f"{dataset.key}__{recipe}"
            )
            seconds[dataset.key][recipe] = took
            if metrics is None:
                failed = True
                continue
            results[dataset.key][recipe] = headline(metrics)
            shown = results[dataset.key][recipe]
            log(f"[{dataset.key}] {recipe}: linear {_fmt(shown['linear'])} ({took:.0f} s)")
            (work / "results.json").write_text(
                json.dumps({"results": results, "seconds": seconds}, indent=1), encoding="utf-8"
            )
    print("\n".join(markdown(results, seconds, titles, command.strip())))
    log(f"work folder: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
