"""The extract job: the FeatureTable written and returned, the cohort checked first, and the
output and settings checked before the cohort is read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hepablate import configs
from hepablate.app import extract_cohort
from hepablate.features.extract import ExtractionConfigError
from hepablate.outputs import OutputError
from tests.app.conftest import Recorder, assert_counted

pytestmark = pytest.mark.slow  # the example's images, registered and measured


def test_the_table_written_is_the_table_returned(
    example_cohort: Path, tmp_path: Path, recorder: Recorder
) -> None:
    out = tmp_path / "features.parquet"
    result = extract_cohort(
        example_cohort,
        out,
        config=configs.path("light_extraction"),
        workers=1,
        progress=recorder,
    )
    assert result.out == out
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, result.table, check_like=False)
    patients = written["group"].nunique()
    assert patients == 6 and (tmp_path / "features.cache").is_dir()
    assert result.table.attrs["hepablate"]["rows"] == "tumour"
    assert recorder.steps == ["checking the cohort", "extracting patients"]
    assert_counted(recorder.counts("checking the cohort"), patients)
    assert_counted(recorder.counts("extracting patients"), patients)


def test_the_output_then_the_settings_are_checked_before_the_cohort(
    example_cohort: Path, tmp_path: Path, recorder: Recorder
) -> None:
    notes = tmp_path / "notes.parquet"
    notes.write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match="not a FeatureTable"):
        extract_cohort(example_cohort, notes, progress=recorder)
    settings = tmp_path / "extraction.yaml"
    settings.write_text("no_such_setting: 1\n", encoding="utf-8")
    with pytest.raises(ExtractionConfigError, match="no_such_setting"):
        extract_cohort(example_cohort, tmp_path / "f.parquet", config=settings, progress=recorder)
    assert recorder.calls == []  # the cohort was not read
    assert notes.read_text(encoding="utf-8") == "mine"
