"""The study report of ``hepablate train``: one self-contained HTML page, and the same as PDF.

Everything comes from the run folder: ``metrics.json`` (``hepablate.study.results.summarise``),
``selected_features.csv``, ``predictions.csv`` and, when present, ``table1.csv`` and
``missingness.csv`` (``write_cohort_tables``). So a report can be rebuilt from a finished run.
The page is rendered from ``templates/study.html.j2``; its CSS is inline and every figure is a
matplotlib PNG embedded as a data URI: the page loads nothing from the network. The PDF is the
same HTML rendered by WeasyPrint (A4).

Table 1 gives descriptive statistics only, overall and by outcome, without p-values: TRIPOD
(item 20b) asks for the characteristics of the participants, and tests of baseline differences
between outcome groups say nothing about a prediction model.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from hepablate.report.tripod import checklist
from hepablate.schemas import read_metrics
from hepablate.schemas.metrics import (
    BinaryMetrics,
    BinaryModelSummary,
    BinaryStudySummary,
    Estimate,
    FoldMean,
    ModelTime,
    Nomogram,
    SurvivalMetrics,
    SurvivalModelSummary,
    SurvivalStudySummary,
)

if TYPE_CHECKING:
    from markupsafe import Markup
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hepablate.study.data import StudyData

Summary = BinaryStudySummary | SurvivalStudySummary

__all__ = [
    "BAR",
    "COLOURS",
    "format_estimate",
    "missingness_table",
    "render_report",
    "table_one",
    "write_cohort_tables",
    "write_report",
]

TEMPLATES = Path(__file__).with_name("templates")
# One colour per model, in the order of the ranking (the best model first).
COLOURS = ("#1f5fa8", "#c8553d", "#2a9d8f", "#8d6cab", "#e9a03b", "#5c5c5c")
GREY, LIGHT_GREY, BAR = "#444444", "#9a9a9a", "#7f8c99"
NOMOGRAM_FEATURE, NOMOGRAM_PROBABILITY = "#33475b", "#8a2f1f"
DPI = 100
IMAGE_PREFIXES = ("rad.", "deep.")  # image features: not in table 1 (hundreds of columns)
MISSINGNESS_SHOWN = 30
SMALL_SCALE = 6  # whole-number columns with at most this many values: n (%) per value
SELECTION_SHOWN = 30
NOMOGRAM_SHOWN = 15

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
METRIC_NAMES = {"auc": "AUC", "harrell_c": "Harrell's C-index"}


# --- table 1 and missingness -------------------------------------------------------------


def _number(x: float) -> str:
    """Three significant digits, never in scientific notation."""
    if not math.isfinite(x):
        return str(x)
    if float(x).is_integer():
        return f"{x:.0f}"
    decimals = min(4, max(0, 2 - math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def _median_iqr(values: pd.Series) -> str:
    known = values.dropna().to_numpy(dtype=float)
    if len(known) == 0:
        return "-"
    q1, q2, q3 = np.percentile(known, [25, 50, 75])
    return f"{_number(q2)} ({_number(q1)} to {_number(q3)})"


def _count(mask: pd.Series, known: pd.Series) -> str:
    n = int(known.sum())
    k = int((mask & known).sum())
    return f"{k} ({k / n * 100:.0f}%)" if n else "-"


def _is_boolean(column: str, table: pd.DataFrame | None) -> bool:
    """A yes/no column: boolean in the FeatureTable (``StudyData.X`` holds it as 0/1)."""
    if table is not None and column in table:
        return bool(pd.api.types.is_bool_dtype(table[column]))
    return False


def _levels(values: pd.Series) -> list[Any] | None:
    """The levels of a category column, or of a number with a few whole values (a score,
    a grade, a count: ECOG 0/1/2); None for a measurement."""
    known = values.dropna()
    if not pd.api.types.is_numeric_dtype(values):
        return sorted({str(v) for v in known})
    distinct = sorted(set(known.to_numpy(dtype=float).tolist()))
    if len(distinct) <= SMALL_SCALE and all(float(v).is_integer() for v in distinct):
        return distinct
    return None


def table_one(data: StudyData) -> pd.DataFrame:
    """Table 1: every candidate column except image features, overall and by outcome.

    Numbers as median (IQR); booleans, categories and whole-number scales of at most
    ``SMALL_SCALE`` values (scores, grades, counts) as n (%) of the rows where the value is
    known; and the number of rows where it is missing. Columns: ``variable``, ``level``,
    ``overall``, ``event``, ``no_event``, ``missing``.
    """
    features = data.X
    events = pd.Series(np.asarray(data.events, dtype=bool), index=features.index)
    groups = {"overall": events | True, "event": events, "no_event": ~events}
    rows: list[dict[str, Any]] = []
    for column in (str(c) for c in features.columns):
        if column.startswith(IMAGE_PREFIXES):
            continue
        values = features[column]
        known = values.notna()
        missing = int((~known).sum())
        levels = _levels(values)
        if _is_boolean(column, data.table):
            rows.append(
                {
                    "variable": column,
                    "level": "yes, n (%)",
                    **{
                        g: _count(values[rows_] == 1.0, known[rows_]) for g, rows_ in groups.items()
                    },
                    "missing": missing,
                }
            )
        elif levels is None:
            rows.append(
                {
                    "variable": column,
                    "level": "median (IQR)",
                    **{g: _median_iqr(values[rows_]) for g, rows_ in groups.items()},
                    "missing": missing,
                }
            )
        else:
            for index, level in enumerate(levels):
                name = _number(level) if isinstance(level, float) else level
                rows.append(
                    {
                        "variable": column if index == 0 else "",
                        "level": f"{name}, n (%)",
                        **{
                            g: _count(values[rows_] == level, known[rows_])
                            for g, rows_ in groups.items()
                        },
                        "missing": missing if index == 0 else "",
                    }
                )
    columns = ["variable", "level", "overall", "event", "no_event", "missing"]
    return pd.DataFrame(rows, columns=columns)


def missingness_table(data: StudyData) -> pd.DataFrame:
    """Every candidate column with a missing value: ``column``, ``missing`` (rows) and
    ``percent``, most missing first."""
    missing = data.X.isna().sum()
    frame = pd.DataFrame(
        {
            "column": [str(c) for c in missing.index],
            "missing": missing.to_numpy(dtype=int),
            "percent": (missing.to_numpy(dtype=float) / max(len(data.X), 1) * 100).round(1),
        }
    )
    frame = frame[frame["missing"] > 0]
    return frame.sort_values(["missing", "column"], ascending=[False, True]).reset_index(drop=True)


def write_cohort_tables(data: StudyData, run_dir: Path) -> None:
    """``table1.csv`` (``table_one``) and ``missingness.csv`` (``missingness_table``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    table_one(data).to_csv(run_dir / "table1.csv", index=False, encoding="utf-8")
    missingness_table(data).to_csv(run_dir / "missingness.csv", index=False, encoding="utf-8")


# --- formatting ----------------------------------------------------------------------------


def format_estimate(metric: Estimate | FoldMean | None, digits: int = 3) -> str:
    """``value (low to high)``, as the report shows an estimate with its 95% CI."""
    if metric is None or metric.value is None:
        return "-"
    text = f"{metric.value:.{digits}f}"
    if metric.ci is not None:
        text += f" ({metric.ci[0]:.{digits}f} to {metric.ci[1]:.{digits}f})"
    return text


def _p_value(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float | None) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    text = _p_value(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _when(created: str) -> str:
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return created
    return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")


# --- figures ---------------------------------------------------------------------------------


def _new_figure(width: float = 5.2, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(alpha=0.3, lw=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _figure(
    name: str, figure: Figure, alt: str, caption: str, wide: bool = False
) -> dict[str, Any]:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "name": name,
        "src": f"data:image/png;base64,{encoded}",
        "alt": alt,
        "caption": caption,
        "wide": wide,
    }


def _no_data(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color=GREY)


def _styles(summary: Summary) -> dict[str, dict[str, Any]]:
    """Colour and line style of each model (dashed: clinical variables only)."""
    ranking = summary.comparison.ranking
    return {
        name: {
            "color": COLOURS[i % len(COLOURS)],
            "ls": "--" if summary.models[name].clinical_only else "-",
        }
        for i, name in enumerate(ranking)
    }


def _label(name: str, scored: BinaryModelSummary | SurvivalModelSummary) -> str:
    return name + (" (clinical only)" if scored.clinical_only else "")


def _roc_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    figure, axes = _new_figure()
    styles, plotted = _styles(summary), []
    for name in summary.comparison.ranking:
        scored = summary.models[name]
        roc = scored.roc
        if not roc.fpr:
            continue
        auc = scored.metrics.auc.value
        label = _label(name, scored) + ("" if auc is None else f", AUC {auc:.3f}")
        axes.plot(roc.fpr, roc.tpr, lw=2, label=label, **styles[name])
        plotted.append(f"{name} {'-' if auc is None else f'{auc:.3f}'}")
    axes.plot([0, 1], [0, 1], color=LIGHT_GREY, ls=":", lw=1, label="chance")
    axes.set(xlabel="1 - specificity", ylabel="Sensitivity", xlim=(0, 1), ylim=(0, 1.01))
    axes.set_title("ROC curves (out-of-fold predictions)", fontsize=11)
    axes.legend(fontsize=7.5, loc="lower right")
    if not plotted:
        _no_data(axes, "no ROC curve: one outcome class only")
    return _figure(
        "roc",
        figure,
        "ROC curves of all models; AUC " + ", ".join(plotted),
        "ROC curves of all models on the out-of-fold predictions (averaged over repeats).",
    )


def _calibration_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    figure, axes = _new_figure()
    styles = _styles(summary)
    top = 0.05
    for name in summary.comparison.ranking:
        scored = summary.models[name]
        points = scored.calibration
        if not points.predicted:
            continue
        axes.plot(
            points.predicted,
            points.observed,
            marker="o",
            ms=4,
            lw=1.5,
            label=_label(name, scored),
            **styles[name],
        )
        top = max(top, *points.predicted, *points.observed)
    top = min(1.0, top * 1.05)
    axes.plot([0, top], [0, top], color=LIGHT_GREY, ls=":", lw=1, label="ideal")
    axes.set(xlabel="Predicted probability", ylabel="Observed proportion")
    axes.set(xlim=(0, top), ylim=(0, top))
    axes.set_title("Calibration (deciles of the prediction)", fontsize=11)
    axes.legend(fontsize=7.5, loc="lower right")
    return _figure(
        "calibration",
        figure,
        "Calibration plot of all models: observed proportion against mean predicted "
        "probability per decile, with the diagonal of perfect calibration",
        "Calibration: observed proportion with the outcome against the mean predicted "
        "probability, per decile of the prediction; the dotted diagonal is perfect calibration.",
    )


def _decision_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    figure, axes = _new_figure()
    styles = _styles(summary)
    reference = None
    for name in summary.comparison.ranking:
        scored = summary.models[name]
        curve = scored.decision_curve
        reference = reference or curve
        axes.plot(curve.thresholds, curve.model, lw=2, label=_label(name, scored), **styles[name])
    if reference is not None:
        axes.plot(reference.thresholds, reference.treat_all, color=GREY, lw=1, label="treat all")
        axes.plot(
            reference.thresholds,
            reference.treat_none,
            color=LIGHT_GREY,
            lw=1.5,
            label="treat none",
        )
    prevalence = summary.cohort.events / max(summary.cohort.rows, 1)
    axes.set_ylim(-0.05, max(prevalence * 1.15, 0.05))
    axes.set(xlabel="Threshold probability", ylabel="Net benefit")
    axes.set_title("Decision curves", fontsize=11)
    axes.legend(fontsize=7.5, loc="upper right")
    return _figure(
        "decision_curve",
        figure,
        "Decision curves: net benefit of each model, of treating all and of treating none, "
        "over threshold probabilities",
        "Decision curves: net benefit against the threshold probability, for each model, for "
        "treating all patients and for treating none.",
    )


def _kaplan_meier_figure(summary: SurvivalStudySummary) -> dict[str, Any]:
    best = summary.comparison.best
    risk = summary.models[best].risk_groups
    figure, axes = _new_figure()
    for group, colour in zip(risk.groups, ("#2a9d8f", "#e9a03b", "#c8553d"), strict=False):
        km = group.km
        if km.time:
            axes.step(
                km.time,
                km.survival,
                where="post",
                color=colour,
                lw=2,
                label=f"{group.name} risk (n={group.n}, {group.events} events)",
            )
    logrank = risk.logrank
    p = _p_is(logrank.p_value if logrank else None)
    axes.set(xlabel="Months", ylabel="Event-free proportion", ylim=(0, 1.02))
    axes.set_title(f"Risk groups of {best}; log-rank {p}", fontsize=11)
    axes.legend(fontsize=7.5, loc="best")
    return _figure(
        "kaplan_meier",
        figure,
        f"Kaplan-Meier curves of the risk groups of {best}, log-rank {p}",
        f"Kaplan-Meier curves of the risk groups of the best model ({best}), split at the "
        f"{risk.cutoff_rule}; log-rank {p}.",
    )


def _td_auc_figure(summary: SurvivalStudySummary) -> dict[str, Any]:
    figure, axes = _new_figure()
    styles = _styles(summary)
    for name in summary.comparison.ranking:
        scored = summary.models[name]
        td = scored.metrics.td_auc
        pairs = [(t, a) for t, a in zip(td.times, td.auc, strict=False) if a is not None]
        if pairs:
            times, aucs = zip(*pairs, strict=True)
            axes.plot(
                times, aucs, marker="o", ms=4, lw=1.5, label=_label(name, scored), **styles[name]
            )
    axes.axhline(0.5, color=LIGHT_GREY, ls=":", lw=1)
    axes.set(xlabel="Months", ylabel="Time-dependent AUC", ylim=(0.3, 1.0))
    axes.set_title("Cumulative/dynamic AUC over time", fontsize=11)
    axes.legend(fontsize=7.5, loc="lower right")
    return _figure(
        "td_auc",
        figure,
        "Time-dependent (cumulative/dynamic) AUC of each model over follow-up time",
        "Time-dependent AUC (cumulative cases against dynamic controls) at each evaluation time.",
    )


def _selection_figure(frequency: pd.DataFrame) -> dict[str, Any]:
    chosen = frequency[frequency["frequency"] > 0].head(SELECTION_SHOWN)
    figure, axes = _new_figure(7.2, max(2.2, 0.24 * len(chosen) + 1.0))
    axes.grid(axis="y", visible=False)
    if len(chosen):
        shown = chosen.iloc[::-1]
        axes.barh([str(f) for f in shown["feature"]], shown["frequency"], color=BAR)
    else:
        _no_data(axes, "no feature selected")
    axes.set(xlabel="Share of outer training sets in which the feature was selected", xlim=(0, 1))
    axes.tick_params(axis="y", labelsize=7.5)
    axes.set_title(f"Selection frequency (top {SELECTION_SHOWN})", fontsize=11)
    return _figure(
        "selection_frequency",
        figure,
        f"Bar chart of how often each of the {len(chosen)} most often selected features was "
        "selected across the outer training sets",
        f"The {len(chosen)} most often selected features: share of the outer training sets "
        "in which the selection kept them.",
        wide=True,
    )


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _nomogram_figure(nomogram: Nomogram) -> dict[str, Any]:
    from matplotlib.ticker import MaxNLocator

    features = [f for f in nomogram.features if f.points_range[1] > 0.5][:NOMOGRAM_SHOWN]
    scale = float(nomogram.points_per_logit)
    mapping = nomogram.points_to_probability
    max_points = float(mapping.points[-1]) or 1.0
    offsets = [
        _logit(p) - t / scale
        for t, p in zip(mapping.points, mapping.probability, strict=True)
        if 1e-12 < p < 1 - 1e-12
    ]
    offset = float(np.mean(offsets)) if offsets else 0.0
    rows = len(features) + 3
    figure, axes = _new_figure(7.2, 0.42 * rows + 0.9)
    axes.grid(False)
    axes.axis("off")
    axes.set(xlim=(-0.42, 1.04), ylim=(-0.6, rows - 0.3))

    def axis(y: float, name: str, ticks: list[tuple[float, str]], colour: str) -> None:
        axes.plot(
            [min(x for x, _ in ticks), max(x for x, _ in ticks)], [y, y], color=colour, lw=1.6
        )
        for x, text in ticks:
            axes.plot([x, x], [y, y + 0.12], color=colour, lw=1)
            axes.text(x, y + 0.18, text, fontsize=6.5, ha="center", va="bottom")
        axes.text(-0.03, y, name, fontsize=7.5, ha="right", va="center")

    y = rows - 1
    axis(y, "Points", [(p / 100, f"{p:g}") for p in range(0, 101, 10)], GREY)
    for feature in features:
        y -= 1
        low, high = feature.model_value_range
        points = feature.points_range[1]
        # about one labelled tick per 18 points, so that short axes stay legible
        values = np.linspace(low, high, int(np.clip(points // 18 + 1, 2, 6)))
        if high <= low:  # one value seen: no axis to draw
            ticks = [(0.0, f"{low:.2g}")]
        elif feature.risk_rises_with_value:
            ticks = [((v - low) / (high - low) * points / 100, f"{v:.2g}") for v in values]
        else:
            ticks = [((high - v) / (high - low) * points / 100, f"{v:.2g}") for v in values]
        axis(y, feature.feature, sorted(ticks), NOMOGRAM_FEATURE)
    y -= 1
    total = [float(t) for t in MaxNLocator(8).tick_values(0, max_points) if 0 <= t <= max_points]
    axis(y, "Total points", [(t / max_points, f"{t:g}") for t in total], GREY)
    y -= 1
    probabilities = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98]
    placed = [(p, (_logit(p) - offset) * scale) for p in probabilities]
    inside = [(t / max_points, f"{p:g}") for p, t in placed if 0 <= t <= max_points]
    if len(inside) < 2:
        inside = [
            (t / max_points, f"{p:.2f}")
            for t, p in zip(mapping.points, mapping.probability, strict=True)
        ][:: max(1, len(mapping.points) // 5)]
    axis(y, "Probability", inside, NOMOGRAM_PROBABILITY)
    axes.set_title(f"Nomogram of {nomogram.model}", fontsize=11)
    return _figure(
        "nomogram",
        figure,
        f"Nomogram of the logistic model {nomogram.model}: a points axis per feature, "
        "total points mapped to the predicted probability",
        "Nomogram: read each feature's points on the top axis, add them, and read the "
        "probability below the total. Feature values are as the model sees them (standardised: "
        "SD units from the training mean; one-hot categories likewise)"
        + (
            f"; the {NOMOGRAM_SHOWN} features with the widest points range are drawn."
            if len(nomogram.features) > NOMOGRAM_SHOWN
            else "."
        ),
        wide=True,
    )


# --- tables and text -------------------------------------------------------------------------


def _validation_sentence(summary: Summary) -> str:
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


def _deep_sentences(summary: Summary) -> list[str]:
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


def _comparison(summary: Summary) -> dict[str, Any]:
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
                "cells": ["best" if n == best else _p_value(delong.get(n)) for n in ranking],
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


def _per_repeat(summary: Summary) -> list[dict[str, Any]]:
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


def _permutation(summary: Summary) -> list[dict[str, Any]]:
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


def _by_centre(summary: Summary) -> dict[str, Any] | None:
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


def _nomogram_rows(nomogram: Nomogram) -> list[dict[str, str]]:
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


def _centres(summary: Summary, predictions: pd.DataFrame | None) -> list[dict[str, Any]]:
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


def _css_string(text: str) -> Markup:
    """``text`` safe inside a quoted CSS string (of a <style> element): every character that
    is not a letter, digit or space as a CSS escape (its trailing space ends the escape)."""
    from markupsafe import Markup

    return Markup("".join(c if c.isalnum() or c == " " else f"\\{ord(c):06x} " for c in text))


def _estimate_cell(text: Any) -> Markup:
    """An estimate with its interval in brackets, "0.812 (0.75 to 0.86)", as HTML whose
    bracket is a ``span.ci``: the PDF puts it on its own line, so that a narrow column breaks
    between the estimate and its interval rather than inside the interval."""
    from markupsafe import Markup, escape

    value, bracket, rest = str(text).partition(" (")
    if not bracket:
        return escape(value)
    return Markup(f'{escape(value)} <span class="ci">({escape(rest)}</span>')


def _breakable_name(text: Any) -> Markup:
    """A model name that may break after its underscores (``<wbr>``), and only there."""
    from markupsafe import Markup, escape

    return Markup("_<wbr>").join(escape(part) for part in str(text).split("_"))


def _read_csv(path: Path, text: bool = False) -> pd.DataFrame | None:
    """A CSV of the run folder, or None; ``text``: every cell as written (table 1)."""
    if not path.is_file():
        return None
    if text:
        return pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False)
    return pd.read_csv(path, encoding="utf-8")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


# --- the report ------------------------------------------------------------------------------


def _context(run_dir: Path) -> dict[str, Any]:
    summary = read_metrics(run_dir / "metrics.json")
    frequency = pd.read_csv(run_dir / "selected_features.csv", encoding="utf-8")
    predictions = _read_csv(run_dir / "predictions.csv")
    table1 = _read_csv(run_dir / "table1.csv", text=True)
    missingness = _read_csv(run_dir / "missingness.csv")
    survival = summary.survival
    cohort, endpoint = summary.cohort, summary.endpoint
    best = summary.comparison.best

    missing_share = None
    if missingness is not None:
        cells = cohort.rows * max(cohort.candidate_columns, 1)
        missing_share = float(missingness["missing"].sum()) / max(cells, 1)
    items = checklist(summary, missing_share)

    figures: dict[str, dict[str, Any]] = {}
    logrank = None
    if isinstance(summary, SurvivalStudySummary):
        figures["kaplan_meier"] = _kaplan_meier_figure(summary)
        figures["td_auc"] = _td_auc_figure(summary)
        test = summary.models[best].risk_groups.logrank
        logrank = None if test is None else {**test.model_dump(), "p": _p_is(test.p_value)}
    else:
        figures["roc"] = _roc_figure(summary)
        figures["calibration"] = _calibration_figure(summary)
        figures["decision_curve"] = _decision_figure(summary)
    figures["selection_frequency"] = _selection_figure(frequency)
    nomogram = summary.nomogram
    if nomogram:
        figures["nomogram"] = _nomogram_figure(nomogram)

    selection = summary.selection
    sets = selection.selected_per_set or [0]
    events = cohort.events
    validation = summary.validation
    study = summary.study.model_dump(mode="json")
    return {
        "title": summary.study.name,
        "css_title": _css_string(summary.study.name),
        "created": _when(summary.created),
        "version": summary.hepablate,
        "survival": survival,
        "endpoint": {
            "name": endpoint.name,
            "kind": "time to event" if survival else endpoint.kind,
            "horizon": endpoint.horizon_months,
            "description": endpoint.description,
            "excluded_rows": endpoint.excluded_rows,
        },
        "cohort": {
            **cohort.model_dump(),
            "no_events": cohort.rows - events,
            "event_percent": f"{events / max(cohort.rows, 1) * 100:.1f}",
        },
        "centres": _centres(summary, predictions),
        "validation_sentence": _validation_sentence(summary),
        "threshold": None
        if validation.threshold is None
        else {"value": f"{validation.threshold:.3f}", "source": validation.threshold_source},
        "table1": None if table1 is None else _records(table1),
        "missingness": None
        if missingness is None
        else {
            "rows": _records(missingness.head(MISSINGNESS_SHOWN)),
            "more": max(0, len(missingness) - MISSINGNESS_SHOWN),
            "columns": len(missingness),
            "share": None if missing_share is None else f"{missing_share * 100:.1f}",
        },
        "unseen": [
            {
                "split": entry.split,
                "columns": "; ".join(
                    f"{column}: {', '.join(found.values)} ({found.rows} rows)"
                    for column, found in entry.columns.items()
                ),
            }
            for entry in validation.unseen_categories
        ],
        "metric": METRIC_NAMES[summary.comparison.metric],
        "best": best,
        "comparison": _comparison(summary),
        "deep": _deep_sentences(summary),
        "per_repeat": _per_repeat(summary),
        "figures": figures,
        "logrank": logrank,
        "permutation": _permutation(summary),
        "by_centre": _by_centre(summary),
        "selection": {
            "candidates": selection.candidates_after_preparation,
            "sets": selection.outer_training_sets,
            "least": min(sets),
            "most": max(sets),
            "ever": int((frequency["frequency"] > 0).sum()),
            "steps": ", ".join(s.method for s in summary.study.selection) or "none",
        },
        "nomogram": None
        if not nomogram
        else {
            "model": nomogram.model,
            "intercept": f"{nomogram.intercept:.3f}",
            "rows": _nomogram_rows(nomogram),
        },
        "tripod": items,
        "tripod_todo": sum(item["status"] == "to complete" for item in items),
        "config_yaml": yaml.safe_dump(
            study, sort_keys=False, allow_unicode=True, default_flow_style=False
        ),
    }


def render_report(run_dir: Path) -> str:
    """The report's HTML, from the files of a run folder."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["estimate"] = _estimate_cell
    environment.filters["breakable"] = _breakable_name
    template = environment.get_template("study.html.j2")
    return template.render(**_context(run_dir))


def write_report(run_dir: Path) -> dict[str, Path]:
    """``report.html`` and ``report.pdf`` (A4, WeasyPrint) in ``run_dir``, from its files."""
    import logging

    from weasyprint import HTML  # type: ignore[import-untyped]

    page = render_report(run_dir)
    paths = {"report_html": run_dir / "report.html", "report_pdf": run_dir / "report.pdf"}
    paths["report_html"].write_text(page, encoding="utf-8")
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    HTML(string=page, base_url=str(run_dir)).write_pdf(paths["report_pdf"])
    return paths
