"""The jobs of hepablate as plain functions: what the CLI calls, and the service will.

Each takes typed inputs and returns typed results; progress goes to a ``progress(done, total)``
callback, never to the terminal, so that a command line and a web page can show the same bar.
The CLI (:mod:`hepablate.cli`) only parses arguments, shows progress and maps errors to exit
codes. Here sit the steps that join several packages: an extraction whose ``deep.image_*``
columns come from an encoder bundle (features never load bundles), and the FeatureTable of a
study from a ``.parquet`` file or a cohort folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from hepablate.bundle.encoder import load_encoder
from hepablate.cohort import Cohort, load_cohort
from hepablate.features.extract import ExtractionConfig, check_deep, extract
from hepablate.features.table import FeatureTableError, read_feature_table
from hepablate.study.config import StudyConfig, StudyConfigError

__all__ = ["Progress", "extract_features", "load_feature_table"]

Progress = Callable[[int, int], None]


def extract_features(
    cohort: Cohort,
    config: ExtractionConfig | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The FeatureTable of a validated cohort (:func:`hepablate.features.extract.extract`), with
    the ``deep.image_*`` columns of ``config.deep``'s encoder bundle, loaded and verified before
    any patient is extracted."""
    config = config or ExtractionConfig()
    encoder = None
    if config.deep is not None:
        check_deep(config, cache)
        encoder = load_encoder(config.deep)
    return extract(
        cohort,
        config,
        workers=workers,
        scheduler=scheduler,
        cache=cache,
        progress=progress,
        encoder=encoder,
    )


def load_feature_table(source: Path, config: StudyConfig) -> pd.DataFrame:
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
    cohort = load_cohort(source)
    return extract_features(cohort, extraction, workers=config.workers or os.cpu_count() or 1)
