"""The tables and sentences of the study report: the validation scheme in words, the model
comparison, repeats, permutation runs, centres, the nomogram's rows and the deep models'
verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hepablate.report.formatting import (
    METRIC_NAMES,
    Summary,
    format_estimate,
    format_p,
)
from hepablate.schemas.metrics import (
    BinaryMetrics,
    BinaryStudySummary,
    Estimate,
    ModelTime,
    Nomogram,
    SurvivalMetrics,
    SurvivalStudySummary,
)

__all__ = [
    "BINARY_METRICS",
    "by_centre_table",
    "centre_rows",
    "comparison_table",
    "deep_sentences",
    "nomogram_rows",
    "permutation_runs",
    "repeat_rows",
    "validation_sentence",
]

BINARY_METRICS = (
    ("auc", "AUC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "Positive predictive value"),
    ("npv", "Negative predictive value"),
    ("accuracy", "Accuracy"),
    ("f1", "F1 score"),
    ("brier", "Brier score"),
    ("calibration_intercept", "Calibration intercept"),
    ("calibration_slope", "Calibration slope"),
)


def validation_sentence(summary: Summary) -> str:
    """The validation scheme in one sentence: outer folds, what was refitted inside, CIs."""
    study, validation = summary.study, summary.validation
    scheme = study.validation
    steps = ", ".join(s.method for s in study.selection) or "no selection step"
    inside = (
        f"imputation ({scheme.imputation}), scaling, feature selection ({steps}) and "
        f"hyperparameter tuning ({scheme.inner_folds} inner folds grouped by patient) were "
        "refitted inside every training set"
    )
    if scheme.scheme == "kfold":
        outer = (
            f"{scheme.repeats} × repeated {scheme.folds}-fold cross-validation with folds "
            "grouped by patient and stratified by the outcome"
        )
    else:
        outer = "validation by centre (" + "; ".join(validation.splits) + ")"
    return (
        f"Models were validated by {outer}; {inside}; 95% CIs come from "
        f"{scheme.bootstrap} bootstrap resamples of patients."
    )


def deep_sentences(summary: Summary) -> list[str]:
    """One sentence per deep model: against the best other model on the same folds, who wins."""
    metric = METRIC_NAMES[summary.comparison.metric]
    sentences = []
    for row in summary.comparison.deep_against_baselines:
        value, ci = row.difference.value, row.difference.ci
        shown = "-" if value is None else f"{value:+.3f}"
        if ci:
            shown += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        p_value = None if row.delong is None else row.delong.p_value
        test = "" if p_value is None else f", DeLong p = {p_value:.3f}"
        if row.verdict == "tie":
            outcome = (
                f"neither wins: the difference is not significant ({row.ahead} is ahead by the "
                "point estimate)"
            )
        else:
            outcome = row.verdict
        sentences.append(
            f"Deep model {row.deep} against the best baseline, {row.baseline}: per-fold "
            f"{metric} difference {shown}{test}; {outcome}."
        )
    return sentences


def comparison_table(summary: Summary) -> dict[str, Any]:
    """The model comparison: a column per model (best first), a row per metric."""
    ranking, best = summary.comparison.ranking, summary.comparison.best
    models = summary.models
    columns = [
        {
            "name": name,
            "kind": models[name].kind.replace("_", " "),
            "clinical_only": models[name].clinical_only,
            "best": name == best,
        }
        for name in ranking
    ]
    cells: list[tuple[str, list[Estimate | None]]]
    if isinstance(summary, SurvivalStudySummary):
        horizon = summary.study.validation.horizon_months
        survival = [summary.models[n].metrics for n in ranking]
        cells = [
            ("Harrell's C-index", [m.harrell_c for m in survival]),
            (f"Uno's C-index (τ = {horizon:g} months)", [m.uno_c for m in survival]),
            ("Mean time-dependent AUC", [m.td_auc.mean_auc for m in survival]),
            ("Integrated Brier score", [m.integrated_brier for m in survival]),
        ]
    else:
        binary = [summary.models[n].metrics for n in ranking]
        cells = [(label, [getattr(m, key) for m in binary]) for key, label in BINARY_METRICS]
    rows: list[dict[str, Any]] = [
        {"label": label, "cells": [format_estimate(e) for e in estimates]}
        for label, estimates in cells
    ]
    if isinstance(summary, BinaryStudySummary):
        delong = {d.against: d.p_value for d in summary.comparison.delong or []}
        rows.append(
            {
                "label": f"DeLong p vs {best}",
                "cells": ["best" if n == best else format_p(delong.get(n)) for n in ranking],
            }
        )
    rows.append(
        {
            "label": f"Fit time, s: all {len(summary.validation.splits)} splits (per split)",
            "cells": [_fit_time(models[n].time) for n in ranking],
        }
    )
    return {"columns": columns, "rows": rows}


def _fit_time(time: ModelTime | None) -> str:
    """A model's seconds over the outer splits (tuning, fit, prediction), and per split."""
    if time is None:  # a metrics.json written before the times were recorded
        return "-"
    return f"{time.fit_seconds:.1f} ({time.mean_split_seconds:.2f})"


def repeat_rows(summary: Summary) -> list[dict[str, Any]]:
    """Each model's headline metric per repeat: mean, SD, range and the values."""
    rows = []
    for name in summary.comparison.ranking:
        values = [v for v in summary.models[name].per_repeat if v is not None]
        array = np.asarray(values, dtype=float)
        rows.append(
            {
                "model": name,
                "repeats": len(values),
                "mean": f"{array.mean():.3f}" if len(array) else "-",
                "sd": f"{array.std(ddof=1):.3f}" if len(array) > 1 else "-",
                "range": f"{array.min():.3f} to {array.max():.3f}" if len(array) else "-",
                "values": ", ".join(f"{v:.3f}" for v in values) or "-",
            }
        )
    return rows


def permutation_runs(summary: Summary) -> list[dict[str, Any]]:
    """Each label-permutation run: its estimate, whether its CI holds chance, what that means."""
    permutation = summary.permutation
    if permutation is None:
        return []
    metric = METRIC_NAMES[permutation.metric]
    runs = []
    for index, run in enumerate(permutation.runs):
        ci = run.ci
        contains = ci is not None and ci[0] <= 0.5 <= ci[1]
        if ci is None:
            meaning = (
                "The CI is undefined (too few resamples with both outcomes), so the run cannot "
                "show whether information leaks."
            )
        elif contains:
            meaning = (
                f"With the outcomes shuffled, the model's {metric} is compatible with chance "
                "(0.5), as it should be: nothing in the pipeline lets the outcome of a test row "
                "reach the model."
            )
        elif ci[0] > 0.5:
            meaning = (
                f"With the outcomes shuffled, the {metric} is still above chance (0.5): "
                "information from the test rows probably leaks into training. Do not trust "
                "the results above before this is explained."
            )
        else:
            meaning = (
                f"With the outcomes shuffled, the {metric} is below chance (0.5). A leak "
                "would raise it, not lower it; with few rows, shuffled outcomes can run "
                "against the folds' class balance. Unexpected all the same: repeat with more "
                "permutation runs (validation.permutations)."
            )
        runs.append(
            {
                "index": index + 1,
                "model": permutation.model,
                "metric": metric,
                "estimate": format_estimate(run),
                "contains": "undefined" if ci is None else ("yes" if contains else "no"),
                "ok": contains,
                "meaning": meaning,
            }
        )
    return runs


def by_centre_table(summary: Summary) -> dict[str, Any] | None:
    """The headline metric of every model per held-out centre (None without centre splits)."""
    if not summary.by_centre:
        return None
    ranking = summary.comparison.ranking
    rows = []
    by_centre: Mapping[str, Mapping[str, BinaryMetrics | SurvivalMetrics]] = summary.by_centre
    for split, models in by_centre.items():
        first = next(iter(models.values()))
        rows.append(
            {
                "split": split,
                "n": first.n,
                "events": first.events,
                "cells": [
                    format_estimate(models[n].headline) if n in models else "-" for n in ranking
                ],
            }
        )
    return {"metric": METRIC_NAMES[summary.comparison.metric], "models": ranking, "rows": rows}


def nomogram_rows(nomogram: Nomogram) -> list[dict[str, str]]:
    """The nomogram's features as table rows: coefficient, odds ratio, points and direction."""
    return [
        {
            "feature": f.feature,
            "coefficient": f"{f.coefficient:.3f}",
            "odds_ratio": f"{f.odds_ratio:.3f}",
            "points": f"{f.points_range[0]:.0f} to {f.points_range[1]:.0f}",
            "direction": "higher value, higher risk"
            if f.risk_rises_with_value
            else "higher value, lower risk",
        }
        for f in nomogram.features
    ]


def centre_rows(summary: Summary, predictions: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Rows, patients and events per centre (patients and events from predictions.csv)."""
    counts = summary.cohort.centres
    out = []
    for centre, rows in counts.items():
        entry: dict[str, Any] = {"centre": centre, "rows": rows, "patients": "-", "events": "-"}
        if predictions is not None and "centre" in predictions:
            here = predictions[predictions["centre"].astype(str) == str(centre)]
            if "group" in here:
                entry["patients"] = int(here["group"].nunique())
            outcome = "event" if "event" in here else "label" if "label" in here else None
            if outcome:
                entry["events"] = int(here[outcome].astype(int).sum())
        out.append(entry)
    return out
