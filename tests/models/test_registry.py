"""The registry of model kinds: every entry makes its estimator, seeded, with its grid's
parameters; the bundle's allow-list is the networks of the registry."""

from __future__ import annotations

import importlib

import pytest

from hepablate.models import DEFAULT_GRIDS, KINDS, make_model, model_kind, network_classes


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_makes_its_seeded_estimator(kind: str) -> None:
    entry = KINDS[kind]
    model = make_model(kind, seed=7)
    assert type(model) is entry.estimator_class()
    params = model.get_params()
    if entry.seed_parameter is not None:
        assert params[entry.seed_parameter] == 7
    assert set(DEFAULT_GRIDS[kind]) <= set(params)  # the grid tunes what the model has
    assert ("crops" in params) == entry.crops  # the study sets crops for the image models
    # the public path a bundle's model.json names it by imports to this very class
    module, _, name = entry.class_path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is type(model)


def test_the_bundles_allow_list_is_the_registrys_networks() -> None:
    allowed = network_classes()
    assert set(allowed) == {e.class_path for e in KINDS.values() if e.saved_as == "safetensors"}
    assert all(hasattr(cls, "from_state") and hasattr(cls, "to_state") for cls in allowed.values())
    assert "hepablate.models.multimodal.MultimodalClassifier" in allowed  # as old bundles name it


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown model kind 'svm' \(the kinds: logistic, "):
        model_kind("svm")
