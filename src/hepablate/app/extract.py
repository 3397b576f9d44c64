"""The job ``extract``: the FeatureTable of a cohort, and the steps that join features with
other packages: an extraction whose ``deep.image_*`` columns come from an encoder bundle
(features never load bundles), and the FeatureTable of a study from a ``.parquet`` file or a
cohort folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from hepablate.app.progress import NO_PROGRESS, Progress
from hepablate.app.validate import load_valid_cohort
from hepablate.bundle.encoder import load_encoder
from hepablate.cohort import Cohort
from hepablate.features.extract import (
    ExtractionConfig,
    check_deep,
    extract,
    load_extraction_config,
)
from hepablate.features.table import FeatureTableError, is_feature_table, read_feature_table
from hepablate.outputs import check_output_file, staged_file
from hepablate.study.config import StudyConfig, StudyConfigError

__all__ = ["ExtractResult", "extract_cohort", "extract_features", "load_feature_table"]


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
    ``register=False`` leaves the post-ablation CT unregistered. Each patient's result is
    cached (in ``cache``, default ``out``'s name + ``.cache``; none without ``use_cache``), so
    a rerun extracts only what changed. ``workers`` processes (0: the CPU count), or the Dask
    cluster at ``scheduler``. Checked before any work, in this order: ``out``
    (``OutputError``: replaced only if a FeatureTable, or with ``overwrite``), the config
    (``ExtractionConfigError``), the cohort (``CohortValidationError``); ``out`` is replaced
    only when the new table is complete.
    """
    check_output_file(out, overwrite=overwrite, recognise=is_feature_table, what="a FeatureTable")
    # the settings before the cohort: reading every image takes a while
    if config is None:
        config = ExtractionConfig()
    elif not isinstance(config, ExtractionConfig):
        config = load_extraction_config(config)
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
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort (:func:`hepablate.features.extract.extract`), with
    the ``deep.image_*`` columns of ``config.deep``'s encoder bundle, loaded and verified before
    any patient is extracted (a ``BundleError`` if it is refused)."""
    config = config or ExtractionConfig()
    encoder = None
    if config.deep is not None:
        check_deep(config, cache)
        encoder = load_encoder(config.deep)
    progress.step("extracting patients")
    return extract(
        cohort,
        config,
        workers=workers,
        scheduler=scheduler,
        cache=cache,
        progress=progress.update,
        encoder=encoder,
    )


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
