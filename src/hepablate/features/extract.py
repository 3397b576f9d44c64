"""``extract(cohort) -> FeatureTable``: one row per tumour, the same code for training and
prediction.

For each patient: register the post-ablation CT onto the pre-ablation CT, bring the
ablation-zone mask into the pre-ablation frame, and measure every tumour's geometry; add the
tables' predictors and the clinical scores. The FeatureTable is indexed by (patient id, tumour
id) and holds ``group`` (the patient, for splitting), ``centre``, ``clin.*``, ``geom.*``,
``qa.*`` (registration quality) and ``outcome.*`` columns. The extraction config is stored in
the table's ``attrs["hepablate"]`` (and so in the Parquet file).

A failed registration is flagged in ``qa.registration_ok`` and its patient's ``geom.*`` are left
empty: a margin from misaligned images is never reported as a measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from hepablate import __version__
from hepablate.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.features.clinical import clinical_scores, table_predictors
from hepablate.features.geometry import GEOMETRY_COLUMNS, large_vessels, tumour_geometry
from hepablate.imaging.io import Volume, read_volume
from hepablate.imaging.preprocess import Preprocessing, Sample
from hepablate.imaging.registration import RegistrationConfig, register, resample_onto

__all__ = ["ExtractionConfig", "ImageNames", "extract"]


class ImageNames(BaseModel):
    """Which image of ``cohort.yaml`` plays which part (the documented names by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_ct: str = "pre_ct"
    post_ct: str = "post_ct"
    tumours: str = "pre_tumours"
    ablation: str = "post_ablation"
    liver: str = "liver"
    post_liver: str = "post_liver"
    vessels: str = "vessels"


class ExtractionConfig(BaseModel):
    """Everything that decides the features; stored with the FeatureTable and the bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: ImageNames = ImageNames()
    preprocessing: Preprocessing = Preprocessing()  # applied to each scan and its masks
    registration: RegistrationConfig = RegistrationConfig()
    register_post_ct: bool = True


@dataclass(frozen=True)
class _PatientTask:
    patient_id: str
    tumour_ids: tuple[int, ...]
    paths: dict[str, Path]
    config: ExtractionConfig


def _preprocess(
    chain: Preprocessing, image: Volume, masks: dict[str, Volume | None]
) -> tuple[Volume, dict[str, Volume]]:
    """The same chain on a scan and its masks (so that they stay on one grid)."""
    present = {k: v for k, v in masks.items() if v is not None}
    return chain(Sample.from_volumes(image, present)).volumes()


def _qa_columns(
    ok: bool | None, before: float | None, after: float | None, reason: str
) -> dict[str, Any]:
    return {
        "qa.registration_ok": ok,
        "qa.registration_liver_dice_before": before,
        "qa.registration_liver_dice": after,
        "qa.registration_note": reason,
    }


def _patient_geometry(task: _PatientTask) -> dict[int, dict[str, Any]]:
    names, paths = task.config.images, task.paths
    empty = dict.fromkeys(GEOMETRY_COLUMNS)
    needed = (names.pre_ct, names.post_ct, names.tumours, names.ablation)
    if any(n not in paths for n in needed):
        missing = ", ".join(n for n in needed if n not in paths)
        qa = _qa_columns(None, None, None, f"not measured: no {missing}")
        return {t: {**empty, **qa} for t in task.tumour_ids}

    def optional(name: str) -> Volume | None:
        return read_volume(paths[name]) if name in paths else None

    pre, post = read_volume(paths[names.pre_ct]), read_volume(paths[names.post_ct])
    tumours, zones = read_volume(paths[names.tumours]), read_volume(paths[names.ablation])
    liver, post_liver, vessels = (
        optional(names.liver),
        optional(names.post_liver),
        optional(names.vessels),
    )
    if task.config.preprocessing.steps:
        pre, pre_masks = _preprocess(
            task.config.preprocessing, pre, {"t": tumours, "l": liver, "v": vessels}
        )
        tumours, liver, vessels = pre_masks["t"], pre_masks.get("l"), pre_masks.get("v")
        post, post_masks = _preprocess(
            task.config.preprocessing, post, {"z": zones, "l": post_liver}
        )
        zones, post_liver = post_masks["z"], post_masks.get("l")
    if task.config.register_post_ct:
        result = register(
            pre, post, fixed_liver=liver, moving_liver=post_liver, config=task.config.registration
        )
        qa = _qa_columns(result.ok, result.liver_dice_before, result.liver_dice, result.reason)
        if not result.ok:
            return {t: {**empty, **qa} for t in task.tumour_ids}
        transform = result.transform
    else:
        import SimpleITK as sitk

        transform = sitk.Euler3DTransform()
        qa = _qa_columns(None, None, None, "not registered (register_post_ct: false)")
    zones_pre = resample_onto(zones, tumours, transform).array
    sx, sy, sz = tumours.spacing_mm
    spacing = (sz, sy, sx)
    liver_mask = None if liver is None else liver.array > 0
    large = None if vessels is None else large_vessels(vessels.array > 0, spacing)
    rows = {}
    for tumour_id in task.tumour_ids:
        geometry = tumour_geometry(
            tumours.array == tumour_id,
            zones_pre == tumour_id,
            spacing,
            liver=liver_mask,
            large_vessel_mask=large,
        )
        rows[tumour_id] = {**geometry.as_columns(), **qa}
    return rows


def _outcome_columns(cohort: Cohort, index: pd.Index) -> pd.DataFrame:
    columns = {}
    for endpoint in cohort.schema.endpoints:
        outcomes = cohort.outcomes(endpoint.name)
        if endpoint.table == "patients" and isinstance(index, pd.MultiIndex):
            outcomes = outcomes.reindex(index.get_level_values(PATIENT_INDEX)).set_axis(index)
        for column in outcomes.columns:
            key = endpoint.name if column == "label" else f"{endpoint.name}.{column}"
            columns[f"outcome.{key}"] = outcomes[column]
    return pd.DataFrame(columns, index=index)


def extract(
    cohort: Cohort,
    config: ExtractionConfig | None = None,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort."""
    config = config or ExtractionConfig()
    schema = cohort.schema
    patients = pd.concat(
        [table_predictors(cohort.patients, schema.tables.patients), clinical_scores(cohort)],
        axis=1,
    )
    if cohort.tumours is None or schema.tables.tumours is None:
        table = patients.copy()
        table.insert(0, "centre", cohort.centres())
        table.insert(0, "group", list(table.index))
        table = pd.concat([table, _outcome_columns(cohort, table.index)], axis=1)
        return _with_metadata(table, cohort, config)

    index = cohort.tumours.index
    tumour_ids = index.to_frame(index=False).groupby(PATIENT_INDEX)[TUMOUR_INDEX].apply(tuple)
    tasks = [
        _PatientTask(
            p, tuple(int(t) for t in tumour_ids.get(p, ())), cohort.images.get(p, {}), config
        )
        for p in cohort.patient_ids
        if p in tumour_ids.index
    ]
    geometry: dict[tuple[str, int], dict[str, Any]] = {}
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, (task, rows) in enumerate(
                zip(tasks, pool.map(_patient_geometry, tasks), strict=True), start=1
            ):
                geometry.update({(task.patient_id, t): r for t, r in rows.items()})
                if progress:
                    progress(done, len(tasks))
    else:
        for done, task in enumerate(tasks, start=1):
            rows = _patient_geometry(task)
            geometry.update({(task.patient_id, t): r for t, r in rows.items()})
            if progress:
                progress(done, len(tasks))

    patient_level = patients.reindex(index.get_level_values(PATIENT_INDEX)).set_axis(index)
    tumour_level = table_predictors(cohort.tumours, schema.tables.tumours)
    measured = pd.DataFrame.from_dict(geometry, orient="index")
    measured.index = pd.MultiIndex.from_tuples(measured.index, names=[PATIENT_INDEX, TUMOUR_INDEX])
    table = pd.concat([patient_level, tumour_level, measured.reindex(index)], axis=1)
    table.insert(
        0, "centre", cohort.centres().reindex(index.get_level_values(PATIENT_INDEX)).to_numpy()
    )
    table.insert(0, "group", index.get_level_values(PATIENT_INDEX).to_numpy())
    table = pd.concat([table, _outcome_columns(cohort, index)], axis=1)
    return _with_metadata(table, cohort, config)


def _with_metadata(table: pd.DataFrame, cohort: Cohort, config: ExtractionConfig) -> pd.DataFrame:
    table.attrs["hepablate"] = {
        "version": __version__,
        "cohort": cohort.schema.name,
        "extraction_config": config.model_dump(mode="json"),
        "rows": "tumour" if isinstance(table.index, pd.MultiIndex) else "patient",
    }
    return table
