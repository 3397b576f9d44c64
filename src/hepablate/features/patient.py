"""One patient's extraction, the unit of work that runs in a worker process and is cached.

Read and preprocess the scans and masks, register the post-ablation CT onto the pre-ablation
CT (``_load_scans``), then per tumour measure the geometry, the radiomics of its regions with
their perturbed repeats for the robustness ICC (``_radiomics``) and the deep-model crops
(``_crops``); ``_measure_patient`` gathers them into a ``PatientResult`` with its warnings, and
``_patient_features`` turns an exception into a failed patient named with its step. The
warnings' format and what a failure leaves are described in :mod:`hepablate.features.extract`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepablate.features.cache import PatientResult
from hepablate.features.config import ExtractionConfig
from hepablate.features.crops import centre_of_mass_mm, crop
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
from hepablate.features.robustness import perturbed_masks
from hepablate.imaging.io import Volume, read_volume
from hepablate.imaging.preprocess import Preprocessing, Sample
from hepablate.imaging.registration import register, resample_onto

_NO_MORPHOLOGY = tuple(f for f in FAMILIES if f != "morph")


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


def _unlisted_labels(task: _PatientTask, scans: _Scans, warnings: list[dict[str, Any]]) -> None:
    """Lesions of the tumour or zone mask without a row in the tumours table (a segmenter's
    masks may hold more lesions than the table lists; a cohort's own are refused by the
    validation): said, since they are not measured."""
    names = task.config.images
    listed = set(task.tumour_ids)
    masks = [(names.tumours, scans.tumours.array)]
    if scans.zones is not None:
        masks.append((names.ablation, scans.zones.array))
    for name, array in masks:
        unlisted = sorted(int(v) for v in np.unique(array) if v and int(v) not in listed)
        if unlisted:
            shown = ", ".join(str(v) for v in unlisted[:10])
            more = f" and {len(unlisted) - 10} more" if len(unlisted) > 10 else ""
            warnings.append(
                _warning(
                    task.patient_id,
                    None,
                    "tumours",
                    [],
                    f"the {name} mask has {len(unlisted)} lesion(s) that the tumours table does "
                    f"not list (labels {shown}{more}): not measured",
                    left_empty=False,
                )
            )


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
    _unlisted_labels(task, scans, warnings)
    for tumour_id in task.tumour_ids:
        tumour = labels == tumour_id
        if not tumour.any():  # (the validation refuses this in a cohort's own masks)
            warnings.append(
                _warning(
                    task.patient_id,
                    tumour_id,
                    "tumours",
                    ["geom.*", "rad.*"],
                    f"no voxel labelled {tumour_id} in the {task.config.images.tumours} mask",
                )
            )
            continue
        zone = None if scans.zones_pre is None else scans.zones_pre == tumour_id
        if zone is not None and not zone.any():
            warnings.append(
                _warning(
                    task.patient_id,
                    tumour_id,
                    "geometry",
                    _REGISTERED_COLUMNS,
                    f"no voxel labelled {tumour_id} in the {task.config.images.ablation} mask "
                    "on the pre-CT grid: no zone for this tumour",
                )
            )
            zone = None
        try:
            geometry = tumour_geometry(
                tumour,
                zone,
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
