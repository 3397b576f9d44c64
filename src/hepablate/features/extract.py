"""``extract(cohort) -> FeatureTable``: one row per tumour, the same code for training and
prediction.

For each patient: register the post-ablation CT onto the pre-ablation CT, bring the
ablation-zone mask into the pre-ablation frame, and measure every tumour's geometry; add the
tables' predictors and the clinical scores. The FeatureTable is indexed by (patient id, tumour
id) and holds ``group`` (the patient, for splitting), ``centre``, ``clin.*``, ``geom.*``,
``qa.*`` (registration quality) and ``outcome.*`` columns. The extraction config is stored in
the table's ``attrs["hepablate"]`` (and so in the Parquet file).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import ndimage

import hepablate
from hepablate.cohort import PATIENT_INDEX, TUMOUR_INDEX, Cohort
from hepablate.features.cache import CacheError, FeatureCache, PatientResult, patient_key
from hepablate.features.clinical import clinical_scores, table_predictors
from hepablate.features.crops import CHANNELS, CropConfig, centre_of_mass_mm, crop
from hepablate.features.geometry import (
    GEOMETRY_COLUMNS,
    ZONE_COLUMNS,
    large_vessels,
    tumour_geometry,
)
from hepablate.features.radiomics import (
    FAMILIES,
    RadiomicsConfig,
    RadiomicsError,
    compute_radiomics,
    measure_region,
    resample_image,
    resample_mask,
)
from hepablate.features.robustness import (
    PERTURBATIONS,
    RobustnessConfig,
    perturbed_masks,
    robustness_icc,
)
from hepablate.imaging.io import Volume, read_volume
from hepablate.imaging.preprocess import Preprocessing, Sample
from hepablate.imaging.registration import RegistrationConfig, register, resample_onto
from hepablate.parallel import run_tasks

__all__ = [
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

Region = Literal["tumour", "ring", "ablation"]
_NO_MORPHOLOGY = tuple(f for f in FAMILIES if f != "morph")


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


class DeepEncoder(BaseModel):
    """The image encoder of a trained image network (a bundle of kind ``multimodal`` or
    ``multimodal_surv``) whose embedding of each tumour's crops become ``deep.image_*``
    columns. It must have been trained on other patients than the ones it describes here:
    otherwise their outcomes leak into the features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: Path
    # The bundle's id (SHA-256 of its manifest): a different bundle at that path is refused.
    id: str | None = None


class ExtractionConfig(BaseModel):
    """Everything that decides the features; stored with the FeatureTable and the bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: ImageNames = ImageNames()
    preprocessing: Preprocessing = Preprocessing()  # applied to each scan and its masks
    registration: RegistrationConfig = RegistrationConfig()
    register_post_ct: bool = True
    # Radiomics (null: none) of each tumour's regions: the tumour on the pre CT, a ring of
    # ``ring_mm`` around it inside the liver, the ablation zone on the registered post CT.
    radiomics: RadiomicsConfig | None = RadiomicsConfig()
    regions: tuple[Region, ...] = ("tumour", "ring", "ablation")
    ring_mm: float = Field(default=5.0, gt=0)
    # The ring's shape is the tumour's: its morphology features would only repeat them.
    morphology_regions: tuple[Region, ...] = ("tumour", "ablation")
    robustness: RobustnessConfig = RobustnessConfig()
    crops: CropConfig = CropConfig()
    # ``deep.image_*`` columns from a trained image network's encoder (needs the crops).
    deep: DeepEncoder | None = None


class ExtractionConfigError(ValueError):
    """An extraction config file that cannot be read or is not a valid ExtractionConfig."""


def load_extraction_config(path: Path | str) -> ExtractionConfig:
    """An ExtractionConfig from a YAML or JSON file (keys of ExtractionConfig; empty: defaults).

    Errors name the file and, for an invalid setting, the field.
    """
    path = Path(path)
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ExtractionConfig.model_validate(settings or {})
    except UnicodeDecodeError as exc:
        raise ExtractionConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ExtractionConfigError(f"{path}: {exc}") from exc


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


# The columns that need the post CT in the pre frame (a failed registration leaves them empty).
# What needs the post-ablation CT registered: the zone's geometry and radiomics.
_REGISTERED_COLUMNS = [*ZONE_COLUMNS, "rad.ablation.*"]


def _warning(
    patient: str,
    tumour: int | None,
    step: str,
    columns: list[str],
    reason: str,
    *,
    left_empty: bool = True,
) -> dict[str, Any]:
    """One finding of ``attrs["hepablate"]["warnings"]`` (see the module doc)."""
    return {
        "patient": patient,
        "tumour": tumour,
        "step": step,
        "columns": columns,
        "reason": reason,
        "left_empty": left_empty,
    }


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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class _StepError(Exception):
    """A step of one patient's extraction that raised: which step, and why."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step}: {reason}")


@contextmanager
def _step(name: str) -> Iterator[None]:
    """Name the step an exception of a patient's extraction comes from."""
    try:
        yield
    except _StepError:
        raise
    except Exception as exc:
        raise _StepError(name, _reason(exc)) from exc


@dataclass
class _Scans:
    """One patient's images after preprocessing and registration, all in the pre-CT frame."""

    pre: Volume
    tumours: Volume
    liver: Volume | None
    vessels: Volume | None
    post: Volume | None = None  # the post CT in its own frame
    post_on_pre: Volume | None = None  # ... resampled onto the pre grid (for radiomics)
    # The pre CT and the registered post CT on the radiomics (IBSI) grid, resampled once.
    radiomics_scans: dict[str, Volume] = field(default_factory=dict)
    zones: Volume | None = None  # the ablation-zone label map in the post frame
    zones_pre: np.ndarray | None = None  # ... resampled onto the pre grid
    transform: sitk.Transform | None = None  # pre frame -> post frame
    qa: dict[str, Any] | None = None


def _load_scans(task: _PatientTask, warnings: list[dict[str, Any]]) -> _Scans | None:
    names, paths, config = task.config.images, task.paths, task.config
    patient = task.patient_id
    if names.pre_ct not in paths or names.tumours not in paths:
        return None

    def optional(name: str) -> Volume | None:
        return read_volume(paths[name]) if name in paths else None

    with _step("images"):
        pre, tumours = read_volume(paths[names.pre_ct]), read_volume(paths[names.tumours])
        liver, vessels = optional(names.liver), optional(names.vessels)
    if config.preprocessing.steps:
        with _step("preprocessing"):
            pre, pre_masks = _preprocess(
                config.preprocessing, pre, {"t": tumours, "l": liver, "v": vessels}
            )
        tumours, liver, vessels = pre_masks["t"], pre_masks.get("l"), pre_masks.get("v")
    scans = _Scans(pre=pre, tumours=tumours, liver=liver, vessels=vessels)
    if names.post_ct not in paths or names.ablation not in paths:
        missing = ", ".join(n for n in (names.post_ct, names.ablation) if n not in paths)
        scans.qa = _qa_columns(None, None, None, f"not measured: no {missing}")
        warnings.append(
            _warning(patient, None, "images", _REGISTERED_COLUMNS, f"no {missing} image")
        )
        return scans
    with _step("images"):
        post, zones = read_volume(paths[names.post_ct]), read_volume(paths[names.ablation])
        post_liver = optional(names.post_liver)
    if config.preprocessing.steps:
        with _step("preprocessing"):
            post, post_masks = _preprocess(
                config.preprocessing, post, {"z": zones, "l": post_liver}
            )
        zones, post_liver = post_masks["z"], post_masks.get("l")
    if config.register_post_ct:
        try:
            result = register(
                pre, post, fixed_liver=liver, moving_liver=post_liver, config=config.registration
            )
        except Exception as exc:  # a registration that raises has failed like any other
            scans.qa = _qa_columns(False, None, None, f"registration failed: {_reason(exc)}")
        else:
            scans.qa = _qa_columns(
                result.ok, result.liver_dice_before, result.liver_dice, result.reason
            )
        if not scans.qa["qa.registration_ok"]:
            warnings.append(
                _warning(
                    patient,
                    None,
                    "registration",
                    _REGISTERED_COLUMNS,
                    str(scans.qa["qa.registration_note"]),
                )
            )
            return scans
        transform = result.transform
    else:
        transform = sitk.Euler3DTransform()
        scans.qa = _qa_columns(None, None, None, "not registered (register_post_ct: false)")
    scans.post, scans.zones, scans.transform = post, zones, transform
    with _step("registration"):
        scans.zones_pre = resample_onto(zones, tumours, transform).array
        if config.radiomics is not None and "ablation" in config.regions:
            scans.post_on_pre = resample_onto(post, pre, transform, labels=False)
    return scans


def _radiomics_scan(scans: _Scans, which: str, config: RadiomicsConfig) -> Volume:
    """The pre CT or the registered post CT on the radiomics grid (resampled on first use)."""
    if which not in scans.radiomics_scans:
        source = scans.pre if which == "pre" else scans.post_on_pre
        assert source is not None
        scans.radiomics_scans[which] = resample_image(source, config)
    return scans.radiomics_scans[which]


def _ring(scans: _Scans, tumour: np.ndarray, width_mm: float) -> np.ndarray:
    """Liver within ``width_mm`` outside the tumour, other tumours excluded."""
    spacing = np.array(scans.pre.grid.spacing_mm[::-1])
    pad = np.ceil(width_mm / spacing).astype(int) + 1
    nonzero = np.nonzero(tumour)
    box = tuple(
        slice(max(0, int(n.min()) - p), min(s, int(n.max()) + 1 + p))
        for n, p, s in zip(nonzero, pad, tumour.shape, strict=True)
    )
    distance = ndimage.distance_transform_edt(~tumour[box], sampling=spacing)
    ring = np.zeros_like(tumour)
    ring[box] = distance <= width_mm
    ring &= scans.tumours.array == 0
    if scans.liver is not None:
        ring &= scans.liver.array > 0
    return ring


def _regions(
    scans: _Scans,
    tumour_id: int,
    ring_mm: float,
    wanted: tuple[str, ...] = ("tumour", "ring", "ablation"),
) -> dict[str, tuple[str, np.ndarray]]:
    """The ``wanted`` radiomics regions of one tumour: (scan, mask on the pre grid)."""
    tumour = scans.tumours.array == tumour_id
    regions: dict[str, tuple[str, np.ndarray]] = {}
    if "tumour" in wanted:
        regions["tumour"] = ("pre", tumour)
    if "ring" in wanted:
        regions["ring"] = ("pre", _ring(scans, tumour, ring_mm))
    if "ablation" in wanted and scans.post_on_pre is not None and scans.zones_pre is not None:
        regions["ablation"] = ("post", scans.zones_pre == tumour_id)
    return regions


_EMPTY_REGION = {
    "tumour": "the tumour has no voxel in the tumour mask",
    "ring": "the ring has no voxel: no liver within {ring_mm:g} mm outside the tumour",
    "ablation": "the tumour's ablation zone has no voxel on the pre-CT grid after registration",
}


def _radiomics(
    task: _PatientTask,
    scans: _Scans,
    tumour_id: int,
    perturbed: dict[str, Any],
    warnings: list[dict[str, Any]],
) -> dict[str, Any]:
    config = task.config
    assert config.radiomics is not None
    columns: dict[str, Any] = {}
    robust = config.robustness.selects(task.patient_id)
    settings = config.radiomics
    wanted = _regions(scans, tumour_id, config.ring_mm, config.regions)

    def warn(patterns: list[str], reason: str, *, left_empty: bool = True) -> None:
        warnings.append(
            _warning(
                task.patient_id, tumour_id, "radiomics", patterns, reason, left_empty=left_empty
            )
        )

    for region, (scan, region_mask) in wanted.items():
        if not region_mask.any():
            warn([f"rad.{region}.*"], _EMPTY_REGION[region].format(ring_mm=config.ring_mm))
            continue
        image = _radiomics_scan(scans, scan, settings)
        mask = resample_mask(region_mask, scans.pre.grid, settings)
        families = None if region in config.morphology_regions else _NO_MORPHOLOGY
        measured = measure_region(image, mask, settings, region=region, families=families)
        columns.update(measured.columns)
        for patterns, reason in measured.problems:
            warn(patterns, reason)
        for patterns, reason in measured.notes:
            warn(patterns, reason, left_empty=False)
        if measured.undefined:
            shown = ", ".join(measured.undefined[:5])
            more = len(measured.undefined) - 5
            warn(
                measured.undefined,
                f"MIRP gives no value for {len(measured.undefined)} feature(s) of the {region} "
                f"region (undefined for its size or contents): {shown}"
                + (f" and {more} more" if more > 0 else ""),
            )
        if not robust or not measured.complete:
            continue

        def again(
            image: Volume,
            mask: np.ndarray,
            region: str = region,
            families: tuple[str, ...] | None = families,
        ) -> dict[str, float]:
            return compute_radiomics(
                image, mask, settings, region=region, families=families, resampled=True
            )

        try:
            repeats = [measured.columns]
            repeats += [again(image, variant) for variant in perturbed_masks(mask).values()]
            noise = config.robustness.noise(f"{task.patient_id}:{region}", image.array.shape)
            repeats.append(again(Volume(image.array + noise, image.grid), mask))
        except RadiomicsError:
            continue  # an eroded region too thin for MIRP: this region adds nothing to the ICC
        perturbed[f"{task.patient_id}:{tumour_id}:{region}"] = repeats
    return columns


def _crops(task: _PatientTask, scans: _Scans, tumour_id: int) -> dict[str, np.ndarray]:
    """The pre-CT crop around the tumour and, with a registered zone, the post-CT crop around
    it (channels first). Without one there is no post crop (not a crop of zeros), and the pre
    crop's zone channel is empty: no zone was drawn on this patient's scans."""
    config = task.config.crops
    tumour = scans.tumours.array == tumour_id
    zone = None if scans.zones_pre is None else scans.zones_pre == tumour_id
    post = scans.post
    centres = {"pre": centre_of_mass_mm(scans.pre, tumour)}
    if zone is not None and zone.any() and post is not None:
        centres["post"] = centre_of_mass_mm(scans.pre, zone)
    out = {}
    for name, centre in centres.items():
        if name == "pre":
            image = crop(scans.pre, centre, config, labels=False)
        else:
            assert post is not None
            image = crop(post, centre, config, labels=False, transform=scans.transform)
        tumour_channel = crop(scans.tumours, centre, config, labels=True) == tumour_id
        zone_channel = (
            np.zeros_like(tumour_channel)
            if scans.zones is None
            else crop(scans.zones, centre, config, labels=True, transform=scans.transform)
            == tumour_id
        )
        masks = (tumour_channel, zone_channel) if name == "pre" else (zone_channel, tumour_channel)
        out[f"{tumour_id}_{name}"] = np.stack([image, *(m.astype(np.float32) for m in masks)])
    return out


def _patient_features(task: _PatientTask) -> PatientResult:
    """Geometry, radiomics, perturbed radiomics and crops of one patient's tumours."""
    try:
        return _measure_patient(task)
    except Exception as exc:  # one patient's failure must not lose the others' work
        step, reason = (
            (exc.step, exc.reason) if isinstance(exc, _StepError) else ("extraction", _reason(exc))
        )
        return PatientResult(
            rows={t: {"qa.extraction_error": f"{step}: {reason}"} for t in task.tumour_ids},
            error=reason,
            step=step,
        )


def _measure_patient(task: _PatientTask) -> PatientResult:
    empty = dict.fromkeys(GEOMETRY_COLUMNS)
    warnings: list[dict[str, Any]] = []
    scans = _load_scans(task, warnings)
    if scans is None:
        qa = _qa_columns(None, None, None, "not measured: no pre-ablation CT or tumour mask")
        reason = "no pre-ablation CT or tumour mask"
        warnings.append(_warning(task.patient_id, None, "images", ["geom.*", "rad.*"], reason))
        return PatientResult(rows={t: {**empty, **qa} for t in task.tumour_ids}, warnings=warnings)
    qa = scans.qa or {}
    rows: dict[int, dict[str, Any]] = {t: {**empty, **qa} for t in task.tumour_ids}
    # Size and distances need the pre CT's masks only; margins, coverage and the zone's volume
    # need a registered zone (never one from misaligned images: a failed registration leaves
    # zones_pre empty).
    sx, sy, sz = scans.tumours.spacing_mm
    spacing = (sz, sy, sx)
    labels = scans.tumours.array
    with _step("geometry"):
        liver_mask = None if scans.liver is None else scans.liver.array > 0
        large = None if scans.vessels is None else large_vessels(scans.vessels.array > 0, spacing)
    for tumour_id in task.tumour_ids:
        tumour = labels == tumour_id
        try:
            geometry = tumour_geometry(
                tumour,
                None if scans.zones_pre is None else scans.zones_pre == tumour_id,
                spacing,
                liver=liver_mask,
                large_vessel_mask=large,
                other_tumours=(labels > 0) & ~tumour,
            )
        except Exception as exc:  # this tumour's geometry only: the others go on
            warnings.append(
                _warning(task.patient_id, tumour_id, "geometry", ["geom.*"], _reason(exc))
            )
            continue
        rows[tumour_id].update(geometry.as_columns())
    result = PatientResult(rows=rows, warnings=warnings)
    for tumour_id in task.tumour_ids:
        if not (scans.tumours.array == tumour_id).any():
            continue
        if task.config.radiomics is not None:
            with _step("radiomics"):
                rows[tumour_id].update(
                    _radiomics(task, scans, tumour_id, result.perturbed, warnings)
                )
        if task.config.crops.enabled:
            try:
                result.crops.update(_crops(task, scans, tumour_id))
            except Exception as exc:  # no crops for this tumour; an image model will say so
                warnings.append(_warning(task.patient_id, tumour_id, "crops", [], _reason(exc)))
    return result


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
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort.

    Patients run on ``workers`` local processes, or on the Dask cluster at ``scheduler``. With
    ``cache`` (a folder), each patient's result is stored as soon as it is done and reused
    while its images and the config are unchanged (see :mod:`hepablate.features.cache`).
    With ``config.deep``, ``encoder`` adds the ``deep.image_*`` columns at the end: the encoder
    bundle loaded by the caller (``hepablate.bundle.load_encoder``; ``hepablate.app`` does it).
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
    index = cohort.tumours.index
    tumour_ids = index.to_frame(index=False).groupby(PATIENT_INDEX)[TUMOUR_INDEX].apply(tuple)
    tasks = [
        _PatientTask(
            p, tuple(int(t) for t in tumour_ids.get(p, ())), cohort.images.get(p, {}), config
        )
        for p in cohort.patient_ids
        if p in tumour_ids.index
    ]
    store = FeatureCache(cache) if cache is not None else None
    # The deep features are computed after the per-patient results: not part of their key.
    config_json = config.model_dump(mode="json", exclude={"deep"})
    keys = [patient_key(config_json, task.paths) for task in tasks]
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
    table = pd.concat([patient_level, tumour_level, measured.reindex(index)], axis=1)
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
        _validation_warnings(cohort, config)
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


def _validation_warnings(cohort: Cohort, config: ExtractionConfig) -> list[dict[str, Any]]:
    """The validation warnings that concern measured columns, so the table says what its
    values rest on: a scan without anatomy, a tumour cut by the image edge, one too small."""
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
