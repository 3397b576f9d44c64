"""The template context of the study report: everything the page shows, from a run folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hepablate.report.figures import (
    calibration_figure,
    decision_figure,
    kaplan_meier_figure,
    nomogram_figure,
    roc_figure,
    selection_figure,
    td_auc_figure,
)
from hepablate.report.formatting import METRIC_NAMES, css_string, format_created, p_is
from hepablate.report.sections import (
    by_centre_table,
    centre_rows,
    comparison_table,
    deep_sentences,
    nomogram_rows,
    permutation_runs,
    repeat_rows,
    validation_sentence,
)
from hepablate.report.tripod import checklist
from hepablate.schemas import read_metrics
from hepablate.schemas.metrics import SurvivalStudySummary

__all__ = [
    "report_context",
]

MISSINGNESS_SHOWN = 30


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


def report_context(run_dir: Path) -> dict[str, Any]:
    """Everything the report template shows, from the files of a run folder."""
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
        figures["kaplan_meier"] = kaplan_meier_figure(summary)
        figures["td_auc"] = td_auc_figure(summary)
        test = summary.models[best].risk_groups.logrank
        logrank = None if test is None else {**test.model_dump(), "p": p_is(test.p_value)}
    else:
        figures["roc"] = roc_figure(summary)
        figures["calibration"] = calibration_figure(summary)
        figures["decision_curve"] = decision_figure(summary)
    figures["selection_frequency"] = selection_figure(frequency)
    nomogram = summary.nomogram
    if nomogram:
        figures["nomogram"] = nomogram_figure(nomogram)

    selection = summary.selection
    sets = selection.selected_per_set or [0]
    events = cohort.events
    validation = summary.validation
    study = summary.study.model_dump(mode="json")
    return {
        "title": summary.study.name,
        "css_title": css_string(summary.study.name),
        "created": format_created(summary.created),
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
        "centres": centre_rows(summary, predictions),
        "validation_sentence": validation_sentence(summary),
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
        "comparison": comparison_table(summary),
        "deep": deep_sentences(summary),
        "per_repeat": repeat_rows(summary),
        "figures": figures,
        "logrank": logrank,
        "permutation": permutation_runs(summary),
        "by_centre": by_centre_table(summary),
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
            "rows": nomogram_rows(nomogram),
        },
        "tripod": items,
        "tripod_todo": sum(item["status"] == "to complete" for item in items),
        "config_yaml": yaml.safe_dump(
            study, sort_keys=False, allow_unicode=True, default_flow_style=False
        ),
    }
