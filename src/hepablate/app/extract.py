"""The job ``extract``: the FeatureTable of a cohort, and the steps that join features with
other packages (features never load bundles): an extraction whose ``deep.image_*`` columns
come from an encoder bundle, one whose masks a segmentation bundle draws (``masks: auto`` or
``manual_else_auto``), the FeatureTable of a study from a ``.parquet`` file or a cohort folder,
and the comparison of the margins measured from manual and from automatic masks.

Automatic masks: the patients that need them are segmented here, before extraction, into a
temporary folder of cohort-format masks per patient, and handed to
:func:`hepablate.features.extract.extract` as ``AutoMasks``. Files rather than a hook that
extraction calls: the patients' extraction runs in worker processes, which then need no
network (a file path crosses a process boundary, a loaded network does not cheaply), the
masks are digested into each patient's cache key like any mask. A patient is segmented by
:func:`hepablate.segment.segment_patient`, which numbers each zone after the tumour it treats
(registering the post CT onto the pre CT; the manual tumours when the patient has them).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.app.validate import load_valid_cohort
from hepablate.bundle.encoder import load_encoder
from hepablate.cohort import PATIENT_INDEX, Cohort
from hepablate.features.config import MaskMode, SegmenterRef
from hepablate.features.extract import (
    ExtractionConfig,
    ExtractionConfigError,
    check_deep,
    extract,
    load_extraction_config,
)
from hepablate.features.masks import AutoMasks, needs_auto
from hepablate.features.table import FeatureTableError, is_feature_table, read_feature_table
from hepablate.outputs import check_output_file, staged_file
from hepablate.study.config import StudyConfig, StudyConfigError

if TYPE_CHECKING:
    from hepablate.segment import Segmenter

__all__ = [
    "MARGIN",
    "ExtractResult",
    "MarginComparison",
    "compare_margins",
    "extract_cohort",
    "extract_features",
    "load_feature_table",
    "load_segmenter_for",
    "segment_patients",
]

MARGIN = "geom.minimal_ablative_margin_mm"
# Which masks each task of a segmentation bundle draws (segment.DEFAULT_TASKS), as the
# extraction's mask roles (fields of ImageNames): the scan it reads, its lesions, its liver.
_TASK_ROLES: dict[str, tuple[str, str, str]] = {
    "pre": ("pre_ct", "tumours", "liver"),
    "post": ("post_ct", "ablation", "post_liver"),
}


@dataclass(frozen=True)
class ExtractResult:
    """A written FeatureTable: the file and the table (its ``attrs['hepablate']``: the
    extraction config, the warnings, failed patients and robustness)."""

    out: Path
    table: pd.DataFrame


def extract_cohort(
    cohort_dir: Path,
    out: Path,
    *,
    config: ExtractionConfig | Path | None = None,
    masks: MaskMode | None = None,
    segmenter: Path | None = None,
    register: bool = True,
    workers: int = 0,
    scheduler: str | None = None,
    cache: Path | None = None,
    use_cache: bool = True,
    overwrite: bool = False,
    progress: Progress = NO_PROGRESS,
) -> ExtractResult:
    """Validate a cohort, measure every tumour and write its FeatureTable to ``out``.

    ``config`` is an ExtractionConfig or a YAML/JSON file of one (default: the defaults);
    ``masks`` and ``segmenter`` (a segmentation bundle) replace its settings of those names;
    ``register=False`` leaves the post-ablation CT unregistered. Each patient's result is
    cached (in ``cache``, default ``out``'s name + ``.cache``; none without ``use_cache``), so
    a rerun extracts only what changed. ``workers`` processes (0: the CPU count), or the Dask
    cluster at ``scheduler``. Checked before any work, in this order: ``out``
    (``OutputError``: replaced only if a FeatureTable, or with ``overwrite``), the config
    (``ExtractionConfigError``; a segmenter that is refused is one too), the cohort
    (``CohortValidationError``); ``out`` is replaced only when the new table is complete.
    """
    check_output_file(out, overwrite=overwrite, recognise=is_feature_table, what="a FeatureTable")
    # the settings before the cohort: reading every image takes a while
    updates: dict[str, Any] = {}
    if masks is not None:
        updates["masks"] = masks
    if segmenter is not None:
        updates["segmenter"] = segmenter
    if config is not None and not isinstance(config, ExtractionConfig):
        config = load_extraction_config(config, updates)
    else:
        config = _updated(config or ExtractionConfig(), updates)
    loaded = load_segmenter_for(config, scheduler)
    cohort = load_valid_cohort(cohort_dir, progress)
    if not register:
        config = config.model_copy(update={"register_post_ct": False})
    cache_dir = (cache or out.with_name(out.stem + ".cache")) if use_cache else None
    table = extract_features(
        cohort,
        config,
        workers=workers or os.cpu_count() or 1,
        scheduler=scheduler,
        cache=cache_dir,
        progress=progress,
        segmenter=loaded,
    )
    with staged_file(out) as partial:
        table.to_parquet(partial)
    return ExtractResult(out, table)


def extract_features(
    cohort: Cohort,
    config: ExtractionConfig | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    cache: Path | None = None,
    progress: Progress = NO_PROGRESS,
    segmenter: Segmenter | None = None,
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort (:func:`hepablate.features.extract.extract`), with
    the ``deep.image_*`` columns of ``config.deep``'s encoder bundle, loaded and verified before
    any patient is extracted (a ``BundleError`` if it is refused), and with ``config.masks``
    ``auto`` or ``manual_else_auto`` the masks of ``config.segmenter`` (``segmenter``: that
    bundle already loaded by :func:`load_segmenter_for`): the patients that need them are
    segmented first, and ``config.segmenter.id`` records which bundle drew them."""
    config = config or ExtractionConfig()
    encoder = None
    if config.deep is not None:
        check_deep(config, cache)
        encoder = load_encoder(config.deep)
    if config.masks != "manual" and segmenter is None:
        segmenter = load_segmenter_for(config, scheduler)
    with _mask_folder(config) as folder:
        auto_masks = None
        if config.masks != "manual":
            assert segmenter is not None and folder is not None
            auto_masks = segment_patients(cohort, config, segmenter, folder, progress)
            config = _updated(config, {"segmenter": auto_masks.segmenter})
        progress.step("extracting patients")
        return extract(
            cohort,
            config,
            workers=workers,
            scheduler=scheduler,
            cache=cache,
            progress=progress.update,
            encoder=encoder,
            auto_masks=auto_masks,
        )


def _updated(config: ExtractionConfig, updates: dict[str, Any]) -> ExtractionConfig:
    """``config`` with ``updates``, validated again (an ExtractionConfigError if they clash)."""
    if not updates:
        return config
    try:
        return ExtractionConfig.model_validate(
            {**config.model_dump(mode="json"), **_as_json(updates)}
        )
    except ValidationError as exc:
        raise ExtractionConfigError(str(exc)) from None


def _as_json(updates: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.model_dump(mode="json")
        if isinstance(v, SegmenterRef)
        else str(v)
        if isinstance(v, Path)
        else v
        for k, v in updates.items()
    }


@contextmanager
def _mask_folder(config: ExtractionConfig) -> Iterator[Path | None]:
    """Where the automatic masks are written: a temporary folder, removed after extraction."""
    if config.masks == "manual":
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="hepablate-masks-") as folder:
        yield Path(folder)


def load_segmenter_for(config: ExtractionConfig, scheduler: str | None = None) -> Segmenter | None:
    """The segmentation bundle of ``config`` (None with ``masks: manual``), verified, its id
    the pinned one if the config pins one; a refused bundle, a bundle without the networks
    ``masks: auto`` needs, or a Dask ``scheduler`` (its workers cannot read masks written on
    this machine) is an ``ExtractionConfigError``."""
    if config.masks == "manual":
        return None
    assert config.segmenter is not None  # the config's own rule
    if scheduler is not None:
        raise ExtractionConfigError(
            f"masks: {config.masks} with a Dask scheduler: the automatic masks are written on "
            "this machine, where the cluster's workers cannot read them; extract without it"
        )
    # Imported here: torch and MONAI load in seconds, and manual masks need neither.
    from hepablate.segment import SegmentError, load_segmenter, segmenter_id

    ref = config.segmenter
    try:
        segmenter = load_segmenter(ref.bundle)
        found = segmenter_id(ref.bundle)
    except SegmentError as exc:
        raise ExtractionConfigError(f"segmenter: {exc}") from None
    if ref.id is not None and found != ref.id:
        raise ExtractionConfigError(
            f"segmenter: {ref.bundle} is bundle {found}, not the configured {ref.id}"
        )
    usable = [t for t in _TASK_ROLES if t in segmenter.networks]
    if not usable:
        raise ExtractionConfigError(
            f"segmenter: {ref.bundle} has none of the tasks pre and post "
            f"(it has {', '.join(segmenter.networks)})"
        )
    if config.masks == "auto" and len(usable) < len(_TASK_ROLES):
        missing = ", ".join(t for t in _TASK_ROLES if t not in usable)
        raise ExtractionConfigError(
            f"masks: auto: {ref.bundle} has no network for the {missing} task, so those masks "
            "would be missing for every patient; use masks: manual_else_auto"
        )
    return segmenter


def segment_patients(
    cohort: Cohort,
    config: ExtractionConfig,
    segmenter: Segmenter,
    folder: Path,
    progress: Progress = NO_PROGRESS,
) -> AutoMasks:
    """Segment every patient of ``cohort`` that ``config.masks`` says needs automatic masks
    (every one with ``auto``; with ``manual_else_auto`` those lacking a mask a task of the
    segmenter draws), into ``folder/<patient>/``. A scan the segmenter refuses (not a CT, too
    few slices) is a warning of the patient's: its masks stay missing and the extraction says
    what that leaves empty."""
    from hepablate.segment import SegmentError, segment_patient, segmenter_id

    names = config.images
    todo: dict[str, dict[str, Path]] = {}
    for patient in cohort.patient_ids:
        images = cohort.images.get(patient, {})
        scans = {
            task: images[getattr(names, scan)]
            for task, (scan, lesion, liver) in _TASK_ROLES.items()
            if task in segmenter.networks
            and getattr(names, scan) in images
            and any(needs_auto(config.masks, images, names, r) for r in (lesion, liver))
        }
        if "post" in scans and "pre" in segmenter.networks and names.pre_ct in images:
            # The zones are numbered after the tumours they treat: that needs the pre CT.
            scans["pre"] = images[names.pre_ct]
        if scans:
            todo[patient] = scans
    ref = SegmenterRef(bundle=segmenter.path, id=segmenter_id(segmenter.path))
    paths: dict[str, dict[str, Path]] = {}
    warnings: list[dict[str, Any]] = []
    progress.step("segmenting patients")
    progress.update(0, len(todo))
    for done, (patient, scans) in enumerate(todo.items(), start=1):
        out = folder / patient
        out.mkdir(parents=True)
        images = cohort.images.get(patient, {})
        manual = (
            None
            if needs_auto(config.masks, images, names, "tumours")
            else images.get(names.tumours)
        )
        try:
            segment_patient(segmenter, scans, out, manual)
        except SegmentError as exc:
            warnings.append(
                {
                    "patient": patient,
                    "tumour": None,
                    "step": "segmentation",
                    "columns": [],
                    "reason": f"not segmented: {exc}",
                    "left_empty": False,
                }
            )
        else:
            paths[patient] = _drawn(segmenter, scans, out)
        progress.update(done, len(todo))
    return AutoMasks(mode=config.masks, segmenter=ref, paths=paths, warnings=warnings)


def _drawn(segmenter: Segmenter, scans: dict[str, Path], out: Path) -> dict[str, Path]:
    """The masks ``segment_patient`` wrote into ``out``, by mask role (the extraction takes
    those the patient is to get from the segmenter)."""
    found: dict[str, Path] = {}
    for task in scans:
        _scan, lesion, liver = _TASK_ROLES[task]
        spec = segmenter.plan.tasks[task].spec
        for role, name in ((lesion, spec.lesion), (liver, spec.liver)):
            path = out / f"{name}.nii.gz"
            if name is not None and path.is_file():
                found[role] = path
    return found


def load_feature_table(
    source: Path, config: StudyConfig, progress: Progress = NO_PROGRESS
) -> pd.DataFrame:
    """A study's FeatureTable: a ``.parquet`` file, or a cohort folder extracted with the study
    config's ``extraction`` settings; a StudyConfigError says what is wrong with the source."""
    source = Path(source)
    if source.is_file():
        if source.suffix != ".parquet":
            raise StudyConfigError(f"{source}: expected a FeatureTable (.parquet) or a cohort")
        try:
            return read_feature_table(source)
        except FeatureTableError as exc:
            raise StudyConfigError(str(exc)) from None
    if not (source / "cohort.yaml").is_file():
        raise StudyConfigError(f"{source}: neither a FeatureTable nor a cohort folder")
    try:  # before the cohort is read: a wrong setting is found in a second
        extraction = ExtractionConfig.model_validate(config.extraction or {})
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(["extraction", *(str(part) for part in error["loc"])]) + f": {error['msg']}"
            for error in exc.errors()
        )
        raise StudyConfigError(f"the study config's {problems}") from exc
    cohort = load_valid_cohort(source, progress)
    return extract_features(
        cohort, extraction, workers=config.workers or os.cpu_count() or 1, progress=progress
    )


@dataclass(frozen=True)
class MarginComparison:
    """The minimal ablative margin of the same tumours from manual and from automatic masks.

    ``tumours``: per tumour (patient, tumour id) ``manual_mm``, ``auto_mm`` and ``difference_mm``
    (auto minus manual; NaN where either was not measured). The summary is over the tumours
    measured both ways: their count, their patients' count and the median absolute difference
    (None without any). ``manual`` and ``auto`` are the two FeatureTables.
    """

    tumours: pd.DataFrame
    n_tumours: int
    n_patients: int
    median_absolute_difference_mm: float | None
    manual: pd.DataFrame
    auto: pd.DataFrame


def compare_margins(
    cohort: Cohort,
    config: ExtractionConfig,
    segmenter: Path,
    *,
    workers: int = 1,
    cache: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> MarginComparison:
    """Extract the cohort twice, with its own masks and with ``segmenter``'s for every patient
    (``masks: auto``), and compare the minimal ablative margin tumour by tumour: how much what
    a study reports of the margin rests on who drew the masks.

    The change of a model's AUC between the two belongs to a later step (a study run on each
    FeatureTable with the same outer splits, which are seeded and grouped by patient, and the
    paired difference of the two out-of-fold AUCs on the same patients, by DeLong's test for
    correlated AUCs, ``validation.binary``, or the patient-cluster bootstrap of the
    difference); this gives the two tables it needs.
    """
    manual = extract_features(
        cohort,
        _updated(config, {"masks": "manual", "segmenter": None}),
        workers=workers,
        cache=cache,
        progress=progress,
    )
    auto = extract_features(
        cohort,
        _updated(config, {"masks": "auto", "segmenter": segmenter}),
        workers=workers,
        cache=cache,
        progress=progress,
    )
    pairs = pd.DataFrame(
        {
            "manual_mm": manual[MARGIN].astype(float),
            "auto_mm": auto[MARGIN].reindex(manual.index).astype(float),
        }
    )
    pairs["difference_mm"] = pairs["auto_mm"] - pairs["manual_mm"]
    both = pairs["difference_mm"].dropna()
    return MarginComparison(
        tumours=pairs,
        n_tumours=len(both),
        n_patients=both.index.get_level_values(PATIENT_INDEX).nunique(),
        median_absolute_difference_mm=float(both.abs().median()) if len(both) else None,
        manual=manual,
        auto=auto,
    )
