"""The TRIPOD+AI checklist, filled where a ``hepablate train`` run knows the answer.

Items and their numbering follow Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement:
updated guidance for reporting clinical prediction models that use regression or machine
learning methods. BMJ 2024;385:e078378. The topics below are short paraphrases; the paper has
the full wording and the explanation of each item. A run answers what it measured (data, sample
size, missing values, analysis, performance); the rest (context, eligibility, ethics, funding,
interpretation) is flagged for a person to write.
"""

from __future__ import annotations

from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary

__all__ = ["ITEMS", "checklist"]

# (item, section, topic)
ITEMS: tuple[tuple[str, str, str], ...] = (
    ("1", "Title", "Development or evaluation of a prediction model; population; outcome"),
    ("2", "Abstract", "Structured summary (TRIPOD+AI for Abstracts)"),
    ("3a", "Introduction", "Healthcare context and rationale; existing models"),
    ("3b", "Introduction", "Target population, place in the care pathway, intended users"),
    ("3c", "Introduction", "Known health inequalities between groups"),
    ("4", "Introduction", "Objectives: development, evaluation or both"),
    ("5a", "Methods: data", "Sources of data and their representativeness"),
    ("5b", "Methods: data", "Dates of accrual and end of follow-up"),
    ("6a", "Methods: participants", "Setting; number and location of centres"),
    ("6b", "Methods: participants", "Eligibility criteria"),
    ("6c", "Methods: participants", "Treatments received"),
    ("7", "Methods: data preparation", "Data pre-processing and quality checks"),
    ("8a", "Methods: outcome", "Outcome definition, how and when assessed"),
    ("8b", "Methods: outcome", "Qualifications of outcome assessors; blinding"),
    ("8c", "Methods: outcome", "Methods to assess the outcome consistently across groups"),
    ("9a", "Methods: predictors", "Choice of initial predictors and any pre-selection"),
    ("9b", "Methods: predictors", "Predictor definitions, how and when measured"),
    ("9c", "Methods: predictors", "Qualifications of predictor assessors; blinding"),
    ("10", "Methods: sample size", "How the study size was arrived at"),
    ("11", "Methods: missing data", "How missing data were handled"),
    ("12a", "Methods: analysis", "How the data were used (development, evaluation)"),
    ("12b", "Methods: analysis", "How predictors were handled (transformations, scaling)"),
    (
        "12c",
        "Methods: analysis",
        "Model type, building, hyperparameter tuning, internal validation",
    ),
    ("12d", "Methods: analysis", "Heterogeneity across clusters (centres)"),
    ("12e", "Methods: analysis", "Performance measures, with their rationale"),
    ("12f", "Methods: analysis", "Model updating (if done)"),
    ("12g", "Methods: analysis", "For evaluation: how predictions were calculated"),
    ("13", "Methods: class imbalance", "Class imbalance handling and its rationale"),
    ("14", "Methods: fairness", "Approaches to address model fairness"),
    ("15", "Methods: model output", "The model's output and any thresholds"),
    (
        "16",
        "Methods: training vs evaluation",
        "Differences between development and evaluation data",
    ),
    ("17", "Methods: ethics", "Ethics approval and consent"),
    ("18a", "Open science", "Funding"),
    ("18b", "Open science", "Conflicts of interest"),
    ("18c", "Open science", "Protocol"),
    ("18d", "Open science", "Registration"),
    ("18e", "Open science", "Data sharing"),
    ("18f", "Open science", "Code sharing"),
    ("19", "Patient and public involvement", "Involvement of patients and the public"),
    ("20a", "Results: participants", "Flow of participants, numbers with and without the outcome"),
    ("20b", "Results: participants", "Characteristics of participants (table 1), missingness"),
    ("20c", "Results: participants", "Comparison of development and evaluation data"),
    ("21", "Results: model development", "Participants and outcome events in each analysis"),
    ("22", "Results: model specification", "The full model (coefficients or code) for use"),
    ("23a", "Results: performance", "Performance estimates with confidence intervals"),
    ("23b", "Results: performance", "Heterogeneity of performance across groups or centres"),
    ("24", "Results: model updating", "Results of any model updating"),
    ("25", "Discussion", "Interpretation, including fairness"),
    ("26", "Discussion", "Limitations"),
    ("27a", "Discussion", "Usability: handling of poor-quality or unavailable input"),
    ("27b", "Discussion", "User interaction and required expertise"),
    ("27c", "Discussion", "Implications for future research"),
)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def checklist(
    summary: BinaryStudySummary | SurvivalStudySummary, missing_share: float | None = None
) -> list[dict[str, str]]:
    """Each item with ``status`` "filled by the run" (and the run's answer) or "to complete"."""
    study, cohort, endpoint = summary.study, summary.cohort, summary.endpoint
    validation, selection = summary.validation, summary.selection
    scheme = study.validation
    comparison = summary.comparison
    centres = cohort.centres
    steps = ", ".join(s.method for s in study.selection) or "none"
    models = ", ".join(
        f"{name} ({m.kind}{', clinical variables only' if m.clinical_only else ''})"
        for name, m in summary.models.items()
    )
    if scheme.scheme == "kfold":
        outer = (
            f"{scheme.repeats} x repeated {scheme.folds}-fold cross-validation, folds "
            "grouped by patient and stratified by the outcome"
        )
    else:
        outer = "train on some centres, test on the others: " + "; ".join(validation.splits)
    answers: dict[str, str] = {
        "6a": f"{len(centres)} centre(s): "
        + ", ".join(f"{c} ({n} rows)" for c, n in centres.items()),
        "8a": f"Endpoint {endpoint.name} ({endpoint.kind}"
        + (f", horizon {endpoint.horizon_months} months" if endpoint.horizon_months else "")
        + f"): {endpoint.description or 'see the cohort schema'}; rows without a known "
        f"outcome left out: {endpoint.excluded_rows}.",
        "9a": f"{cohort.candidate_columns} candidate columns from "
        + ", ".join(study.features.include)
        + (f", excluding {', '.join(study.features.exclude)}" if study.features.exclude else "")
        + f"; forced in: {', '.join(study.features.force) or 'none'}.",
        "11": "Imputed inside each training set ("
        + scheme.imputation
        + " for numbers, most frequent for categories); never with test rows"
        + (
            f"; {_pct(missing_share)} of predictor values missing."
            if missing_share is not None
            else "."
        ),
        "12a": f"All rows for development; performance by {outer}.",
        "12b": "Numbers standardised, categories one-hot encoded, inside each training set; "
        f"feature selection ({steps}) refitted inside every outer training set.",
        "12c": f"Models: {models}. Hyperparameters by grid search over {scheme.inner_folds} "
        "inner folds grouped by patient. " + outer + ".",
        "12e": "AUC, sensitivity, specificity, PPV, NPV at the stated threshold, Brier score, "
        "calibration intercept and slope, decision curves; DeLong tests between models; "
        "95% CIs by a bootstrap over patients."
        if comparison.metric == "auc"
        else "Harrell's and Uno's C-index, time-dependent AUC, integrated Brier score, "
        "Kaplan-Meier curves of risk groups with the log-rank test; 95% CIs by a bootstrap "
        "over patients.",
        "12g": "Each row predicted only by models fitted without it (out-of-fold), averaged "
        "over repeats.",
        "13": "No resampling or reweighting: probabilities stay calibrated; the threshold is "
        f"stated ({validation.threshold:.3f}, {validation.threshold_source})."
        if comparison.metric == "auc"
        else "No resampling or reweighting of events; no probability threshold (a "
        "time-to-event model is scored by the concordance of its risk score over time).",
        "15": "A probability of the outcome; sensitivity, specificity and predictive values at "
        f"threshold {validation.threshold:.3f} ({validation.threshold_source})."
        if comparison.metric == "auc"
        else "A risk score and a survival curve per row; no probability threshold: the risk "
        "groups (low, intermediate, high) are split at the tertiles of the out-of-fold risk "
        "scores.",
        "18f": "hepablate (open source); the study config is in study.yaml of this run.",
        "20a": f"{cohort.rows} rows from {cohort.patients} patients, "
        f"{cohort.events} with the outcome; {endpoint.excluded_rows} rows left out "
        "(outcome unknown).",
        "20b": "Table 1 and the missingness table of this report.",
        "21": f"{cohort.rows} rows, {cohort.events} events; "
        f"{selection.outer_training_sets} outer training sets.",
        "22": "The fitted models are in the run's bundle; the logistic model's coefficients "
        "and nomogram are in this report."
        if summary.nomogram
        else "The fitted models are in the run's bundle.",
        "23a": "The model comparison table of this report (all metrics with 95% CIs).",
    }
    if summary.by_centre:
        answers["23b"] = "Performance per test centre: the by-centre table of this report."
        answers["12d"] = "Validation by centre (train on the others)."
    items = []
    for item, section, topic in ITEMS:
        answer = answers.get(item)
        items.append(
            {
                "item": item,
                "section": section,
                "topic": topic,
                "status": "filled by the run" if answer else "to complete",
                "answer": answer or "",
            }
        )
    return items
