"""A prediction for a new patient from a verified bundle: per tumour, the risk, its uncertainty,
the risk group, what drives it and how it would change with the achieved ablative margin.

The patient is measured by the same extraction as the training rows (the bundle's
ExtractionConfig). Contributions: the model's own integrated gradients when it has them (deep
networks, on the log-odds of its selected inputs), otherwise SHAP values (permutation
explainer) of the probability over the FeatureTable columns the model uses, against the
bundle's reference patient (training medians and modes; no training patient's row is stored).
The what-if curve replaces the minimal ablative margin and holds every other input, the other
margin measures and the images included: it describes the model, not what an ablation would
do. Input checks list, per tumour, each input the model uses that is missing (imputed), outside
the training values' 1st-99th percentiles or a category training never saw: where the
prediction rests on more than the training data showed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.bundle import Bundle, BundleError, _plain
from hepablate.study.pipeline import unknown_categories_quiet

__all__ = ["MARGIN", "predict_cohort", "predict_table"]

MARGIN = "geom.minimal_ablative_margin_mm"
WHAT_IF_MM = np.arange(0.0, 10.01, 0.5)
WHAT_IF_NOTE = (
    "model-based, not causal: the model's prediction with the minimal ablative margin set to "
    "each value and every other input held (including the other margin measures and the "
    "images); it is not an estimate of what a different ablation would achieve"
)


def predict_cohort(bundle: Bundle, cohort: Any) -> dict[str, Any]:
    """Extract a (one-patient) cohort as the bundle's training rows were, then predict."""
    from hepablate.features.extract import ExtractionConfig, extract

    config = ExtractionConfig.model_validate(bundle.extraction or {})
    # The same feature values, without what only training uses: the perturbed re-measurements
    # (they feed the robustness ICC) and, for a model without an image branch, the crops.
    # (Deep features from an encoder bundle need the crops too.)
    image_model = "crops" in bundle.pipeline[-1].get_params() or config.deep is not None
    config = config.model_copy(
        update={
            "robustness": config.robustness.model_copy(update={"fraction": 0.0}),
            "crops": config.crops.model_copy(update={"enabled": image_model}),
        }
    )
    with tempfile.TemporaryDirectory(prefix="hepablate-predict-") as work:
        # A cache folder keeps the crops an image model reads; it is thrown away after.
        table = extract(cohort, config, workers=1, cache=Path(work) / "cache")
        return predict_table(bundle, table)


def _used_columns(bundle: Bundle) -> list[str]:
    """The FeatureTable columns behind the model's selected inputs (a one-hot input
    ``clin.aetiology_HBV`` comes from ``clin.aetiology``)."""
    used = []
    for column in bundle.schema["columns"]:
        if any(s == column or s.startswith(f"{column}_") for s in bundle.schema["selected"]):
            used.append(column)
    return used


def _shap_contributions(
    bundle: Bundle, row: pd.DataFrame, used: list[str]
) -> tuple[list[dict[str, Any]], str]:
    import shap

    reference = bundle.schema["reference"]
    types = bundle.schema["types"]
    levels = {
        c: sorted({str(reference[c]), str(row[c].iloc[0])}) for c in used if types[c] == "category"
    }

    def encode(values: dict[str, Any]) -> list[float]:
        return [
            float(levels[c].index(str(values[c]))) if c in levels else float(values[c])
            for c in used
        ]

    def model(codes: np.ndarray) -> np.ndarray:
        frame = pd.concat([row] * len(codes))
        for j, column in enumerate(used):
            values = codes[:, j]
            if column in levels:
                frame[column] = [levels[column][int(v)] for v in values]
            else:
                frame[column] = values
        return bundle.risk(bundle.inputs(frame))

    base = {c: reference[c] if reference[c] is not None else row[c].iloc[0] for c in used}
    patient = np.array([encode({str(k): v for k, v in row.iloc[0].items()})])
    background = np.array([encode(base)])
    explainer = shap.PermutationExplainer(model, shap.maskers.Independent(background))
    values = explainer(patient, max_evals=max(2 * len(used) + 1, 10), silent=True).values[0]
    contributions = [
        {
            "feature": c,
            "value": _plain(row[c].iloc[0]),
            "reference": _plain(reference[c]),
            "contribution": float(v),
        }
        for c, v in zip(used, values, strict=True)
    ]
    method = (
        "SHAP (permutation explainer) of the predicted "
        + ("risk score" if bundle.survival else "probability")
        + " against the reference patient (training medians and modes)"
    )
    return contributions, method


def _contributions(bundle: Bundle, row: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    estimator = bundle.pipeline[-1]
    if hasattr(estimator, "explain"):
        prepared = bundle.pipeline[:-1].transform(bundle.inputs(row))
        values = np.asarray(estimator.explain(prepared))[0]
        contributions = [
            {"feature": str(c), "value": _plain(prepared[c].iloc[0]), "contribution": float(v)}
            for c, v in zip(prepared.columns, values, strict=True)
        ]
        output = "log hazard ratio" if bundle.survival else "log-odds"
        return contributions, (
            f"integrated gradients of the {output} over the model's (standardised) inputs, from "
            "the training mean"
        )
    used = _used_columns(bundle)
    if not used:
        return [], "the model uses no column of the FeatureTable"
    return _shap_contributions(bundle, row, used)


def _what_if(bundle: Bundle, row: pd.DataFrame) -> dict[str, Any]:
    uses = MARGIN in _used_columns(bundle)
    if MARGIN not in row.columns or MARGIN not in bundle.schema["columns"]:
        return {"available": False, "reason": f"the model has no {MARGIN} input"}
    frame = pd.concat([row] * len(WHAT_IF_MM))
    frame[MARGIN] = WHAT_IF_MM
    risk = bundle.risk(bundle.inputs(frame))
    return {
        "available": True,
        "feature": MARGIN,
        "model_uses_it": uses,
        "margin_mm": WHAT_IF_MM.tolist(),
        "risk": [float(r) for r in risk],
        "achieved_margin_mm": _plain(row[MARGIN].iloc[0]),
        "note": WHAT_IF_NOTE
        if uses
        else "the model does not use the margin: its prediction does not change with it",
    }


def predict_table(bundle: Bundle, table: pd.DataFrame) -> dict[str, Any]:
    """Predictions for every row (tumour) of a FeatureTable: see the module doc."""
    if table.empty:
        raise BundleError("the FeatureTable has no rows to predict")
    table = bundle.rows(table)
    bundle.set_crops(table.attrs.get("hepablate", {}).get("crops"))
    inputs = bundle.inputs(table)
    checks = bundle.input_checks(inputs, _used_columns(bundle))
    with unknown_categories_quiet():  # an unseen category is reported in input_checks
        return _predict(bundle, table, inputs, checks)


def _predict(
    bundle: Bundle, table: pd.DataFrame, inputs: pd.DataFrame, checks: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    risk = bundle.risk(inputs)
    estimator = bundle.pipeline[-1]
    prepared = bundle.pipeline[:-1].transform(inputs)
    uncertainty = (
        np.asarray(estimator.predict_uncertainty(prepared), dtype=float)
        if hasattr(estimator, "predict_uncertainty")
        else None
    )
    times = bundle.thresholds.get("evaluation_times_months")
    curves = None
    if bundle.survival and times:
        functions = estimator.predict_survival_function(prepared)
        curves = []
        for function in functions:
            low, high = function.domain
            curves.append([float(v) for v in function(np.clip(times, low, high))])
    rows = []
    for i, index in enumerate(table.index):
        row = table.iloc[[i]]
        key = index if isinstance(index, tuple) else (index,)
        contributions, method = _contributions(bundle, row)
        contributions.sort(key=lambda c: -abs(c["contribution"]))
        rows.append(
            {
                "patient_id": str(key[0]),
                "tumour_id": int(key[1]) if len(key) > 1 else None,
                ("risk_score" if bundle.survival else "probability"): float(risk[i]),
                "survival": None
                if curves is None
                else {"months": list(times or []), "probability": curves[i]},
                "uncertainty": None if uncertainty is None else float(uncertainty[i]),
                "uncertainty_method": "standard deviation over the deep ensemble's members"
                if uncertainty is not None
                else "none: the model is a single fitted estimator, not an ensemble",
                "risk_group": bundle.risk_group(float(risk[i])),
                "contributions": contributions,
                "contribution_method": method,
                "what_if_margin": _what_if(bundle, row),
                "input_checks": checks[i],
            }
        )
    metrics = bundle.metrics["metrics"]
    headline = "harrell_c" if bundle.survival else "auc"
    return _plain(
        {
            "bundle": {
                "id": bundle.id,
                "path": str(bundle.path),
                "model": bundle.manifest["model"],
                "kind": bundle.manifest["kind"],
                "created": bundle.manifest["created"],
                "versions": bundle.manifest["versions"],
            },
            "endpoint": bundle.manifest["endpoint"],
            "validation": {
                "metric": headline,
                "value": (metrics.get(headline) or {}).get("value"),
                "ci": (metrics.get(headline) or {}).get("ci"),
                "cohort": bundle.metrics["cohort"],
                "scheme": bundle.metrics["validation"]["scheme"],
            },
            "risk_groups": bundle.thresholds["risk_groups"],
            "threshold": bundle.thresholds["threshold"],
            "predictions": rows,
        }
    )
