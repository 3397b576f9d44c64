"""The study config: documented field by field, examples valid, errors that name the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
import yaml

from hepablate import configs
from hepablate.features.extract import load_extraction_config
from hepablate.models import KINDS
from hepablate.schemas.metrics import ModelKind
from hepablate.selection import SELECTORS
from hepablate.study.config import (
    BINARY_MODELS,
    DEEP_MODELS,
    SURVIVAL_MODELS,
    FeatureSources,
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
    # every selector and model kind of the registries has a row in the doc's tables, the
    # kind under its endpoint
    for method in SELECTORS:
        assert f"| `{method}` |" in DOC
    for kind, entry in KINDS.items():
        assert f"| {'time-to-event' if entry.survival else 'binary'} | `{kind}` |" in DOC


def test_the_registry_and_the_schemas_name_the_same_model_kinds() -> None:
    # hepablate.schemas sits below models and cannot import the registry: its Literal is
    # held to it here, in the order of the registry.
    assert list(get_args(ModelKind)) == list(KINDS)
    assert set(KINDS) == BINARY_MODELS | SURVIVAL_MODELS
    assert not BINARY_MODELS & SURVIVAL_MODELS
    assert {"multimodal", "multimodal_surv", "mlp", "deep_surv", "deep_discrete"} == DEEP_MODELS


def test_an_unknown_selector_or_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown selector 'lasso' \(the selectors: near_zero"):
        StudyConfig.model_validate({"endpoint": "x", "selection": [{"method": "lasso"}]})
    with pytest.raises(ValueError, match=r"models\.0\.kind\n.*'logistic'"):
        StudyConfig.model_validate({"endpoint": "x", "models": [{"name": "m", "kind": "svm"}]})
    # the default models of each endpoint come from the registry's entries
    defaults = StudyConfig(endpoint="x").models_for(True)
    assert [(m.name, m.kind, m.clinical_only) for m in defaults] == [
        ("cox", "cox", False),
        ("random_survival_forest", "random_survival_forest", False),
        ("gradient_boosting", "gradient_boosting_survival", False),
        ("clinical_cox", "cox", True),
    ]


def test_the_default_selection_is_the_one_the_docs_state() -> None:
    # issue 16: chosen in docs/benchmarks.md "Selection recipes on real tables"; the example of
    # docs/study-config.md says its selection is the default, and so does the example study.
    default = StudyConfig(endpoint="x").selection
    assert default == ()
    # the documented example and the example study add the one step recommended with ICCs
    recommended = [("reproducible", {"min_icc": 0.75})]
    documented = StudyConfig.model_validate(_documented_example()).selection
    assert [(s.method, s.params) for s in documented] == recommended
    example = load_study_config(REPO / "examples" / "studies" / "virtual_ltp_survival.yaml")
    assert [(s.method, s.params) for s in example.selection] == recommended
    assert "**The default selection** (no `selection` in the config) is none" in DOC


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


def _load(tmp_path: Path, text: str | bytes) -> StudyConfig:
    path = tmp_path / "study.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_study_config(path)


def test_a_config_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError) as error:
        _load(tmp_path, "name: étude\nendpoint: ltp_24m\n".encode("latin-1"))
    assert str(tmp_path / "study.yaml") in str(error.value)
    assert "not UTF-8" in str(error.value) and "0xe9" in str(error.value)


def test_every_problem_is_one_line_naming_the_file_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError) as error:
        _load(tmp_path, "endpoint: ltp_24m\nvalidation: {folds: 1, repats: 2}\n")
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{tmp_path / 'study.yaml'}: validation.") for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "selection: [{method: univariate, params: {fdr: 0.1, bogus: 1}}]",
            "selection.0 (univariate).params.bogus: Univariate has no parameter 'bogus' "
            "(it has fdr, test)",
        ),
        (
            "selection: [{method: univariate, params: {fdr: high}}]",
            "selection.0 (univariate).params.fdr: Input should be a valid number",
        ),
        (
            "selection: [{method: redundancy, params: {force: [clin.age]}}]",
            "selection.0 (redundancy).params.force: set by the study from features.force",
        ),
        (
            "models: [{name: lr, kind: logistic, grid: {Cs: [1.0]}}]",
            "models.0 (lr).grid.Cs: LogisticRegression has no parameter 'Cs'",
        ),
        (
            "models: [{name: lr, kind: logistic, grid: {C: [1.0, -1]}}]",
            "models.0 (lr).grid.C: -1: The 'C' parameter of LogisticRegression must be a "
            "float in the range (0.0, inf]",
        ),
        (
            "models: [{name: forest, kind: random_forest, grid: {min_samples_leaf: []}}]",
            "models.0 (forest).grid.min_samples_leaf: an empty list",
        ),
        (
            "models: [{name: net, kind: mlp, grid: {embedding: [0, eight]}}]",
            "models.0 (net).grid.embedding: 'eight': Input should be a valid integer",
        ),
        (
            "models: [{name: net, kind: multimodal, grid: {crops: [null]}}]",
            "models.0 (net).grid.crops: set by the study from the FeatureTable's crops",
        ),
    ],
    ids=[
        "unknown-selector-parameter",
        "selector-value-of-another-type",
        "selector-parameter-set-by-the-study",
        "unknown-grid-name",
        "grid-value-out-of-range",
        "empty-grid",
        "network-grid-value-of-another-type",
        "network-parameter-set-by-the-study",
    ],
)
def test_selector_parameters_and_grids_are_checked_when_the_config_is_read(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(StudyConfigError) as error:
        _load(tmp_path, f"endpoint: ltp_24m\n{text}\n")
    assert f"{tmp_path / 'study.yaml'}: {expected}" in str(error.value)


def test_valid_grids_of_every_kind_pass(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "endpoint: ltp_24m\n"
        "selection: [{method: embedded, params: {Cs: [0.1, 1.0], cv: 3}}, "
        "{method: wrapper, params: {n_features: null, step: 0.5}}]\n"
        "models: [{name: lr, kind: logistic, grid: {C: [0.1, 1], solver: [saga]}}, "
        "{name: net, kind: multimodal, grid: {channels: [[8, 16]], verbose: [true]}}]\n",
    )
    assert config.models[1].grid == {"channels": [[8, 16]], "verbose": [True]}
