"""What drives a bundle's prediction for a patient, and how it changes with the margin.

Contributions: the model's own integrated gradients when it has them (the networks), otherwise
Shapley values over the FeatureTable columns the model uses against the bundle's reference
patient, exact up to :data:`EXACT_SHAP_MAX_COLUMNS` differing columns, else SHAP's permutation
estimate from a fixed seed (``predict.py``'s doc says why). The what-if curve of the risk over
the minimal ablative margin, every other input held: model-based, not causal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hepablate.bundle.contents import plain
from hepablate.bundle.load import Bundle

__all__ = [
    "EXACT_SHAP_MAX_COLUMNS",
    "MARGIN",
    "SHAP_PERMUTATIONS",
    "SHAP_SEED",
    "WHAT_IF_MM",
    "cell_value",
    "contributions_of",
    "shapley_values",
    "used_columns",
    "what_if",
]

MARGIN = "geom.minimal_ablative_margin_mm"
WHAT_IF_MM = np.arange(0.0, 10.01, 0.5)
WHAT_IF_NOTE = (
    "model-based, not causal: the model's prediction with the minimal ablative margin set to "
    "each value and every other input held (including the other margin measures and the "
    "images); it is not an estimate of what a different ablation would achieve"
)
# Exact Shapley values cost 2^k model evaluations for k columns that differ from the reference
# (4096 rows at 12, evaluated in a few batches); beyond, the permutation estimate.
EXACT_SHAP_MAX_COLUMNS = 12
# Antithetic permutations of the estimate (each exact for interactions of up to two inputs),
# from a fixed seed: the same contributions in every run, and the top ones stable across seeds.
SHAP_PERMUTATIONS = 25
SHAP_SEED = 0
_SHAP_BATCH = 2048


def used_columns(bundle: Bundle) -> list[str]:
    """The FeatureTable columns behind the model's selected inputs (a one-hot input
    ``clin.aetiology_HBV`` comes from ``clin.aetiology``)."""
    used = []
    for column in bundle.schema["columns"]:
        if any(s == column or s.startswith(f"{column}_") for s in bundle.schema["selected"]):
            used.append(column)
    return used


def cell_value(value: Any) -> Any:
    """A FeatureTable cell with every kind of missing (None, NaN, pd.NA, NaT) as None."""
    return None if pd.isna(value) else value


def shapley_values(
    model: Any, patient: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, str]:
    """Shapley values of ``model`` (rows of codes -> outputs) at ``patient`` against the one
    ``reference`` row, and how they were computed: exact over every coalition of the columns
    that differ (at most :data:`EXACT_SHAP_MAX_COLUMNS`), else SHAP's permutation estimate from
    :data:`SHAP_SEED`. NaN codes are missing values and differ from any reference value."""
    import shap

    same = np.isclose(patient, reference) | (np.isnan(patient) & np.isnan(reference))
    differing = int((~same).sum())
    masker = shap.maskers.Independent(reference[None, :])
    if differing <= EXACT_SHAP_MAX_COLUMNS:
        explainer = shap.ExactExplainer(model, masker)
        values = explainer(patient[None, :], batch_size=_SHAP_BATCH, silent=True).values[0]
        return np.asarray(values, dtype=float), "exact Shapley values (SHAP exact explainer)"
    # SHAP seeds NumPy's global generator: keep the caller's stream as it was.
    state = np.random.get_state()  # noqa: NPY002 (SHAP uses the legacy global generator)
    try:
        explainer = shap.PermutationExplainer(model, masker, seed=SHAP_SEED)
        evaluations = SHAP_PERMUTATIONS * (2 * differing + 1)
        values = explainer(
            patient[None, :], max_evals=evaluations, batch_size=_SHAP_BATCH, silent=True
        ).values[0]
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return np.asarray(values, dtype=float), (
        f"SHAP permutation explainer ({SHAP_PERMUTATIONS} antithetic permutations, seed "
        f"{SHAP_SEED})"
    )


def _shap_contributions(
    bundle: Bundle, row: pd.DataFrame, used: list[str]
) -> tuple[list[dict[str, Any]], str]:
    reference = bundle.schema["reference"]
    types = bundle.schema["types"]
    values = {c: cell_value(row[c].iloc[0]) for c in used}
    base = {c: reference[c] if reference[c] is not None else values[c] for c in used}
    categorical = [types[c] == "category" for c in used]

    # A category is coded 0 (the reference's level) or 1 (the patient's, None when missing);
    # a number is itself, NaN when missing (the model's preparation imputes it).
    def number(value: Any) -> float:
        return float("nan") if value is None else float(value)

    patient = np.array(
        [
            float(str(values[c]) != str(base[c])) if is_cat else number(values[c])
            for c, is_cat in zip(used, categorical, strict=True)
        ]
    )
    background = np.array(
        [0.0 if is_cat else number(base[c]) for c, is_cat in zip(used, categorical, strict=True)]
    )

    # The model's inputs of the patient, typed once; each coalition changes the used columns.
    inputs = bundle.inputs(row)
    typed = {c: (np.nan if values[c] is None else str(values[c])) for c in used}
    typed_base = {c: (np.nan if base[c] is None else str(base[c])) for c in used}

    def model(codes: np.ndarray) -> np.ndarray:
        frame = inputs.iloc[np.zeros(len(codes), dtype=int)]
        columns = {}
        for j, column in enumerate(used):
            if categorical[j]:
                chosen = [typed[column] if code else typed_base[column] for code in codes[:, j]]
                columns[column] = pd.Series(chosen, index=frame.index, dtype=object)
            else:
                columns[column] = pd.Series(codes[:, j], index=frame.index, dtype=float)
        return bundle.risk(frame.assign(**columns))

    shapley, how = shapley_values(model, patient, background)
    contributions = [
        {
            "feature": c,
            "value": plain(values[c]),
            "reference": plain(reference[c]),
            "contribution": float(v),
        }
        for c, v in zip(used, shapley, strict=True)
    ]
    method = (
        f"Shapley values of the predicted {'risk score' if bundle.survival else 'probability'} "
        f"against the reference patient (training medians and modes): {how}"
    )
    return contributions, method


def contributions_of(bundle: Bundle, row: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    estimator = bundle.pipeline[-1]
    if hasattr(estimator, "explain"):
        prepared = bundle.pipeline[:-1].transform(bundle.inputs(row))
        values = np.asarray(estimator.explain(prepared))[0]
        contributions = [
            {"feature": str(c), "value": plain(prepared[c].iloc[0]), "contribution": float(v)}
            for c, v in zip(prepared.columns, values, strict=True)
        ]
        output = "log hazard ratio" if bundle.survival else "log-odds"
        return contributions, (
            f"integrated gradients of the {output} over the model's (standardised) inputs, from "
            "the training mean"
        )
    used = used_columns(bundle)
    if not used:
        return [], "the model uses no column of the FeatureTable"
    return _shap_contributions(bundle, row, used)


def what_if(bundle: Bundle, row: pd.DataFrame) -> dict[str, Any]:
    uses = MARGIN in used_columns(bundle)
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
        "achieved_margin_mm": plain(cell_value(row[MARGIN].iloc[0])),
        "note": WHAT_IF_NOTE
        if uses
        else "the model does not use the margin: its prediction does not change with it",
    }
