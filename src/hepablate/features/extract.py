"""``extract(cohort) -> FeatureTable``: one row per tumour, the same code for training and
prediction. Here: the assembly of the patients' results into the table, its metadata and its
warnings; the config is in :mod:`hepablate.features.config` (its names are re-exported here),
one patient's work in :mod:`hepablate.features.patient`.

For each patient: register the post-ablation CT onto the pre-ablation CT, bring the
ablation-zone mask into the pre-ablation frame, and measure every tumour's geometry; add the
tables' predictors and the clinical scores. The FeatureTable is indexed by (patient id, tumour
id) and holds ``group`` (the patient, for splitting), ``centre``, ``clin.*``, ``geom.*``,
``qa.*`` (registration quality, where the masks came from) and ``outcome.*`` columns. The
extraction config is stored in the table's ``attrs["hepablate"]`` (and so in the Parquet file).

Tumour size and the distances to vessels, capsule and other tumours need the pre-ablation CT's
masks only, so a patient without a post-ablation CT gets them (and a pre-CT crop). A failed
registration is flagged in ``qa.registration_ok`` and leaves the zone's ``geom.*`` columns
(margins, coverage, zone volume) empty: a margin from misaligned images is never reported as a
measurement.

Nothing is left out without a word. What could not be measured stays empty (NaN) in its row and
is recorded in ``attrs["hepablate"]["warnings"]``, one dict per finding: ``patient``, ``tumour``
(None for the whole patient), ``step`` (``images``, ``registration``, ``geometry``,
``radiomics``, ``crops``, ``cache`` or ``validation``), ``columns`` (the FeatureTable columns it
concerns, as ``fnmatch`` patterns: ``geom.*``, ``rad.tumour.cm.*``), ``reason`` and
``left_empty`` (True when those columns were not measured, False when they were but may be
off, e.g. a tumour cut by the image edge). A region too small for radiomics, a family MIRP
refuses, a failed registration or a tumour whose geometry raised are such warnings; the rest of
the patient is measured. A patient whose extraction raised anyway keeps its row with
``qa.extraction_error`` and is listed in ``attrs["hepablate"]["failed_patients"]`` with the
step that failed and why.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

import hepablate
from hepablate.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.features.cache import CacheError, FeatureCache, PatientResult, patient_key
from hepablate.features.clinical import clinical_scores, table_predictors
from hepablate.features.config import (
    DeepEncoder,
    ExtractionConfig,
    ExtractionConfigError,
    ImageNames,
    load_extraction_config,
)
from hepablate.features.crops import CHANNELS
from hepablate.features.masks import (
    AUTO_ROLES,
    AutoMasks,
    mask_source_columns,
    needs_auto,
    patient_images,
)
from hepablate.features.patient import (
    _REGISTERED_COLUMNS,
    _patient_features,
    _PatientTask,
    _reason,
    _warning,
)
from hepablate.features.robustness import PERTURBATIONS, robustness_icc
from hepablate.parallel import run_tasks

__all__ = [
    "AutoMasks",
    "CacheError",
    "DeepEncoder",
    "ExtractionConfig",
    "ExtractionConfigError",
    "ImageEncoder",
    "ImageNames",
    "check_deep",
    "extract",
    "load_extraction_config",
    "warnings_for",
]


def warnings_for(
    table: pd.DataFrame, patient: str, tumour: int | None, column: str
) -> list[dict[str, Any]]:
    """The FeatureTable's warnings (and whole-patient failures) about ``column`` of one row:
    those of the patient, and of this tumour or of every tumour."""
    info = table.attrs.get("hepablate", {})
    found = [
        w
        for w in info.get("warnings") or []
        if w.get("patient") == patient
        and w.get("tumour") in (None, tumour)
        and any(fnmatch.fnmatchcase(column, pattern) for pattern in w.get("columns") or [])
    ]
    for failure in info.get("failed_patients") or []:
        measured = column.startswith(("geom.", "rad.", "deep."))
        if isinstance(failure, dict) and failure.get("patient") == patient and measured:
            found.append(
                _warning(
                    patient,
                    None,
                    str(failure.get("step")),
                    ["geom.*", "rad.*", "deep.*"],
                    f"extraction failed: {failure.get('reason')}",
                )
            )
    return found


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
    scheduler: str | None = None,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    encoder: ImageEncoder | None = None,
    auto_masks: AutoMasks | None = None,
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort.

    Patients run on ``workers`` local processes, or on the Dask cluster at ``scheduler``. With
    ``cache`` (a folder), each patient's result is stored as soon as it is done and reused
    while its images and the config are unchanged (see :mod:`hepablate.features.cache`).
    With ``config.deep``, ``encoder`` adds the ``deep.image_*`` columns at the end: the encoder
    bundle loaded by the caller (``hepablate.bundle.load_encoder``; ``hepablate.app`` does it).
    With ``config.masks`` ``auto`` or ``manual_else_auto``, ``auto_masks`` holds the masks the
    caller's segmenter drew (``hepablate.app.extract_features`` segments the patients); every
    row records its masks' source in ``qa.mask_source`` (and per mask, ``qa.mask_source.*``).
    """
    config = config or ExtractionConfig()
    schema = cohort.schema
    patients = pd.concat(
        [table_predictors(cohort.patients, schema.tables.patients), clinical_scores(cohort)],
        axis=1,
    )
    if cohort.tumours is None or schema.tables.tumours is None:
        if config.deep is not None:
            raise ExtractionConfigError(
                "deep: the image encoder describes tumours, and this cohort has no tumour table"
            )
        if config.masks != "manual":
            raise ExtractionConfigError(
                f"masks: {config.masks}: the masks describe tumours, and this cohort has no "
                "tumour table"
            )
        table = patients.copy()
        table.insert(0, "centre", cohort.centres())
        table.insert(0, "group", list(table.index))
        table = pd.concat([table, _outcome_columns(cohort, table.index)], axis=1)
        table = _with_metadata(table, cohort, config)
        table.attrs["hepablate"]["warnings"] = [
            _warning(
                p,
                None,
                "images",
                [],
                "images but no tumour table in cohort.yaml: no tumour rows, so no geometry, "
                f"radiomics or crops (they need a tumours table and the {config.images.tumours} "
                "mask)",
                left_empty=False,
            )
            for p in cohort.patient_ids
            if cohort.images.get(p)
        ]
        return table

    _check_encoder(config, cache, encoder)
    _check_masks(config, auto_masks)
    drawn = auto_masks.paths if auto_masks is not None else {}
    index = cohort.tumours.index
    tumour_ids = index.to_frame(index=False).groupby(PATIENT_INDEX)[TUMOUR_INDEX].apply(tuple)
    tasks = [
        _PatientTask(
            p,
            tuple(int(t) for t in tumour_ids.get(p, ())),
            patient_images(config.masks, cohort.images.get(p, {}), config.images, drawn.get(p, {})),
            config,
        )
        for p in cohort.patient_ids
        if p in tumour_ids.index
    ]
    store = FeatureCache(cache) if cache is not None else None
    keys = [_cache_key(config, task, cohort.images.get(task.patient_id, {})) for task in tasks]
    results: dict[str, PatientResult] = {}
    todo = []
    for task, key in zip(tasks, keys, strict=True):
        cached = store.get(task.patient_id, key) if store else None
        if cached is not None:
            results[task.patient_id] = cached
        else:
            todo.append((task, key))
    done = len(results)
    if progress:
        progress(done, len(tasks))
    uncached: set[str] = set()
    for position, result in run_tasks(
        _patient_features, [t for t, _ in todo], workers=workers, scheduler=scheduler
    ):
        task, key = todo[position]
        results[task.patient_id] = result
        if store is not None and result.error is None:
            try:
                store.put(task.patient_id, key, result)
            except (OSError, CacheError) as exc:  # the result is used; it is just not kept
                uncached.add(task.patient_id)
                result.warnings.append(
                    _warning(task.patient_id, None, "cache", [], f"not cached: {_reason(exc)}")
                )
        done += 1
        if progress:
            progress(done, len(tasks))
    geometry = {(pid, t): row for pid, result in results.items() for t, row in result.rows.items()}
    patient_level = patients.reindex(index.get_level_values(PATIENT_INDEX)).set_axis(index)
    tumour_level = table_predictors(cohort.tumours, schema.tables.tumours)
    measured = pd.DataFrame.from_dict(geometry, orient="index")
    measured.index = pd.MultiIndex.from_tuples(measured.index, names=[PATIENT_INDEX, TUMOUR_INDEX])
    sources = pd.DataFrame.from_dict(
        {
            p: mask_source_columns(
                cohort.images.get(p, {}), config.images, drawn.get(p, {}), config.masks
            )
            for p in cohort.patient_ids
        },
        orient="index",
    ).astype("str")  # text with NaN for none, as Parquet gives it back
    measured = pd.concat(
        [
            measured.reindex(index),
            sources.reindex(index.get_level_values(PATIENT_INDEX)).set_axis(index),
        ],
        axis=1,
    )
    table = pd.concat([patient_level, tumour_level, measured], axis=1)
    table.insert(
        0, "centre", cohort.centres().reindex(index.get_level_values(PATIENT_INDEX)).to_numpy()
    )
    table.insert(0, "group", index.get_level_values(PATIENT_INDEX).to_numpy())
    table = pd.concat([table, _outcome_columns(cohort, index)], axis=1)
    table = _with_metadata(table, cohort, config)
    table.attrs["hepablate"]["robustness"] = _robustness(results, table, config)
    if config.crops.enabled:
        table.attrs["hepablate"]["crops"] = {
            "cache": None if cache is None else str(cache.resolve()),
            "keys": {
                t.patient_id: k
                for t, k in zip(tasks, keys, strict=True)
                if results[t.patient_id].crops and t.patient_id not in uncached
            },
            "channels": {name: list(c) for name, c in CHANNELS.items()},
            "size_mm": config.crops.size_mm,
            "spacing_mm": config.crops.spacing_mm,
        }
    table.attrs["hepablate"]["failed_patients"] = [
        {"patient": pid, "step": results[pid].step, "reason": results[pid].error}
        for pid in sorted(results)
        if results[pid].error
    ]
    # A patient with no row in the tumours table has none in a tumour-level FeatureTable.
    untabled = [
        _warning(
            p,
            None,
            "tumours",
            [],
            "no row in the tumours table: the patient has no row in this FeatureTable",
            left_empty=False,
        )
        for p in cohort.patient_ids
        if p not in tumour_ids.index
    ]
    table.attrs["hepablate"]["warnings"] = (
        _validation_warnings(cohort, config, drawn)
        + (auto_masks.warnings if auto_masks is not None else [])
        + untabled
        + [
            _warning(
                d["patient"],
                None,
                "cache",
                [],
                f"{d['file']}: {d['reason']}; discarded and extracted again",
                left_empty=False,
            )
            for d in (store.discarded if store is not None else [])
        ]
        + [w for pid in sorted(results) for w in results[pid].warnings]
    )
    if encoder is not None:
        table = encoder(table)
    return table


class ImageEncoder(Protocol):
    """What adds a FeatureTable's ``deep.image_*`` columns (``hepablate.bundle.load_encoder``):
    the embedding of every tumour with crops, and the encoder's identity in the table's
    ``attrs["hepablate"]["deep_encoder"]``."""

    def __call__(self, table: pd.DataFrame) -> pd.DataFrame: ...


def check_deep(config: ExtractionConfig, cache: Path | None) -> None:
    """``config.deep`` needs the crops on disk: checked before the encoder bundle is loaded."""
    if config.deep is not None and (not config.crops.enabled or cache is None):
        raise ExtractionConfigError(
            "deep: the encoder reads each tumour's crops: enable crops and extract with a cache"
        )


def _cache_key(config: ExtractionConfig, task: _PatientTask, manual: dict[str, Path]) -> str:
    """A patient's cache key: the settings that decide its results and its images' bytes.
    The deep features are computed after the per-patient results, so not part of it; where the
    masks come from is, when any of the patient's is the segmenter's (its id, so a cached
    result with manual masks is never reused for automatic ones, nor one segmenter's for
    another's); a patient measured from its own masks alone keeps the key it had before."""
    settings = config.model_dump(mode="json", exclude={"deep", "masks", "segmenter"})
    drawn = [
        role
        for role in AUTO_ROLES
        if (name := getattr(config.images, role)) in task.paths
        and task.paths[name] != manual.get(name)
    ]
    if drawn:
        assert config.segmenter is not None  # _check_masks
        settings["auto_masks"] = {"segmenter": config.segmenter.id, "roles": drawn}
    return patient_key(settings, task.paths)


def _check_masks(config: ExtractionConfig, auto_masks: AutoMasks | None) -> None:
    """Before any patient is extracted: automatic masks need the caller's segmentation, made
    with the config's mode and segmenter."""
    if config.masks == "manual":
        if auto_masks is not None:
            raise ExtractionConfigError(
                "automatic masks were given but the config has masks: manual"
            )
        return
    if auto_masks is None:
        raise ExtractionConfigError(
            f"masks: {config.masks}: the segmentation runs in the caller: pass auto_masks, or "
            "extract through hepablate.app.extract_features"
        )
    assert config.segmenter is not None  # the config's own rule
    if auto_masks.mode != config.masks or (
        config.segmenter.id is not None and auto_masks.segmenter.id != config.segmenter.id
    ):
        raise ExtractionConfigError(
            f"the automatic masks were drawn with masks: {auto_masks.mode} by segmenter "
            f"{auto_masks.segmenter.id}; the config has masks: {config.masks}, segmenter "
            f"{config.segmenter.id}"
        )


def _check_encoder(config: ExtractionConfig, cache: Path | None, encoder: Any) -> None:
    """Before any patient is extracted: ``config.deep`` needs crops on disk and its encoder."""
    if config.deep is None:
        if encoder is not None:
            raise ExtractionConfigError("an image encoder was given but the config has no deep:")
        return
    check_deep(config, cache)
    if encoder is None:
        raise ExtractionConfigError(
            "deep: the encoder bundle is loaded by the caller: pass "
            "encoder=hepablate.bundle.load_encoder(config.deep), or extract through "
            "hepablate.app.extract_features"
        )


def _validation_warnings(
    cohort: Cohort, config: ExtractionConfig, drawn: Mapping[str, Mapping[str, Path]]
) -> list[dict[str, Any]]:
    """The validation warnings that concern measured columns, so the table says what its
    values rest on: a scan without anatomy, a tumour cut by the image edge, one too small
    (not those about a cohort mask the segmenter's replaced: ``drawn``, patient -> role)."""
    names = config.images
    pre, post = ["geom.*", "rad.*"], _REGISTERED_COLUMNS
    affected = {
        ("images.constant_scan", names.pre_ct): pre,
        ("images.constant_scan", names.post_ct): post,
        ("images.touches_edge", names.tumours): ["geom.*", "rad.tumour.*", "rad.ring.*"],
        ("images.touches_edge", names.ablation): post,
        ("images.too_small_for_radiomics", names.tumours): ["rad.tumour.*"],
        ("images.too_small_for_radiomics", names.ablation): ["rad.ablation.*"],
    }
    found: list[dict[str, Any]] = []
    for problem in cohort.report.warnings if cohort.report is not None else []:
        columns = affected.get((problem.code, problem.field or ""))
        if columns is None or problem.patient is None:
            continue
        replaced = {
            getattr(names, role)
            for role in drawn.get(problem.patient, {})
            if needs_auto(config.masks, cohort.images.get(problem.patient, {}), names, role)
        }
        if problem.field in replaced:
            continue
        found.append(
            {
                **_warning(
                    problem.patient,
                    problem.tumour,
                    "validation",
                    columns,
                    f"{problem.message} ({problem.file})",
                    left_empty=False,
                ),
                "code": problem.code,
            }
        )
    return found


def _robustness(
    results: dict[str, PatientResult], table: pd.DataFrame, config: ExtractionConfig
) -> dict[str, Any]:
    measurements = {k: v for r in results.values() for k, v in r.perturbed.items()}
    tumours = {k.rsplit(":", 1)[0] for k in measurements}
    summary: dict[str, Any] = {
        "method": f"ICC({config.robustness.icc}) over original, "
        + ", ".join(PERTURBATIONS)
        + " (perturbations after Zwanenburg 2019)",
        "n_tumours": len(tumours),
        "icc": {},
    }
    if config.radiomics is None:
        summary["note"] = "no radiomics"
    elif len(tumours) < config.robustness.min_tumours:
        summary["note"] = (
            f"{len(tumours)} perturbed tumours, fewer than {config.robustness.min_tumours}: "
            "no ICC (raise robustness.fraction)"
        )
    else:
        columns = [c for c in table.columns if str(c).startswith("rad.")]
        summary["icc"] = robustness_icc(measurements, columns, config.robustness.icc)
    return summary


def _with_metadata(table: pd.DataFrame, cohort: Cohort, config: ExtractionConfig) -> pd.DataFrame:
    table.attrs["hepablate"] = {
        "version": hepablate.__version__,
        "cohort": cohort.schema.name,
        "extraction_config": config.model_dump(mode="json"),
        "rows": "tumour" if isinstance(table.index, pd.MultiIndex) else "patient",
        # What the outcome.* columns mean, for `hepablate train`.
        "endpoints": [e.model_dump(mode="json") for e in cohort.schema.endpoints],
        "warnings": [],
        "failed_patients": [],
    }
    return table
