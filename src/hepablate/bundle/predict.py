"""A prediction for a new patient from a verified bundle: per tumour, the risk, its uncertainty,
the risk group, what drives it and how it would change with the achieved ablative margin.

The patient is measured by the same extraction as the training rows (the bundle's
ExtractionConfig). Contributions: the model's own integrated gradients when it has them (deep
networks, on the log-odds of its selected inputs), otherwise Shapley values of the probability
(or risk score) over the FeatureTable columns the model uses, against the bundle's reference
patient (training medians and modes; no training patient's row is stored): every column the
patient shares with the reference contributes nothing, and the others are the players of the
game "the model with these columns at the patient's values, the rest at the reference's".
They are exact (SHAP's exact explainer, all 2^k coalitions) when at most
:data:`EXACT_SHAP_MAX_COLUMNS` columns differ from the reference, and otherwise estimated by
SHAP's permutation explainer over :data:`SHAP_PERMUTATIONS` antithetic permutations drawn from
a fixed seed. Either way they add up to the prediction minus the reference's, and the same
bundle and patient give the same contributions in every run and every process. (A tree
explainer is not used for the tree models: it explains the model's inputs after the
preparation, where a category is several one-hot columns, not the FeatureTable's columns.)

The what-if curve replaces the minimal ablative margin and holds every other input, the other
margin measures and the images included: it describes the model, not what an ablation would
do. Input checks list, per tumour, each input the model uses that is missing (imputed, with
why it is missing: the extraction's warning, e.g. a failed registration, or no value in the
patient's tables), outside the training values' 1st-99th percentiles, or a category training
never saw, and each extraction or validation warning about an input the model uses (a tumour
cut by the image edge): where the prediction rests on more than the training data showed.

**A missing margin is refused, not imputed, by default.** When the model uses the minimal
ablative margin and it could not be measured (a failed registration, an unusable post CT),
:class:`PredictionRefusedError` names the patient, the tumour and why (``hepablate predict`` exits
2). The margin is the input a clinician changes with the next ablation and the one the what-if
curve is about; a risk computed from the training median margin describes a typical ablation,
not this one, and is reassuring exactly when the images that should show the ablation failed.
A clinician expects "not measured: registration failed, fix or register the images" rather than
a number that looks like this patient's. ``allow_imputed_margin=True`` gives the imputed
prediction, with the imputation listed, for whoever wants it (a research use). Other missing
inputs (a laboratory value, a radiomic family a one-voxel tumour cannot have) are imputed with
the training median or mode and listed. A model column absent from the FeatureTable is added
as missing only when the extraction recorded why it could not be measured; absent without a
reason, it means the FeatureTable was made with other settings than the bundle's, and
:class:`~hepablate.bundle.BundleError` says so. An image model whose tumour has no crops (no
registered post CT) is refused too: it cannot run without them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.bundle import Bundle, BundleError
from hepablate.bundle.contents import plain
from hepablate.bundle.explain import (
    EXACT_SHAP_MAX_COLUMNS,
    MARGIN,
    SHAP_PERMUTATIONS,
    SHAP_SEED,
    cell_value,
    contributions_of,
    shapley_values,
    used_columns,
    what_if,
)
from hepablate.schemas.prediction import PREDICTION_SCHEMA_VERSION, Prediction
from hepablate.study.pipeline import unknown_categories_quiet

__all__ = [
    "EXACT_SHAP_MAX_COLUMNS",
    "MARGIN",
    "SHAP_PERMUTATIONS",
    "SHAP_SEED",
    "PredictionRefusedError",
    "predict_cohort",
    "predict_table",
    "shapley_values",
]

_TUMOUR = "_hepablate_tumour"


class PredictionRefusedError(BundleError):
    """A patient the bundle does not predict for, and why (``hepablate predict`` exits 2)."""


def predict_cohort(
    bundle: Bundle,
    cohort: Any,
    *,
    allow_imputed_margin: bool = False,
    auto_masks: Any = None,
) -> Prediction:
    """Extract a (one-patient) cohort as the bundle's training rows were, then predict;
    ``auto_masks`` (``features.extract.AutoMasks``) are masks a segmenter drew for it, with the
    mode and the segmenter they were drawn with (``hepablate.app.predict`` segments)."""
    from hepablate.bundle.encoder import load_encoder
    from hepablate.features.extract import ExtractionConfig, extract

    config = ExtractionConfig.model_validate(bundle.extraction or {})
    if auto_masks is not None:
        config = config.model_copy(
            update={"masks": auto_masks.mode, "segmenter": auto_masks.segmenter}
        )
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
        cache = Path(work) / "cache"
        encoder = None if config.deep is None else load_encoder(config.deep)
        table = extract(
            cohort, config, workers=1, cache=cache, encoder=encoder, auto_masks=auto_masks
        )
        return predict_table(bundle, table, allow_imputed_margin=allow_imputed_margin)


def _mask_sources(table: pd.DataFrame, i: int) -> dict[str, Any] | None:
    """Where the row's masks came from (``qa.mask_source*``; None in a table without them)."""
    from hepablate.features.masks import AUTO_ROLES, MASK_SOURCE

    source = cell_value(table[MASK_SOURCE].iloc[i]) if MASK_SOURCE in table else None
    if source is None:
        return None
    return {
        "source": source,
        **{r: cell_value(table[f"{MASK_SOURCE}.{r}"].iloc[i]) for r in AUTO_ROLES},
    }


def _segmenter(table: pd.DataFrame, info: dict[str, Any]) -> dict[str, Any] | None:
    """The segmenter of the table's automatic masks, if any row has one."""
    from hepablate.features.masks import MASK_SOURCE

    segmenter = (info.get("extraction_config") or {}).get("segmenter")
    automatic = MASK_SOURCE in table and table[MASK_SOURCE].isin(["auto", "mixed"]).any()
    if not automatic or not segmenter:
        return None
    return {"bundle": str(segmenter["bundle"]), "id": str(segmenter["id"])}


def _model_rows(bundle: Bundle, table: pd.DataFrame) -> pd.DataFrame:
    """The rows the model predicts (one per patient for a patient-level endpoint), each
    remembering the tumour it describes (``_TUMOUR``), for the extraction's warnings."""
    marked = table.copy()
    marked.attrs = table.attrs
    tumours = (
        table.index.get_level_values(1)
        if isinstance(table.index, pd.MultiIndex)
        else [None] * len(table)
    )
    marked[_TUMOUR] = list(tumours)
    rows = bundle.rows(marked)
    if (
        bundle.manifest.endpoint.table == "patients"
        and "clin.n_tumours" in bundle.schema["columns"]
        and "clin.n_tumours" not in rows
        and "group" in table
    ):
        # one_row_per_patient leaves a table of one tumour per patient as it is, without the
        # count the model was trained with.
        counts = table.groupby("group").size()
        rows["clin.n_tumours"] = counts.reindex(rows["group"]).to_numpy()
    rows.attrs = table.attrs
    return rows


def _where(rows: pd.DataFrame, i: int) -> tuple[str, int | None]:
    key = rows.index[i]
    patient = str(rows["group"].iloc[i]) if "group" in rows else str(key)
    tumour = cell_value(rows[_TUMOUR].iloc[i])
    return patient, None if tumour is None else int(tumour)


def _warnings(rows: pd.DataFrame, i: int, column: str, *, left_empty: bool) -> list[dict[str, Any]]:
    from hepablate.features.extract import warnings_for

    patient, tumour = _where(rows, i)
    return [
        w
        for w in warnings_for(rows, patient, tumour, column)
        if bool(w.get("left_empty")) is left_empty
    ]


def _because(found: list[dict[str, Any]]) -> str:
    """The warnings' reasons in one phrase, each led by its step (unless it says it)."""
    reasons = []
    for warning in found:
        step, reason = str(warning["step"]), str(warning["reason"])
        text = reason if reason.startswith(step) else f"{step}: {reason}"
        if text not in reasons:
            reasons.append(text)
    return "; ".join(reasons)


def _add_unmeasured(bundle: Bundle, rows: pd.DataFrame) -> pd.DataFrame:
    """Model columns the extraction could not measure (and so did not create, as for one
    patient whose tumour is too small for radiomics), added as missing; a column absent
    without a recorded reason is left absent, for ``Bundle.inputs`` to refuse."""
    absent = [c for c in bundle.schema["columns"] if c not in rows.columns]
    explained = [
        c for c in absent if all(_warnings(rows, i, c, left_empty=True) for i in range(len(rows)))
    ]
    if not explained:
        return rows
    attrs = rows.attrs
    rows = pd.concat([rows, pd.DataFrame(np.nan, index=rows.index, columns=explained)], axis=1)
    rows.attrs = attrs
    return rows


def _imputed(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _explained_checks(
    bundle: Bundle, rows: pd.DataFrame, checks: list[list[dict[str, Any]]], used: list[str]
) -> list[list[dict[str, Any]]]:
    """The input checks with why each missing input is missing, and the warnings (of the
    extraction and the validation) about inputs that were measured but may be off."""
    reference = bundle.schema.get("reference") or {}
    ranges = bundle.schema.get("ranges") or {}
    out = []
    for i, found in enumerate(checks):
        row_checks = []
        for check in found:
            if check["check"] != "missing":
                row_checks.append(check)
                continue
            column = check["feature"]
            why = _because(_warnings(rows, i, column, left_empty=True))
            if not why:
                why = (
                    "no value in the patient's tables"
                    if column.startswith("clin.")
                    else "not measured"
                )
            statistic = "median" if column in ranges else "mode"
            row_checks.append(
                {
                    **check,
                    "reason": why,
                    "message": f"{column} is missing ({why}); the model imputed the training "
                    f"{statistic} ({_imputed(reference.get(column))})",
                }
            )
        seen: set[str] = set()
        for column in used:
            for warning in _warnings(rows, i, column, left_empty=False):
                text = _because([warning])
                if text in seen:
                    continue
                seen.add(text)
                row_checks.append(
                    {
                        "feature": column,
                        "value": None,
                        "check": "extraction_warning",
                        "message": f"{text} (concerns {', '.join(warning['columns'])}, which "
                        "the model uses)",
                    }
                )
        out.append(row_checks)
    return out


def _refusals(bundle: Bundle, rows: pd.DataFrame, allow_imputed_margin: bool) -> None:
    """Raise :class:`PredictionRefusedError` for a row the model must not predict (module doc)."""
    used = used_columns(bundle)
    reference = bundle.schema.get("reference") or {}
    info = rows.attrs.get("hepablate", {})
    for i in range(len(rows)):
        patient, tumour = _where(rows, i)
        where = f"patient {patient}" + (f" tumour {tumour}" if tumour is not None else "")
        # (A margin column absent without a reason is left to Bundle.inputs to refuse.)
        measured = MARGIN in rows.columns and cell_value(rows[MARGIN].iloc[i]) is not None
        if MARGIN in used and MARGIN in rows.columns and not measured and not allow_imputed_margin:
            why = _because(
                _warnings(rows, i, MARGIN, left_empty=True)
                + _warnings(rows, i, MARGIN, left_empty=False)
            )
            raise PredictionRefusedError(
                f"{where}: the minimal ablative margin, an input of this model, was not "
                f"measured ({why or 'no reason recorded'}); a prediction would rest on the "
                f"training median margin ({_imputed(reference.get(MARGIN))} mm) instead of this "
                "ablation's. Fix the images and predict again (`hepablate predict "
                "--allow-imputed-margin`, or allow_imputed_margin=True, gives the imputed "
                "prediction)"
            )
        if "crops" in bundle.pipeline[-1].get_params() and tumour is not None:
            keys = (info.get("crops") or {}).get("keys") or {}
            if patient not in keys:
                found = [
                    w
                    for w in info.get("warnings") or []
                    if w.get("patient") == patient and w.get("step") in ("registration", "images")
                ]
                why = _because(found) or "no crops were made"
                raise PredictionRefusedError(
                    f"{where}: the model reads each tumour's pre- and post-ablation images, "
                    f"and this patient's could not be prepared ({why})"
                )


def predict_table(
    bundle: Bundle, table: pd.DataFrame, *, allow_imputed_margin: bool = False
) -> Prediction:
    """Predictions for every row (tumour) of a FeatureTable (``prediction.json``): see the
    module doc."""
    if table.empty:
        raise BundleError("the FeatureTable has no rows to predict")
    rows = _add_unmeasured(bundle, _model_rows(bundle, table))
    _refusals(bundle, rows, allow_imputed_margin)
    crops = rows.attrs.get("hepablate", {}).get("crops")
    estimator = bundle.pipeline[-1]
    if crops is not None and hasattr(estimator, "check_crops"):
        try:  # before any image is read: crops of another size or spacing than the training's
            estimator.check_crops(crops)
        except ValueError as exc:
            raise PredictionRefusedError(str(exc)) from None
    bundle.set_crops(crops)
    inputs = bundle.inputs(rows)
    used = used_columns(bundle)
    checks = _explained_checks(bundle, rows, bundle.input_checks(inputs, used), used)
    with unknown_categories_quiet():  # an unseen category is reported in input_checks
        return _predict(bundle, rows, inputs, checks)


def _predict(
    bundle: Bundle, table: pd.DataFrame, inputs: pd.DataFrame, checks: list[list[dict[str, Any]]]
) -> Prediction:
    risk = bundle.risk(inputs)
    estimator = bundle.pipeline[-1]
    prepared = bundle.pipeline[:-1].transform(inputs)
    uncertainty = (
        np.asarray(estimator.predict_uncertainty(prepared), dtype=float)
        if hasattr(estimator, "predict_uncertainty")
        else None
    )
    # Bundles written before the curve's own grid had only the evaluation times of the study
    # (deciles 1-8 of the event times), which stop well before the follow-up does.
    curve = bundle.thresholds.get("survival_curve") or {
        "months": bundle.thresholds.get("evaluation_times_months"),
        "source": "the study's evaluation times (event-time deciles 1 to 8)",
    }
    times = curve["months"]
    curves = None
    if bundle.survival and times:
        functions = estimator.predict_survival_function(prepared)
        curves = []
        for function in functions:
            low, high = function.domain
            curves.append([float(v) for v in function(np.clip(times, low, high))])
    rows = []
    for i in range(len(table)):
        row = table.iloc[[i]]
        patient, tumour = _where(table, i)
        contributions, method = contributions_of(bundle, row)
        contributions.sort(key=lambda c: -abs(c["contribution"]))
        rows.append(
            {
                "patient_id": patient,
                "tumour_id": tumour if isinstance(table.index, pd.MultiIndex) else None,
                ("risk_score" if bundle.survival else "probability"): float(risk[i]),
                "survival": None
                if curves is None
                else {
                    "months": list(times or []),
                    "probability": curves[i],
                    "source": curve["source"],
                },
                "uncertainty": None if uncertainty is None else float(uncertainty[i]),
                "uncertainty_method": "standard deviation over the deep ensemble's members"
                if uncertainty is not None
                else "none: the model is a single fitted estimator, not an ensemble",
                "risk_group": bundle.risk_group(float(risk[i])),
                "contributions": contributions,
                "contribution_method": method,
                "what_if_margin": what_if(bundle, row),
                "input_checks": checks[i],
                "masks": _mask_sources(table, i),
            }
        )
    validated = bundle.metrics.metrics.headline
    info = table.attrs.get("hepablate", {})
    patients = {r["patient_id"] for r in rows}
    prediction = plain(
        {
            "schema_version": PREDICTION_SCHEMA_VERSION,
            "bundle": {
                "id": bundle.id,
                "path": str(bundle.path),
                "model": bundle.manifest.model,
                "kind": bundle.manifest.kind,
                "created": bundle.created,
                "versions": bundle.manifest.versions,
                "trust": bundle.trust.as_dict(),
            },
            "endpoint": bundle.manifest.endpoint.model_dump(mode="json"),
            "validation": {
                "metric": "harrell_c" if bundle.survival else "auc",
                "value": validated.value,
                "ci": validated.ci,
                "cohort": bundle.metrics.cohort.model_dump(mode="json"),
                "scheme": bundle.metrics.validation.scheme,
            },
            "risk_groups": bundle.thresholds["risk_groups"],
            "threshold": bundle.thresholds["threshold"],
            "predictions": rows,
            # Everything the extraction and validation noted about these patients.
            "warnings": [w for w in info.get("warnings") or [] if w.get("patient") in patients],
            "segmenter": _segmenter(table, info),
        }
    )
    return Prediction.model_validate(prediction)
