"""The study report of ``hepablate train``: one self-contained HTML page and the same as PDF.

Everything comes from the run folder (``metrics.json``, ``selected_features.csv``,
``table1.csv``, ``missingness.csv``), so a report can be rebuilt from a finished run. Figures
are matplotlib PNGs embedded as data URIs; the page loads nothing from the network. The PDF is
the same HTML rendered by WeasyPrint.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hepablate.report.tripod import checklist

__all__ = ["write_cohort_tables", "write_report"]

COLOURS = ["#1f5fa8", "#c8553d", "#2a9d8f", "#8d6cab", "#e9a03b", "#5c5c5c"]
BINARY_METRICS = (
    ("auc", "AUC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
    ("brier", "Brier"),
    ("calibration_intercept", "Cal. intercept"),
    ("calibration_slope", "Cal. slope"),
)
SURVIVAL_METRICS = (("harrell_c", "Harrell's C"), ("uno_c", "Uno's C"))


def write_cohort_tables(data: Any, run_dir: Path) -> None:
    """``table1.csv`` (clinical and geometry columns, overall and by outcome) and
    ``missingness.csv`` (every candidate column with missing values) of a ``StudyData``."""
    features: pd.DataFrame = data.X
    events = np.asarray(data.events, dtype=bool)
    columns = [c for c in features.columns if not str(c).startswith(("rad.", "deep."))]
    rows = []
    for column in columns:
        values = features[column]
        if pd.api.types.is_numeric_dtype(values):
            levels = sorted(values.dropna().unique())
            if set(levels) <= {0.0, 1.0}:  # a boolean
                rows.append(_categorical_row(column, "yes", values == 1.0, values, events))
            else:
                rows.append(_numeric_row(column, values, events))
        else:
            for level in sorted(values.dropna().unique()):
                rows.append(_categorical_row(column, str(level), values == level, values, events))
    pd.DataFrame(rows).to_csv(run_dir / "table1.csv", index=False)
    missing = features.isna().sum()
    share = missing / len(features)
    frame = pd.DataFrame(
        {"column": missing.index, "missing": missing.values, "share": share.values}
    )
    frame = frame[frame["missing"] > 0].sort_values("missing", ascending=False)
    frame.to_csv(run_dir / "missingness.csv", index=False)


def _median_iqr(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:.3g} ({q1:.3g} to {q3:.3g})"


def _numeric_row(column: str, values: pd.Series, events: np.ndarray) -> dict[str, Any]:
    return {
        "variable": column,
        "level": "median (IQR)",
        "all": _median_iqr(values),
        "with outcome": _median_iqr(values[events]),
        "without outcome": _median_iqr(values[~events]),
        "missing": int(values.isna().sum()),
    }


def _count(mask: pd.Series, known: pd.Series) -> str:
    n = int(known.sum())
    k = int((mask & known).sum())
    return f"{k} ({k / n * 100:.0f}%)" if n else "-"


def _categorical_row(
    column: str, level: str, mask: pd.Series, values: pd.Series, events: np.ndarray
) -> dict[str, Any]:
    known = values.notna()
    return {
        "variable": column,
        "level": level,
        "all": _count(mask, known),
        "with outcome": _count(mask[events], known[events]),
        "without outcome": _count(mask[~events], known[~events]),
        "missing": int((~known).sum()),
    }


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(name: str, figure: Any, caption: str) -> str:
    return (
        f'<figure><img data-figure="{name}" alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{_png(figure)}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
    )


def _axes(width: float = 5.2, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height))
    axes.grid(alpha=0.3)
    return figure, axes


def _ci(metric: dict[str, Any] | None, digits: int = 3) -> str:
    if not metric or metric.get("value") is None:
        return "-"
    text = f"{metric['value']:.{digits}f}"
    if metric.get("ci"):
        low, high = metric["ci"]
        text += f" ({low:.{digits}f} to {high:.{digits}f})"
    return text


def _table(frame: pd.DataFrame, css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _binary_figures(summary: dict[str, Any]) -> list[str]:
    models = summary["models"]
    figures = []
    figure, axes = _axes()
    for (name, scored), colour in zip(models.items(), COLOURS, strict=False):
        auc = scored["metrics"]["auc"]["value"]
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        axes.plot(scored["roc"]["fpr"], scored["roc"]["tpr"], color=colour, lw=2, label=label)
    axes.plot([0, 1], [0, 1], color="#999999", ls="--", lw=1)
    axes.set(xlabel="1 - specificity", ylabel="Sensitivity", title="ROC (out-of-fold)")
    axes.legend(fontsize=8, loc="lower right")
    figures.append(_figure("roc", figure, "ROC curves of all models, out-of-fold predictions"))

    figure, axes = _axes()
    top = 0.05
    for (name, scored), colour in zip(models.items(), COLOURS, strict=False):
        points = scored["calibration"]
        axes.plot(points["predicted"], points["observed"], "o-", color=colour, label=name)
        top = max(top, *points["predicted"], *points["observed"])
    axes.plot([0, top], [0, top], color="#999999", ls="--", lw=1)
    axes.set(xlabel="Predicted probability", ylabel="Observed proportion", title="Calibration")
    axes.legend(fontsize=8)
    figures.append(
        _figure("calibration", figure, "Calibration: observed against predicted, by decile")
    )

    figure, axes = _axes()
    first = next(iter(models.values()))["decision_curve"]
    for (name, scored), colour in zip(models.items(), COLOURS, strict=False):
        curve = scored["decision_curve"]
        axes.plot(curve["thresholds"], curve["model"], color=colour, lw=2, label=name)
    axes.plot(first["thresholds"], first["treat_all"], color="#444444", lw=1, label="treat all")
    axes.plot(first["thresholds"], first["treat_none"], color="#999999", lw=1, label="treat none")
    prevalence = summary["cohort"]["events"] / max(summary["cohort"]["rows"], 1)
    axes.set_ylim(-0.05, max(prevalence * 1.2, 0.05))
    axes.set(xlabel="Threshold probability", ylabel="Net benefit", title="Decision curve")
    axes.legend(fontsize=8)
    figures.append(_figure("decision_curve", figure, "Decision curves (net benefit)"))
    return figures


def _survival_figures(summary: dict[str, Any]) -> list[str]:
    best = summary["comparison"]["best"]
    scored = summary["models"][best]
    figures = []
    figure, axes = _axes()
    for group, colour in zip(scored["risk_groups"]["groups"], COLOURS, strict=False):
        km = group["km"]
        if km["time"]:
            axes.step(
                km["time"],
                km["survival"],
                where="post",
                color=colour,
                lw=2,
                label=f"{group['name']} (n={group['n']}, events {group['events']})",
            )
    logrank = scored["risk_groups"].get("logrank")
    title = f"Risk groups of {best}"
    if logrank:
        title += f" (log-rank p = {logrank['p_value']:.2g})"
    axes.set(xlabel="Months", ylabel="Event-free proportion", title=title, ylim=(0, 1.02))
    axes.legend(fontsize=8)
    figures.append(
        _figure("kaplan_meier", figure, "Kaplan-Meier curves of the out-of-fold risk groups")
    )
    figure, axes = _axes()
    for (name, model), colour in zip(summary["models"].items(), COLOURS, strict=False):
        td = model["metrics"]["td_auc"]
        if td["times"]:
            axes.plot(td["times"], td["auc"], "o-", color=colour, label=name)
    axes.axhline(0.5, color="#999999", ls="--", lw=1)
    axes.set(xlabel="Months", ylabel="Time-dependent AUC", title="Time-dependent AUC")
    axes.legend(fontsize=8)
    figures.append(_figure("td_auc", figure, "Cumulative/dynamic AUC over time"))
    return figures


def _selection_figure(frequency: pd.DataFrame) -> str:
    top = frequency[frequency["frequency"] > 0].head(30).iloc[::-1]
    figure, axes = _axes(6.5, max(2.5, 0.22 * len(top) + 0.8))
    axes.barh(top["feature"], top["frequency"], color=COLOURS[0])
    axes.set(xlabel="Share of outer training sets", xlim=(0, 1), title="Selection frequency")
    axes.tick_params(axis="y", labelsize=7)
    return _figure("selection_frequency", figure, "The 30 most often selected features")


def _nomogram_figure(nomogram: dict[str, Any]) -> str:
    features = [f for f in nomogram["features"] if f["points_range"][1] > 0.5][:12]
    figure, axes = _axes(7.0, 0.45 * (len(features) + 2) + 0.8)
    rows = len(features) + 1
    for i, feature in enumerate(features):
        y = rows - i
        low, high = feature["model_value_range"]
        points = feature["points_range"][1]
        start, end = (0.0, points)
        axes.plot([start, end], [y, y], color=COLOURS[0], lw=3)
        left, right = (low, high) if feature["risk_rises_with_value"] else (high, low)
        axes.text(start, y + 0.18, f"{left:.2g}", fontsize=7, ha="center")
        axes.text(end, y + 0.18, f"{right:.2g}", fontsize=7, ha="center")
        axes.text(-3, y, feature["feature"], fontsize=7, ha="right", va="center")
    mapping = nomogram["points_to_probability"]
    axes.plot([mapping["points"][0], mapping["points"][-1]], [0.6, 0.6], color=COLOURS[1], lw=3)
    for points, probability in zip(mapping["points"], mapping["probability"], strict=True):
        axes.text(points, 0.8, f"{probability:.2f}", fontsize=7, ha="center")
    axes.text(-3, 0.6, "total points -> probability", fontsize=7, ha="right", va="center")
    axes.set(xlabel="Points", yticks=[], title=f"Nomogram of {nomogram['model']}")
    axes.set_xlim(left=-2)
    return _figure(
        "nomogram",
        figure,
        "Nomogram: points per feature (values as the model sees them, standardised), "
        "total points to probability",
    )


def _comparison(summary: dict[str, Any], survival: bool) -> pd.DataFrame:
    wanted = SURVIVAL_METRICS if survival else BINARY_METRICS
    best = summary["comparison"]["best"]
    delong = {d["against"]: d for d in summary["comparison"].get("delong") or []}
    rows = []
    for name, scored in summary["models"].items():
        row: dict[str, Any] = {
            "model": name + (" (best)" if name == best else ""),
            "kind": scored["kind"] + (", clinical only" if scored["clinical_only"] else ""),
        }
        for key, label in wanted:
            row[label] = _ci(scored["metrics"].get(key))
        if survival:
            row["mean td-AUC"] = _ci(scored["metrics"]["td_auc"]["mean_auc"])
            row["integrated Brier"] = _ci(scored["metrics"].get("integrated_brier"))
        else:
            p = delong.get(name, {}).get("p_value")
            row["DeLong p vs best"] = "-" if p is None else f"{p:.3g}"
        spread = [v for v in scored["per_repeat"] if v is not None]
        row["per repeat"] = ", ".join(f"{v:.3f}" for v in spread)
        rows.append(row)
    return pd.DataFrame(rows)


STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #222; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; font-size: 13px; line-height: 1.45; }
h1 { font-size: 22px; margin-bottom: 0.2em; } h2 { font-size: 17px; margin-top: 1.6em;
     border-bottom: 1px solid #ccc; } .meta { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 11.5px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } tr.todo td { background: #fff4e0; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; max-width: 100%; }
figure img { max-width: 100%; } figcaption { font-size: 11px; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; font-size: 11px; white-space: pre-wrap; }
.warning { color: #a33; font-weight: bold; }
@page { size: A4; margin: 14mm; } @media print { body { max-width: none; } }
"""


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def render(run_dir: Path) -> str:
    """The report's HTML from a run folder."""
    summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    frequency = pd.read_csv(run_dir / "selected_features.csv")
    table1 = _read_csv(run_dir / "table1.csv")
    missingness = _read_csv(run_dir / "missingness.csv")
    survival = summary["comparison"]["metric"] == "harrell_c"
    study, cohort, endpoint = summary["study"], summary["cohort"], summary["endpoint"]
    validation = summary["validation"]
    parts: list[str] = []
    add = parts.append
    add(f"<h1>{html.escape(study['name'])}</h1>")
    add(
        f'<p class="meta">hepablate {html.escape(summary["hepablate"])}, run '
        f"{html.escape(summary['created'])}. Endpoint <b>{html.escape(endpoint['name'])}</b> "
        f"({html.escape(endpoint['kind'])}"
        + (
            f", horizon {endpoint['horizon_months']} months"
            if endpoint.get("horizon_months")
            else ""
        )
        + ").</p>"
    )
    centres = ", ".join(f"{c}: {n}" for c, n in cohort["centres"].items())
    scheme = study["validation"]
    if scheme["scheme"] == "kfold":
        how = (
            f"{scheme['repeats']} x repeated {scheme['folds']}-fold cross-validation grouped by "
            f"patient and stratified by the outcome; feature selection and tuning "
            f"({scheme['inner_folds']} inner grouped folds) refitted inside every training set"
        )
    else:
        how = "validation by centre: " + "; ".join(validation["splits"])
    add(
        f"<p>{cohort['rows']} rows from {cohort['patients']} patients, {cohort['events']} "
        f"with the outcome; {endpoint['excluded_rows']} rows left out because their outcome "
        f"is unknown. Centres (rows): {html.escape(centres)}. {cohort['candidate_columns']} "
        f"candidate columns. Validation: {html.escape(how)}.</p>"
    )
    add("<h2>Model comparison</h2>")
    add(
        "<p>Each row's out-of-fold prediction, averaged over repeats; 95% CIs by a bootstrap "
        f"over patients ({validation['threshold']:.3f} threshold for sensitivity to NPV: "
        f"{html.escape(validation['threshold_source'])}).</p>"
    )
    add(_table(_comparison(summary, survival)))
    best = summary["comparison"]["best"]
    add(f"<p>Best by {summary['comparison']['metric']}: <b>{html.escape(best)}</b>.</p>")
    figures = _survival_figures(summary) if survival else _binary_figures(summary)
    add("".join(figures))
    if summary.get("by_centre"):
        add("<h2>Performance by test centre</h2>")
        key = "harrell_c" if survival else "auc"
        rows = [
            {"test set": split, **{name: _ci(m.get(key)) for name, m in models.items()}}
            for split, models in summary["by_centre"].items()
        ]
        add(_table(pd.DataFrame(rows)))
    permutation = summary.get("permutation")
    add("<h2>Label permutation</h2>")
    if permutation:
        for run in permutation["runs"]:
            contains = run["ci"] is not None and run["ci"][0] <= 0.5 <= run["ci"][1]
            verdict = (
                "contains 0.5: with the outcomes shuffled the pipeline learns nothing, as it "
                "should; nothing leaks."
                if contains
                else "does NOT contain 0.5: investigate a leak before trusting these results."
            )
            css = "" if contains else ' class="warning"'
            add(
                f"<p{css}>{html.escape(permutation['model'])} with shuffled outcomes "
                f"({html.escape(permutation['folds'])}): {permutation['metric']} "
                f"{_ci(run)}; the CI {verdict}</p>"
            )
    else:
        add("<p>Not run (validation.permutations is 0).</p>")
    add("<h2>Feature selection</h2>")
    sets = summary["selection"]["selected_per_set"]
    add(
        f"<p>{summary['selection']['candidates_after_preparation']} features after preparation; "
        f"{min(sets)} to {max(sets)} selected per outer training set "
        f"({len(sets)} sets). Steps: "
        + html.escape(", ".join(s["method"] for s in study["selection"]) or "none")
        + ".</p>"
    )
    add(_selection_figure(frequency))
    add(_table(frequency[frequency["frequency"] > 0].head(30).round(3)))
    if summary.get("nomogram"):
        nomogram = summary["nomogram"]
        add("<h2>Logistic model as a nomogram</h2>")
        add(_nomogram_figure(nomogram))
        rows = [
            {
                "feature": f["feature"],
                "coefficient (per SD)": f"{f['coefficient']:.3f}",
                "odds ratio": f"{f['odds_ratio']:.3f}",
                "points": f"0 to {f['points_range'][1]:.0f}",
            }
            for f in nomogram["features"]
        ]
        add(_table(pd.DataFrame(rows)))
    add("<h2>Table 1</h2>")
    add(_table(table1) if table1 is not None else "<p>Not available.</p>")
    add("<h2>Missing values</h2>")
    if missingness is not None and len(missingness):
        shown = missingness.assign(share=(missingness["share"] * 100).round(1).astype(str) + "%")
        add(_table(shown))
        missing_share = None
    else:
        add("<p>No missing values among the candidate columns.</p>")
        missing_share = 0.0
    add("<h2>TRIPOD+AI checklist</h2>")
    add(
        "<p>Collins et al., BMJ 2024;385:e078378 (topics paraphrased). Rows marked "
        '"to complete" need the authors; the others are answered by this run.</p>'
    )
    rows_html = "".join(
        f'<tr class="{"todo" if item["status"] == "to complete" else "done"}">'
        f"<td>{item['item']}</td><td>{html.escape(item['section'])}</td>"
        f"<td>{html.escape(item['topic'])}</td><td>{item['status']}</td>"
        f"<td>{html.escape(item['answer'])}</td></tr>"
        for item in checklist(summary, missing_share)
    )
    add(
        "<table><thead><tr><th>item</th><th>section</th><th>topic</th><th>status</th>"
        f"<th>answer</th></tr></thead><tbody>{rows_html}</tbody></table>"
    )
    add("<h2>Study config</h2>")
    add(f"<pre>{html.escape(yaml.safe_dump(study, sort_keys=False))}</pre>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(study['name'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(run_dir: Path) -> dict[str, Path]:
    """``report.html`` and ``report.pdf`` in ``run_dir`` (from its metrics and tables)."""
    import logging

    from weasyprint import HTML

    page = render(run_dir)
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    html_path.write_text(page, encoding="utf-8")
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=page, base_url=str(run_dir)).write_pdf(pdf_path)
    return {"report_html": html_path, "report_pdf": pdf_path}
