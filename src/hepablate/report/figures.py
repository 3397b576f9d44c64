"""The figures of the study report, each a matplotlib PNG with its alt text and caption.

ROC, calibration and decision curves (binary endpoints); Kaplan-Meier risk groups and the
time-dependent AUC (time-to-event endpoints); the selection frequency and the nomogram.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hepablate.report.formatting import Summary, p_is
from hepablate.schemas.metrics import (
    BinaryModelSummary,
    BinaryStudySummary,
    Nomogram,
    SurvivalModelSummary,
    SurvivalStudySummary,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BAR",
    "COLOURS",
    "calibration_figure",
    "decision_figure",
    "kaplan_meier_figure",
    "nomogram_figure",
    "roc_figure",
    "selection_figure",
    "td_auc_figure",
]

# One colour per model, in the order of the ranking (the best model first).
COLOURS = ("#1f5fa8", "#c8553d", "#2a9d8f", "#8d6cab", "#e9a03b", "#5c5c5c")
GREY, LIGHT_GREY, BAR = "#444444", "#9a9a9a", "#7f8c99"
NOMOGRAM_FEATURE, NOMOGRAM_PROBABILITY = "#33475b", "#8a2f1f"
DPI = 100
SELECTION_SHOWN = 30
NOMOGRAM_SHOWN = 15


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


def roc_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    """ROC curves of every model on the out-of-fold predictions."""
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


def calibration_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    """Calibration per decile of the prediction, every model, with the ideal diagonal."""
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


def decision_figure(summary: BinaryStudySummary) -> dict[str, Any]:
    """Decision curves of every model, of treating all and of treating none."""
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


def kaplan_meier_figure(summary: SurvivalStudySummary) -> dict[str, Any]:
    """Kaplan-Meier curves of the best model's risk groups, with the log-rank p-value."""
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
    p = p_is(logrank.p_value if logrank else None)
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


def td_auc_figure(summary: SurvivalStudySummary) -> dict[str, Any]:
    """The time-dependent AUC of every model at each evaluation time."""
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


def selection_figure(frequency: pd.DataFrame) -> dict[str, Any]:
    """How often the most often selected features were kept across outer training sets."""
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


def nomogram_figure(nomogram: Nomogram) -> dict[str, Any]:
    """The logistic model's nomogram: a points axis per feature, total points to probability."""
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
