"""The dataset fingerprint and the plan it turns into, the way nnU-Net plans (Isensee et al.
2021, "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation"), sized for a CPU machine.

``fingerprint(cohort)`` measures what the plan needs: each task's spacings and sizes, the
scan's intensities inside the masks, the lesions' sizes. ``plan(fingerprint, overrides)``
derives the target spacing, patch size, intensity normalisation, network depth and width,
batch size and training schedule from it and a ``Budget`` (2 CPU cores, 24 GB by default).
The plan is data: it is written into the segmentation bundle, and a config file may override
any of its fields (``load_overrides``; an unknown key is refused, naming it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import ndimage

from hepablate.cohort import Cohort
from hepablate.schemas import describe
from hepablate.segment.data import DEFAULT_TASKS, TaskSpec, read_case, task_patients
from hepablate.segment.errors import SegmentError

__all__ = [
    "FINGERPRINT_VERSION",
    "PLAN_VERSION",
    "Budget",
    "Fingerprint",
    "InferencePlan",
    "IntensityStats",
    "NetworkPlan",
    "Normalisation",
    "Plan",
    "TaskFingerprint",
    "TaskPlan",
    "TrainingPlan",
    "check_override_keys",
    "fingerprint",
    "load_overrides",
    "plan",
]

FINGERPRINT_VERSION: Literal[1] = 1
PLAN_VERSION: Literal[1] = 1
# Foreground voxels sampled per case and region for the intensity statistics (nnU-Net: 10^4).
_SAMPLES_PER_CASE = 10_000

Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class IntensityStats(_Closed):
    """Scan values (HU for CT) sampled inside a region over every case."""

    p00_5: float
    p50: float
    p99_5: float
    mean: float
    std: float
    voxels: int


class TaskFingerprint(_Closed):
    spec: TaskSpec
    patients: list[str]
    spacings_mm: list[Triple]  # (x, y, z) per patient
    sizes: list[IntTriple]
    median_spacing_mm: Triple
    median_size: IntTriple
    # "foreground" (every label), "liver" (when the task has one) and the lesion class.
    intensity: dict[str, IntensityStats]
    label_fractions: dict[str, float]  # of all voxels, per class
    lesions_per_case: list[int]
    lesion_diameters_mm: list[float]  # equivalent-sphere diameter of each connected lesion


class Fingerprint(_Closed):
    """What a cohort's segmentation data look like (``fingerprint.json`` of the bundle)."""

    format_version: Literal[1] = FINGERPRINT_VERSION
    cohort: str
    tasks: dict[str, TaskFingerprint]
    skipped: dict[str, str] = Field(default_factory=dict)  # task -> why it has no network


class Budget(_Closed):
    """What the plan must fit: the machine and the time it may take."""

    cpu_cores: int = Field(default=2, ge=1)
    memory_gb: float = Field(default=24.0, gt=0)
    # A resampled image of at most this many voxels (the target spacing is coarsened until the
    # median image fits): about 128 x 128 x 64, a second per forward pass on one core.
    max_image_voxels: int = Field(default=128 * 128 * 64, ge=4096)
    # A training patch of at most this many voxels (64 x 64 x 32).
    max_patch_voxels: int = Field(default=64 * 64 * 32, ge=512)
    # Voxels of one training batch (patches x patch voxels): sets the batch size.
    batch_voxels: int = Field(default=2 * 64 * 64 * 32, ge=512)
    base_filters: int = Field(default=16, ge=4)
    max_filters: int = Field(default=128, ge=8)
    max_levels: int = Field(default=5, ge=2)
    # A pooled feature map keeps at least this many voxels along each axis.
    min_feature_map: int = Field(default=4, ge=2)


class Normalisation(_Closed):
    """CT values clipped to the foreground's 0.5-99.5th percentiles, then z-scored with the
    foreground's mean and standard deviation (nnU-Net's CT normalisation)."""

    clip_low: float
    clip_high: float
    mean: float
    std: float = Field(gt=0)


class NetworkPlan(_Closed):
    """A MONAI DynUNet: one kernel size and stride per level (the first stride is 1)."""

    kind: Literal["DynUNet"] = "DynUNet"
    kernel_sizes: list[IntTriple]  # (x, y, z)
    strides: list[IntTriple]
    filters: list[int]
    norm: Literal["instance", "batch"] = "instance"
    residual: bool = False


class TaskPlan(_Closed):
    spec: TaskSpec
    labels: list[str]
    target_spacing_mm: Triple  # (x, y, z)
    patch_size: IntTriple  # (x, y, z), divisible by the product of the strides per axis
    normalisation: Normalisation
    network: NetworkPlan
    batch_size: int = Field(ge=1)


class TrainingPlan(_Closed):
    max_epochs: int = Field(default=60, ge=1)
    iterations_per_epoch: int = Field(default=40, ge=1)
    # Stop when the validation Dice has not improved for this many epochs.
    patience: int = Field(default=10, ge=1)
    # Stop a task's training after the epoch that passes this many minutes (None: no limit).
    # A limit makes the epoch count depend on the machine's speed: for benchmarks, not for
    # reproducible bundles.
    time_limit_minutes: float | None = Field(default=None, gt=0)
    learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    # Patches centred on a foreground voxel per background-centred one (RandCropByPosNegLabeld's
    # pos:neg); 1 is nnU-Net's at least a third of the patches on foreground, here a half.
    foreground_ratio: float = Field(default=1.0, gt=0)
    samples_per_image: int = Field(default=2, ge=1)
    # Held-out patients, a share of the task's (at least one): validation and early stopping.
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)
    # Augmentation: flips along each axis, a small rotation and scaling, intensity changes.
    flip_probability: float = Field(default=0.5, ge=0, le=1)
    affine_probability: float = Field(default=0.2, ge=0, le=1)
    rotate_deg: float = Field(default=10.0, ge=0)
    scale: float = Field(default=0.1, ge=0, lt=1)
    intensity_probability: float = Field(default=0.5, ge=0, le=1)
    intensity_shift: float = Field(default=0.1, ge=0)  # in z-scored units
    intensity_scale: float = Field(default=0.1, ge=0, lt=1)


class InferencePlan(_Closed):
    overlap: float = Field(default=0.25, ge=0, lt=1)
    # Lesions smaller than this are dropped (a 3 mm sphere is 0.014 mL).
    min_lesion_volume_ml: float = Field(default=0.05, ge=0)
    # Lesions are kept when most of their voxels are inside the liver dilated by this much.
    liver_dilation_mm: float = Field(default=5.0, ge=0)
    # Test-time augmentation: the probabilities averaged over the scan and its mirror images
    # along every combination of axes (8 passes, as nnU-Net mirrors); off, it costs 8 times.
    tta: bool = False


class Plan(_Closed):
    """Everything training and prediction do, as data (``plan.json`` of the bundle)."""

    format_version: Literal[1] = PLAN_VERSION
    budget: Budget = Budget()
    tasks: dict[str, TaskPlan]
    training: TrainingPlan = TrainingPlan()
    inference: InferencePlan = InferencePlan()


def _triple(values: Sequence[float]) -> Triple:
    return (float(values[0]), float(values[1]), float(values[2]))


def _int_triple(values: Sequence[int]) -> IntTriple:
    return (int(values[0]), int(values[1]), int(values[2]))


def _stats(values: np.ndarray) -> IntensityStats:
    low, mid, high = np.percentile(values, [0.5, 50.0, 99.5])
    return IntensityStats(
        p00_5=float(low),
        p50=float(mid),
        p99_5=float(high),
        mean=float(values.mean()),
        std=float(values.std()),
        voxels=int(values.size),
    )


def _sample(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    if values.size <= _SAMPLES_PER_CASE:
        return values
    return rng.choice(values, _SAMPLES_PER_CASE, replace=False)


def _task_fingerprint(
    cohort: Cohort, spec: TaskSpec, patients: list[str], progress: Callable[[], None]
) -> TaskFingerprint:
    rng = np.random.default_rng(0)
    labels = spec.labels
    samples: dict[str, list[np.ndarray]] = {name: [] for name in ["foreground", *labels[1:]]}
    spacings: list[Triple] = []
    sizes: list[IntTriple] = []
    counts: list[int] = []
    diameters: list[float] = []
    voxels = np.zeros(len(labels))
    for patient in patients:
        case = read_case(cohort, patient, spec)
        grid = case.image.grid
        spacings.append(_triple(grid.spacing_mm))
        sizes.append(_int_triple(grid.size))
        values = case.image.array
        samples["foreground"].append(_sample(rng, values[case.labels > 0]))
        for value, name in enumerate(labels[1:], start=1):
            samples[name].append(_sample(rng, values[case.labels == value]))
        voxels += np.bincount(case.labels.ravel(), minlength=len(labels))[: len(labels)]
        components, n = ndimage.label(case.labels == len(labels) - 1)
        counts.append(int(n))
        volume_mm3 = np.bincount(components.ravel())[1:] * float(np.prod(grid.spacing_mm))
        diameters.extend(float(d) for d in np.cbrt(6.0 * volume_mm3 / math.pi))
        progress()
    intensity = {}
    for name, parts in samples.items():
        joined = np.concatenate(parts) if parts else np.empty(0)
        if joined.size == 0:
            raise SegmentError(f"{cohort.root}: no {name} voxel in any {spec.scan} mask")
        intensity[name] = _stats(joined)
    return TaskFingerprint(
        spec=spec,
        patients=patients,
        spacings_mm=spacings,
        sizes=sizes,
        median_spacing_mm=tuple(float(v) for v in np.median(np.array(spacings), axis=0)),
        median_size=tuple(int(v) for v in np.median(np.array(sizes), axis=0)),
        intensity=intensity,
        label_fractions={n: float(v / voxels.sum()) for n, v in zip(labels, voxels, strict=True)},
        lesions_per_case=counts,
        lesion_diameters_mm=sorted(round(d, 2) for d in diameters),
    )


def fingerprint(
    cohort: Cohort,
    tasks: dict[str, TaskSpec] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Fingerprint:
    """Measure ``cohort``'s segmentation data for each task (default: ``DEFAULT_TASKS``).

    A task whose scan or masks the cohort does not declare, or that fewer than two patients
    have (one to train, one to validate), gets no network and is listed in ``skipped``.
    """
    tasks = DEFAULT_TASKS if tasks is None else tasks
    declared = (
        set()
        if cohort.schema.images is None
        else {*cohort.schema.images.scans, *cohort.schema.images.masks}
    )
    chosen: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for name, spec in tasks.items():
        needed = [spec.scan, spec.lesion, *([spec.liver] if spec.liver else [])]
        missing = [n for n in needed if n not in declared]
        if missing:
            skipped[name] = f"cohort.yaml declares no image {', '.join(missing)}"
            continue
        patients = task_patients(cohort, spec)
        if len(patients) < 2:
            skipped[name] = f"{len(patients)} patients have {', '.join(needed)}; 2 are needed"
            continue
        chosen[name] = patients
    if not chosen:
        raise SegmentError(
            f"{cohort.root}: nothing to train a segmenter on: "
            + "; ".join(f"{t}: {why}" for t, why in skipped.items())
        )
    total = sum(len(p) for p in chosen.values())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    measured = {t: _task_fingerprint(cohort, tasks[t], p, step) for t, p in chosen.items()}
    return Fingerprint(cohort=cohort.schema.name, tasks=measured, skipped=skipped)


def _target_spacing(median_spacing: Triple, median_size: IntTriple, budget: Budget) -> Triple:
    """The median spacing, coarsened (finest axes first) until the median image fits."""
    spacing = list(median_spacing)
    extent = [n * s for n, s in zip(median_size, median_spacing, strict=True)]

    def voxels() -> float:
        return float(np.prod([e / s for e, s in zip(extent, spacing, strict=True)]))

    while voxels() > budget.max_image_voxels:
        finest = min(spacing)
        spacing = [s * 1.05 if s <= finest * 1.0001 else s for s in spacing]
    return (round(spacing[0], 4), round(spacing[1], 4), round(spacing[2], 4))


def _topology(
    spacing: Triple, shape: IntTriple, budget: Budget
) -> tuple[list[IntTriple], list[IntTriple]]:
    """nnU-Net's rule: pool an axis while its spacing is at most twice the finest and its
    feature map stays at least ``min_feature_map``; a 3-wide kernel along an axis once its
    spacing is at most twice the finest (1 before: a thick-slice axis)."""
    current = list(spacing)
    size = list(shape)
    kernels: list[IntTriple] = []
    strides: list[IntTriple] = [(1, 1, 1)]
    for _level in range(budget.max_levels):
        finest = min(current)
        kernels.append(_int_triple([3 if s <= 2 * finest else 1 for s in current]))
        pool = [
            s <= 2 * finest and n // 2 >= budget.min_feature_map
            for s, n in zip(current, size, strict=True)
        ]
        if len(kernels) == budget.max_levels or not any(pool):
            break
        strides.append(_int_triple([2 if p else 1 for p in pool]))
        current = [s * 2 if p else s for s, p in zip(current, pool, strict=True)]
        size = [n // 2 if p else n for n, p in zip(size, pool, strict=True)]
    return kernels[: len(strides)], strides


def _patch(median_shape: list[int], spacing: Triple, budget: Budget) -> list[int]:
    """The median image's shape, its longest side (in mm) cut until it fits the budget."""
    patch = list(median_shape)
    while math.prod(patch) > budget.max_patch_voxels:
        longest = max(range(3), key=lambda a: patch[a] * spacing[a])
        patch[longest] = max(budget.min_feature_map, int(patch[longest] * 0.9))
    return patch


def _task_plan(task: TaskFingerprint, budget: Budget, spacing: Triple | None) -> TaskPlan:
    if spacing is None:
        spacing = _target_spacing(task.median_spacing_mm, task.median_size, budget)
    median_shape = [
        max(1, round(n * s / t))
        for n, s, t in zip(task.median_size, task.median_spacing_mm, spacing, strict=True)
    ]
    patch = _patch(median_shape, spacing, budget)
    kernels, strides = _topology(spacing, (patch[0], patch[1], patch[2]), budget)
    divisor = [math.prod(s[a] for s in strides) for a in range(3)]
    patch = [max(d, (n // d) * d) for n, d in zip(patch, divisor, strict=True)]
    filters = [
        min(budget.base_filters * 2**level, budget.max_filters) for level in range(len(strides))
    ]
    foreground = task.intensity["foreground"]
    batch = int(np.clip(budget.batch_voxels // math.prod(patch), 2, 8))
    return TaskPlan(
        spec=task.spec,
        labels=task.spec.labels,
        target_spacing_mm=spacing,
        patch_size=(patch[0], patch[1], patch[2]),
        normalisation=Normalisation(
            clip_low=foreground.p00_5,
            clip_high=foreground.p99_5,
            mean=foreground.mean,
            std=max(foreground.std, 1e-3),
        ),
        network=NetworkPlan(kernel_sizes=kernels, strides=strides, filters=filters),
        batch_size=batch,
    )


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validated_plan(value: dict[str, Any], source: str) -> Plan:
    try:
        return Plan.model_validate(value)
    except ValidationError as exc:
        lines = [
            line.replace("Extra inputs are not permitted", "unknown key") for line in describe(exc)
        ]
        raise SegmentError("\n".join(f"{source}: {line}" for line in lines)) from None


def plan(
    fingerprint: Fingerprint, overrides: dict[str, Any] | None = None, *, source: str = "config"
) -> Plan:
    """The plan for ``fingerprint``, with ``overrides`` (a nested mapping of Plan fields, as a
    config file holds them) applied last. ``budget`` and a task's ``target_spacing_mm`` are
    read first, so the fields derived from them (patch, network, batch) follow them unless
    overridden too. A key that is not a field of the plan, or a task without a network, is a
    ``SegmentError`` naming ``source`` and the key."""
    overrides = overrides or {}
    check_override_keys(overrides, source)
    unknown = set(overrides.get("tasks") or {}) - set(fingerprint.tasks)
    if unknown:
        raise SegmentError(
            f"{source}: tasks.{sorted(unknown)[0]}: unknown task (this cohort has "
            f"{', '.join(fingerprint.tasks)})"
        )
    first = _validated_plan({"budget": overrides.get("budget", {}), "tasks": {}}, source)
    tasks = {}
    for name, task in fingerprint.tasks.items():
        wanted = ((overrides.get("tasks") or {}).get(name) or {}).get("target_spacing_mm")
        spacing = None if wanted is None else _validated_spacing(wanted, source, name)
        tasks[name] = _task_plan(task, first.budget, spacing).model_dump(mode="json")
    planned = {"budget": first.budget.model_dump(mode="json"), "tasks": tasks}
    return _validated_plan(_merge(planned, overrides), source)


def _validated_spacing(value: Any, source: str, task: str) -> Triple:
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or min(values) <= 0:
        raise SegmentError(
            f"{source}: tasks.{task}.target_spacing_mm: three positive numbers (x, y, z) in mm"
        )
    return (values[0], values[1], values[2])


def check_override_keys(overrides: dict[str, Any], source: str) -> None:
    """Refuse, before any work, a key that is not a field of the plan (one line each, with the
    known keys); the values are checked when the plan is made."""
    problems: list[str] = []

    def walk(value: Any, model: type[BaseModel], path: str) -> None:
        if not isinstance(value, dict):
            return
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if model is Plan and key == "tasks":
                for task, fields in (sub if isinstance(sub, dict) else {}).items():
                    walk(fields, TaskPlan, f"{where}.{task}")
                continue
            field = model.model_fields.get(str(key))
            if field is None:
                known = ", ".join(model.model_fields)
                problems.append(f"{source}: {where}: unknown key (known: {known})")
                continue
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(sub, annotation, where)

    walk(overrides, Plan, "")
    if problems:
        raise SegmentError("\n".join(problems))


def load_overrides(path: Path) -> dict[str, Any]:
    """A segmentation config file (YAML): a mapping of the Plan fields to override, its keys
    checked (``check_override_keys``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmentError(f"{path}: cannot be read ({exc})") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SegmentError(f"{path}: not valid YAML ({exc})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SegmentError(f"{path}: not a mapping of plan fields (key: value)")
    check_override_keys(value, str(path))
    return value
