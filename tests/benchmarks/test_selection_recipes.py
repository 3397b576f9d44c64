"""The selection-recipe benchmark's pieces (benchmarks/selection_recipes.py): the generated
study configs and the tables and choice built from the figures, on made-up figures (no study
is run here)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from benchmarks.selection_recipes import (
    DATASETS,
    RECIPES,
    choose_default,
    done_when,
    eligible,
    recipe_config,
    recipe_table,
)

from hepablate.study.config import SURVIVAL_MODELS, StudyConfig


def _entry(value: float, low: float, high: float) -> dict[str, Any]:
    return {"metric": "auc", "value": value, "ci": [low, high]}


def _figures(values: dict[str, float], width: float = 0.05) -> dict[str, dict[str, Any]]:
    return {r: {"linear": _entry(v, v - width, v + width)} for r, v in values.items()}


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.key)
def test_every_recipe_config_is_a_valid_study_on_the_same_folds(dataset: Any) -> None:
    base = yaml.safe_load(dataset.config.read_text(encoding="utf-8"))
    survival = base["models"][0]["kind"] in SURVIVAL_MODELS
    configs = {
        recipe: StudyConfig.model_validate(
            recipe_config(base, recipe, survival=survival, repeats=2)
        )
        for recipe in RECIPES
    }
    validations = {c.validation for c in configs.values()}
    assert len(validations) == 1  # same folds, repeats and seed for every recipe
    validation = validations.pop()
    assert validation.repeats == 2 and validation.permutations == 0
    assert validation.seed == base["validation"]["seed"]
    for recipe, config in configs.items():
        assert [s.method for s in config.selection] == [s["method"] for s in RECIPES[recipe]]
        assert [(m.name, m.kind, m.clinical_only) for m in config.models] == [
            ("linear", "cox" if survival else "logistic", False)
        ]
        assert config.features == StudyConfig.model_validate(base).features
    assert configs["none"].selection == ()


def test_the_default_is_the_best_mean_and_a_tie_goes_to_the_simpler_recipe() -> None:
    results = {
        "a": _figures({"none": 0.70, "nzv": 0.71, "nzv_redundancy_fdr": 0.60}),
        "b": _figures({"none": 0.80, "nzv": 0.80, "nzv_redundancy_fdr": 0.83}),
    }
    chosen, means = choose_default(results)
    assert means == pytest.approx({"none": 0.75, "nzv": 0.755, "nzv_redundancy_fdr": 0.715})
    # nzv is best by 0.005, within the tie: none has fewer steps
    assert chosen == "none"
    results["a"]["nzv"]["linear"]["value"] = 0.73
    assert choose_default(results)[0] == "nzv"
    # a recipe missing on one data set is not a candidate
    del results["b"]["nzv"]
    assert choose_default(results)[0] == "none"


def test_only_recipes_meeting_the_done_when_on_every_real_table_are_chosen() -> None:
    results = {
        # nzv is best on the mean but 0.002 below the plain model on the real table "a"
        "a": _figures({"none": 0.561, "icc": 0.561, "nzv": 0.559, "nzv_redundancy_fdr": 0.40}),
        "b": _figures({"none": 0.649, "icc": 0.649, "nzv": 0.675, "nzv_redundancy_fdr": 0.66}),
        "virtual": _figures({"none": 0.70, "icc": 0.72, "nzv": 0.72, "nzv_redundancy_fdr": 0.9}),
    }
    assert eligible(results["a"]) == {"none", "icc"}  # fdr: below the plain model and the CI
    assert eligible(results["b"]) == {"none", "icc", "nzv", "nzv_redundancy_fdr"}
    chosen, means = choose_default(results)
    assert means["nzv"] > means["icc"] + 0.005
    assert chosen == "icc"  # higher mean than none, thanks to the virtual cohort
    # without eligibility (the first rule) the mean decides: fdr (0.653) ties with nzv (0.651),
    # which has fewer steps
    assert choose_default(results, real=[])[0] == "nzv"
    # counted as a real table, the virtual cohort (fdr's CI 0.85-0.95) leaves no recipe
    # eligible everywhere, and the first rule decides
    assert choose_default(results, real=["a", "b", "virtual"])[0] == "nzv"


def test_recipe_table_bolds_the_best_recipe_of_each_data_set() -> None:
    results = {
        "a": _figures({"none": 0.70, "nzv": 0.72}),
        "b": _figures({"none": 0.81, "nzv": 0.80}),
    }
    lines = recipe_table(results, {"a": "Set A", "b": "Set B"})
    assert lines[0] == "| recipe | Set A | Set B |"
    none = next(line for line in lines if line.startswith("| none"))
    nzv = next(line for line in lines if line.startswith("| near-zero variance |"))
    assert "0.700 (0.650-0.750) | **0.810** (0.760-0.860)" in none
    assert "**0.720** (0.670-0.770) | 0.800 (0.750-0.850)" in nzv
    assert len(lines) == 4  # header, rule, the two recipes that ran


def test_done_when_checks_the_best_recipes_ci_and_the_plain_model() -> None:
    results = {
        "a": _figures({"none": 0.70, "nzv": 0.72, "nzv_stability": 0.60}, width=0.03),
        "b": _figures({"none": 0.81, "nzv": 0.80, "nzv_stability": 0.90}, width=0.03),
    }
    lines = done_when(results, "nzv", {"a": "Set A", "b": "Set B"})
    row_a, row_b = lines[2], lines[3]
    # a: nzv is the best (within its own CI) and above none
    assert row_a.split(" | ")[3:] == ["yes", "0.700", "yes |"]
    # b: 0.80 is outside stability's 0.87-0.93, and below none's 0.81
    assert row_b.split(" | ")[3:] == ["NO", "0.810", "NO |"]
