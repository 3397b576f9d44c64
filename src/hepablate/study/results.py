"""Every number of a validated study, and the files ``hepablate train`` writes.

Metrics are computed on the out-of-fold predictions, averaged over repeats (each row is a test
row once per repeat), with 95% CIs from a bootstrap that resamples patients. Models are compared
on the same rows (DeLong for AUCs). ``metrics.json`` holds all of it, plus what the report plots.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import hepablate
from hepablate.schemas import dump_json
from hepablate.schemas.metrics import (
    METRICS_SCHEMA_VERSION,
    STUDY_SUMMARY,
    BinaryStudySummary,
    ModelTime,
    SurvivalStudySummary,
)
from hepablate.study.config import DEEP_MODELS
from hepablate.study.run import ModelRun, Split, StudyResult
from hepablate.validation import metrics as m

__all__ = ["ModelTime", "model_time", "selection_frequency", "summarise", "write_outputs"]


def _seconds(values: list[float]) -> list[float]:
    return [round(float(v), 3) for v in values]


def model_time(run: ModelRun) -> ModelTime:
    """The ``time`` entry of a model in ``metrics.json``."""
    return ModelTime(
        fit_seconds=round(float(np.sum(run.fit_seconds)), 3),
        fit_cpu_seconds=round(float(np.sum(run.fit_cpu_seconds)), 3),
        per_split_seconds=_seconds(run.fit_seconds),
        per_split_cpu_seconds=_seconds(run.fit_cpu_seconds),
        mean_split_seconds=round(float(np.mean(run.fit_seconds)), 3) if run.fit_seconds else 0.0,
        refit_seconds=None if run.refit_seconds is None else round(run.refit_seconds, 3),
    )


def _over_repeats(values: np.ndarray) -> np.ndarray:
    """The mean over repeats (axis 0) of the out-of-fold values, NaN where a row was never a
    test row (by-centre validation with ``test_centres``: expected and left out of every
    metric, so without numpy's "Mean of empty slice" warning)."""
    tested = np.sum(~np.isnan(values), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.nansum(values, axis=0) / tested, dtype=float)


def mean_prediction(run: ModelRun) -> np.ndarray:
    """A model's out-of-fold prediction of each row, averaged over the repeats (NaN for a row
    never tested)."""
    return _over_repeats(run.oof)


def _threshold(result: StudyResult) -> tuple[float | None, str]:
    if result.data.survival:
        # A time-to-event model gives a risk score, not a probability of one outcome: it is
        # scored by concordance and time-dependent measures, never at a cut.
        return None, (
            "none: a time-to-event model gives a risk score, not a probability; its risk "
            "groups are split at the tertiles of the out-of-fold risk scores"
        )
    configured = result.config.validation.threshold
    if configured is not None:
        return configured, "study config"
    return float(np.mean(result.data.events)), "prevalence of the outcome in the analysed rows"


def _binary(
    result: StudyResult, run: ModelRun, rows: np.ndarray, threshold: float
) -> dict[str, Any]:
    data, validation = result.data, result.config.validation
    y, p, groups = data.y[rows], mean_prediction(run)[rows], data.groups[rows]
    scored = ~np.isnan(p)
    y, p, groups = y[scored], p[scored], groups[scored]
    return {
        "metrics": m.binary_metrics(
            y,
            p,
            groups,
            threshold=threshold,
            n_bootstrap=validation.bootstrap,
            seed=validation.seed,
        ),
        "roc": m.roc_points(y, p),
        "calibration": m.calibration_points(y, p),
        "decision_curve": m.decision_curve(y, p),
    }


def _survival(result: StudyResult, run: ModelRun, rows: np.ndarray) -> dict[str, Any]:
    data, validation = result.data, result.config.validation
    risk = mean_prediction(run)[rows]
    scored = ~np.isnan(risk)
    rows = rows[scored]
    time, event = data.y["time"][rows], data.y["event"][rows]
    survival = None
    if run.survival is not None:
        survival = _over_repeats(run.survival)[rows]
    cutoffs = m.risk_tertiles(risk[scored])
    return {
        "metrics": m.survival_metrics(
            time,
            event,
            risk[scored],
            data.groups[rows],
            horizon=validation.horizon_months,
            times=result.times,
            survival=survival,
            train_time=data.y["time"],
            train_event=data.y["event"],
            n_bootstrap=validation.bootstrap,
            seed=validation.seed,
        ),
        "risk_groups": {
            "cutoffs": cutoffs,
            "cutoff_rule": "tertiles of the out-of-fold risk",
            **m.risk_groups(time, event, risk[scored], cutoffs),
        },
    }


def _score(survival: bool, y: np.ndarray, prediction: np.ndarray) -> float | None:
    """The headline metric (AUC, or Harrell's C) of predictions; None when undefined."""
    from sklearn.metrics import roc_auc_score
    from sksurv.metrics import concordance_index_censored

    if survival:
        if not y["event"].any():
            return None
        return float(concordance_index_censored(y["event"], y["time"], prediction)[0])
    return float(roc_auc_score(y, prediction)) if len(set(y)) == 2 else None


def _per_repeat(result: StudyResult, run: ModelRun) -> list[float | None]:
    """The headline metric of each repeat's pooled out-of-fold predictions."""
    data = result.data
    values = []
    for prediction in run.oof:
        rows = ~np.isnan(prediction)
        values.append(_score(data.survival, data.y[rows], prediction[rows]))
    return values


def _headline(metrics: dict[str, Any], survival: bool) -> float | None:
    """The headline metric of a model's metrics while the summary is being built."""
    value = metrics["harrell_c" if survival else "auc"]["value"]
    return None if value is None else float(value)


def selection_frequency(result: StudyResult) -> pd.DataFrame:
    """How often each candidate feature was selected, over the outer training sets."""
    counts = Counter(f for chosen in result.selected for f in chosen)
    folds = len(result.selected)
    names = list(dict.fromkeys([*result.candidates, *counts]))
    frame = pd.DataFrame(
        {
            "feature": names,
            "folds_selected": [counts.get(n, 0) for n in names],
            "folds": folds,
        }
    )
    frame["frequency"] = frame["folds_selected"] / max(folds, 1)
    return frame.sort_values(["frequency", "feature"], ascending=[False, True]).reset_index(
        drop=True
    )


def _delong(result: StudyResult, best: str) -> list[dict[str, Any]]:
    data = result.data
    best_p = mean_prediction(result.models[best])
    out = []
    for name, run in result.models.items():
        if name == best:
            continue
        p = mean_prediction(run)
        rows = ~np.isnan(p) & ~np.isnan(best_p)
        out.append(
            {"model": best, "against": name, **m.delong_test(data.y[rows], best_p[rows], p[rows])}
        )
    return out


def _deep_against_baselines(
    result: StudyResult, models: dict[str, Any], survival: bool
) -> list[dict[str, Any]]:
    """Each deep model against the best other model on the same folds: the per-fold difference
    of the headline metric with the corrected resampled t-test CI, DeLong for binary endpoints,
    and who wins. A difference whose CI holds 0 (and DeLong p >= 0.05) is a tie."""
    deep = [n for n in models if models[n]["kind"] in DEEP_MODELS]
    baselines = [n for n in models if models[n]["kind"] not in DEEP_MODELS]
    if not deep or not baselines:
        return []
    baseline = max(baselines, key=lambda n: _headline(models[n]["metrics"], survival) or 0.0)
    base_values, sizes = _split_scores(
        result, result.models[baseline], result.data.y, result.splits
    )
    out = []
    for name in deep:
        values, _ = _split_scores(result, result.models[name], result.data.y, result.splits)
        difference = fold_mean([a - b for a, b in zip(values, base_values, strict=True)], sizes)
        delong = None
        if not survival:
            p_deep = mean_prediction(result.models[name])
            p_base = mean_prediction(result.models[baseline])
            rows = ~np.isnan(p_deep) & ~np.isnan(p_base)
            delong = m.delong_test(result.data.y[rows], p_deep[rows], p_base[rows])
        ci = difference.get("ci")
        significant = ci is not None and (ci[0] > 0 or ci[1] < 0)
        p_value = None if delong is None else delong.get("p_value")
        if p_value is not None:
            significant = significant or p_value < 0.05
        ahead = (difference["value"] or 0.0) > 0
        verdict = (name if ahead else baseline) + " wins" if significant else "tie"
        out.append(
            {
                "deep": name,
                "baseline": baseline,
                "difference": difference,
                "delong": delong,
                "verdict": verdict,
                "ahead": name if ahead else baseline,
            }
        )
    return out


def _split_scores(
    result: StudyResult, run: ModelRun, y: np.ndarray, splits: list[Split]
) -> tuple[list[float], list[tuple[int, int]]]:
    """The headline metric on each split's test rows alone, and (train, test) sizes."""
    values, sizes = [], []
    for split in splits:
        rows = split.test
        value = _score(result.data.survival, y[rows], run.oof[split.repeat, rows])
        if value is not None:
            values.append(value)
            sizes.append((len(split.train), len(rows)))
    return values, sizes


def fold_mean(
    values: list[float], sizes: list[tuple[int, int]], level: float = 0.95
) -> dict[str, Any]:
    """Mean of per-split values with the corrected resampled t-test CI (Nadeau & Bengio 2003):
    variance (1/J + n_test/n_train) s^2 over the J splits. Unlike the pooled out-of-fold AUC,
    the per-fold mean is not biased below 0.5 under the null (fold-to-fold shifts of the
    model's intercept; Parker et al., BMC Bioinformatics 2007)."""
    from scipy import stats

    if len(values) < 2:
        return {"value": values[0] if values else None, "ci": None, "splits": len(values)}
    mean = float(np.mean(values))
    ratio = float(np.mean([test / train for train, test in sizes]))
    se = float(np.sqrt((1 / len(values) + ratio) * np.var(values, ddof=1)))
    half = float(stats.t.ppf(0.5 + level / 2, df=len(values) - 1)) * se
    return {
        "value": mean,
        "ci": [mean - half, mean + half],
        "splits": len(values),
        "method": "mean over test folds, corrected resampled t-test",
    }


def _permutation(result: StudyResult) -> dict[str, Any] | None:
    if not result.permutations:
        return None
    data = result.data
    first_repeat = [s for s in result.splits if s.repeat == 0]
    runs = []
    for permuted in result.permutations:
        values, sizes = _split_scores(result, permuted.run, permuted.y, first_repeat)
        runs.append(fold_mean(values, sizes))
    return {
        "model": result.permutations[0].model,
        "metric": "harrell_c" if data.survival else "auc",
        "folds": "the first repeat's outer folds, outcomes shuffled across rows; the metric "
        "on each test fold, averaged, with the corrected resampled t-test CI",
        "runs": runs,
        "ci_contains_chance": [
            r["ci"] is not None and r["ci"][0] <= 0.5 <= r["ci"][1] for r in runs
        ],
    }


def _nomogram(result: StudyResult) -> dict[str, Any] | None:
    from hepablate.models.baselines import nomogram

    for name, pipeline in result.final.items():
        spec = result.models[name].spec
        if spec.kind != "logistic" or spec.clinical_only:
            continue
        selection = pipeline[:-1]
        X = result.data.X
        Z = selection.transform(X)
        return {"model": name, **nomogram(pipeline[-1], [str(c) for c in Z.columns], Z.to_numpy())}
    return None


def summarise(
    result: StudyResult, warnings: list[str] | None = None
) -> BinaryStudySummary | SurvivalStudySummary:
    """``metrics.json``: every number of the study, with CIs, per model (validated by its
    model in ``hepablate.schemas.metrics``); ``warnings``: what the study found wanting in its
    data, one line each."""
    data, config = result.data, result.config
    survival = data.survival
    rows = np.arange(len(data.y))
    threshold, threshold_source = _threshold(result)

    def score(run: ModelRun, rows: np.ndarray) -> dict[str, Any]:
        if survival:
            return _survival(result, run, rows)
        assert threshold is not None  # a binary endpoint always has one
        return _binary(result, run, rows, threshold)

    models: dict[str, Any] = {}
    for name, run in result.models.items():
        scored = score(run, rows)
        values, sizes = _split_scores(result, run, data.y, result.splits)
        models[name] = {
            "kind": run.spec.kind,
            "clinical_only": run.spec.clinical_only,
            **scored,
            "fold_mean": fold_mean(values, sizes) if config.validation.scheme == "kfold" else None,
            "per_repeat": _per_repeat(result, run),
            "best_params": run.best_params,
            "time": model_time(run),
        }
    ranking = sorted(models, key=lambda n: -(_headline(models[n]["metrics"], survival) or 0.0))
    best = ranking[0]
    by_centre: dict[str, Any] = {}
    if config.validation.scheme == "by_centre":
        for split in result.splits:
            by_centre[split.label] = {
                name: score(run, split.test)["metrics"] for name, run in result.models.items()
            }
    frequency = selection_frequency(result)
    centres = Counter(data.centres.tolist())
    summary = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "hepablate": hepablate.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "study": config.model_dump(mode="json"),
        "endpoint": {**data.endpoint, "excluded_rows": data.excluded_rows},
        "cohort": {
            "rows": len(data.y),
            "patients": len(np.unique(data.groups)),
            "events": int(np.sum(data.events)),
            "centres": dict(sorted(centres.items())),
            "candidate_columns": int(data.X.shape[1]),
        },
        "validation": {
            "scheme": config.validation.scheme,
            "splits": [s.label for s in result.splits],
            "prediction": "each row's out-of-fold prediction, averaged over repeats",
            "threshold": threshold,
            "threshold_source": threshold_source,
            "evaluation_times_months": None if result.times is None else result.times.tolist(),
            "unseen_categories": result.unseen,
            "unseen_categories_handling": "a category of a test row that its training set lacks "
            "is one-hot encoded as all zeros: none of the known levels (the first level of a "
            "two-level column)",
        },
        "models": models,
        "by_centre": by_centre or None,
        "comparison": {
            "metric": "harrell_c" if survival else "auc",
            "ranking": ranking,
            "best": best,
            "delong": None if survival else _delong(result, best),
            "deep_against_baselines": _deep_against_baselines(result, models, survival),
        },
        "permutation": _permutation(result),
        "selection": {
            "candidates_after_preparation": len(result.candidates),
            "outer_training_sets": len(result.selected),
            "selected_per_set": [len(s) for s in result.selected],
            # Preparation and selection, per outer split (wall-clock; shared by the models).
            "seconds": round(float(np.sum(result.selection_seconds)), 3),
            "per_split_seconds": _seconds(result.selection_seconds),
            "top": frequency.head(30).to_dict(orient="records"),
        },
        "nomogram": None if survival else _nomogram(result),
        "warnings": list(warnings or []),
    }
    return STUDY_SUMMARY.validate_python(summary)


def write_outputs(
    result: StudyResult, run_dir: Path, *, warnings: list[str] | None = None
) -> dict[str, Path]:
    """``metrics.json``, ``selected_features.csv`` and ``predictions.csv`` in ``run_dir``;
    ``warnings`` (what the study found wanting in its data, one line each) go into
    ``metrics.json`` for the report and for whoever reads the run later."""
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(result, warnings)
    paths = {
        "metrics": run_dir / "metrics.json",
        "selected_features": run_dir / "selected_features.csv",
        "predictions": run_dir / "predictions.csv",
    }
    paths["metrics"].write_text(dump_json(summary), encoding="utf-8")
    selection_frequency(result).to_csv(paths["selected_features"], index=False)
    data = result.data
    index = data.table.index if data.table is not None else pd.RangeIndex(len(data.y))
    predictions = pd.DataFrame({"group": data.groups, "centre": data.centres}, index=index)
    if data.survival:
        predictions["time_months"] = data.y["time"]
        predictions["event"] = data.y["event"]
    else:
        predictions["label"] = data.y
    for name, run in result.models.items():
        predictions[name] = mean_prediction(run)
    predictions.to_csv(paths["predictions"], encoding="utf-8")
    return paths
