"""The study config: documented field by field, examples valid, errors that name the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
import yaml

from hepablate import configs
from hepablate.features.extract import load_extraction_config
from hepablate.study.config import (
    FeatureSources,
    ModelKind,
    SelectorName,
    StudyConfig,
    StudyConfigError,
    ValidationScheme,
    load_study_config,
)
from tests.conftest import REPO

DOC = (REPO / "docs" / "study-config.md").read_text(encoding="utf-8")


def _documented_example() -> dict:  # type: ignore[type-arg]
    block = re.search(r"## Fields\n\n```yaml\n(.*?)```", DOC, re.S)
    assert block is not None
    return yaml.safe_load(block.group(1))  # type: ignore[no-any-return]


def test_the_documented_example_is_a_valid_config_naming_every_field() -> None:
    example = _documented_example()
    config = StudyConfig.model_validate(example)

    assert set(example) == set(StudyConfig.model_fields)
    assert set(example["features"]) == set(FeatureSources.model_fields)
    assert set(example["validation"]) == set(ValidationScheme.model_fields)
    assert config.validation.bootstrap == 1000
    # every selector and model kind has a row in the doc's tables
    for method in get_args(SelectorName):
        assert f"| `{method}` |" in DOC
    for kind in get_args(ModelKind):
        assert f"| `{kind}` |" in DOC


@pytest.mark.parametrize(
    "path",
    [
        *sorted((REPO / "examples" / "studies").glob("*.yaml")),
        configs.path("virtual_ltp_24m"),
    ],
    ids=lambda p: p.name,
)
def test_example_study_configs_are_valid(path: Path) -> None:
    config = load_study_config(path)
    assert config.endpoint


def test_the_shipped_extraction_config_is_valid() -> None:
    config = load_extraction_config(configs.path("light_extraction"))
    assert config.regions == ("tumour", "ring") and config.crops.enabled


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("endpoint: ltp_24m\nvalidation: {folds: 1, repats: 2}\n", encoding="utf-8")
    with pytest.raises(StudyConfigError) as error:
        load_study_config(path)
    message = str(error.value)
    assert str(path) in message and "folds" in message and "repats" in message


def test_models_of_the_wrong_kind_for_the_endpoint_are_refused() -> None:
    config = StudyConfig.model_validate(
        {"endpoint": "ltp", "models": [{"name": "lr", "kind": "logistic"}]}
    )
    with pytest.raises(StudyConfigError, match="time-to-event"):
        config.models_for(survival=True)
    assert StudyConfig(endpoint="x").models_for(survival=True)[0].kind == "cox"
    with pytest.raises(ValueError, match="unique"):
        StudyConfig.model_validate(
            {
                "endpoint": "x",
                "models": [{"name": "a", "kind": "cox"}, {"name": "a", "kind": "cox"}],
            }
        )
