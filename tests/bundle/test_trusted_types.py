"""The skops types a bundle may hold are exactly the ones hepablate writes, and nothing else
loads, whatever its package: crafted files naming a function under numpy, scipy, scikit-learn,
scikit-survival or hepablate that would create a file are refused, and the file is not made.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from typer.testing import CliRunner

from hepablate import selection
from hepablate.bundle import BundleError, load_bundle, save_bundle, sign_bundle
from hepablate.bundle._skops import dump_skops, load_skops, skops_types
from hepablate.bundle.trusted_types import TRUSTED_TYPES
from hepablate.cli import app
from hepablate.models import KINDS
from hepablate.study.config import SelectionStep, SelectorName
from hepablate.study.pipeline import fit_selection, make_preparation, make_selection
from tests.bundle.synthetic import BINARY_MODELS, SURVIVAL_MODELS, rehash, study, table, train

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

SELECTORS: dict[SelectorName, dict[str, Any]] = {
    "near_zero_variance": {},
    "reproducible": {"min_icc": 0.5},
    "univariate": {"fdr": 0.5},
    "redundancy": {"max_correlation": 0.8},
    "mrmr": {"n_features": 3},
    "embedded": {"cv": 2},
    "wrapper": {"cv": 2},
    "stability": {"n_resamples": 5},
}


def test_the_kinds_and_selectors_fitted_here_are_the_registries() -> None:
    # every kind a bundle can hold without image crops (those have tests/bundle/
    # test_predict_images.py), every selector
    fitted = {m["kind"] for m in BINARY_MODELS + SURVIVAL_MODELS}
    assert fitted == {k for k, e in KINDS.items() if not e.crops}
    assert set(SELECTORS) == set(selection.SELECTORS)


@dataclass
class Kinds:
    frame: pd.DataFrame
    results: dict[str, Any]  # model name -> its study's result
    bundles: dict[str, Path]  # model name -> its bundle


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Kinds:
    """A bundle of every model kind: the binary ones and the time-to-event ones."""
    folder = tmp_path_factory.mktemp("kinds")
    frame = table()
    results: dict[str, Any] = {}
    bundles: dict[str, Path] = {}
    for survival, models in ((False, BINARY_MODELS), (True, SURVIVAL_MODELS)):
        result, summary = train(frame, study(models, survival=survival))
        for spec in models:
            name = spec["name"]
            results[name] = result
            bundles[name] = save_bundle(result, summary, folder / name, extraction=None, model=name)
    return Kinds(frame, results, bundles)


MODEL_NAMES = [m["name"] for m in BINARY_MODELS + SURVIVAL_MODELS]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_kind_loads_and_predicts_as_it_was_fitted(kinds: Kinds, name: str) -> None:
    bundle = load_bundle(kinds.bundles[name])
    result = kinds.results[name]
    assert bundle.manifest.model == name and bundle.trust.how == "signature"
    inputs = bundle.inputs(bundle.rows(kinds.frame))
    fitted = result.final[name]
    expected = (
        fitted.predict(inputs) if result.data.survival else fitted.predict_proba(inputs)[:, 1]
    )
    np.testing.assert_allclose(bundle.risk(inputs), expected, rtol=1e-12)


def _selector_pipelines(frame: pd.DataFrame) -> dict[str, Any]:
    """The preparation with each selector, fitted on a binary and on a time-to-event outcome,
    as a study's bundle would hold them."""
    inputs = frame[[c for c in frame.columns if not c.startswith("outcome.")]]
    binary = frame["outcome.ltp_24m"].to_numpy()
    survival = np.array(
        list(zip(frame["outcome.ltp.event"], frame["outcome.ltp.time_months"], strict=True)),
        dtype=[("event", bool), ("time", float)],
    )
    icc = dict.fromkeys(inputs.columns, 0.9)
    fitted: dict[str, Any] = {}
    for method, params in SELECTORS.items():
        for label, y in (("binary", binary), ("survival", survival)):
            pipeline = make_selection(
                inputs,
                (SelectionStep(method=method, params=params),),
                icc=icc,
                force=(),
                imputation="median",
                log=["clin.afp_ng_ml"],
            )
            fitted[f"{method} ({label})"] = fit_selection(
                pipeline, inputs, y, np.asarray(inputs.index)
            )
    return fitted


def test_the_trusted_types_are_exactly_the_ones_hepablate_writes(kinds: Kinds) -> None:
    """Each kind's and each selector's types are on the list, and each listed type is written
    by one of them: a new type fails here until it is reviewed, and the list holds no type
    that nothing writes."""
    written: dict[str, set[str]] = {}
    for name, folder in kinds.bundles.items():
        for file in sorted(folder.glob("*.skops")):
            written[f"{name}/{file.name}"] = set(skops_types(file.read_bytes(), file.name))
    for label, pipeline in _selector_pipelines(kinds.frame).items():
        written[label] = set(skops_types(dump_skops(pipeline), label))
    untrusted = {label: sorted(t - TRUSTED_TYPES) for label, t in written.items()}
    assert not any(untrusted.values()), {k: v for k, v in untrusted.items() if v}
    assert set().union(*written.values()) == TRUSTED_TYPES, sorted(
        TRUSTED_TYPES - set().union(*written.values())
    )
    # The deep networks' weights are safetensors; their preparation is skops like the others.
    assert {f"{n}/model.skops" for n in ("mlp", "deep_surv")}.isdisjoint(written)


@pytest.mark.xfail(
    raises=ValueError,
    strict=True,
    reason="iterative imputation cannot be fitted on a pandas frame with scikit-learn 1.9 "
    "(IterativeImputer writes into a read-only array); when it can, its types must be "
    "reviewed for TRUSTED_TYPES (this test then fails on them)",
)
def test_iterative_imputation_writes_only_trusted_types() -> None:
    inputs = table()[["clin.age", "rad.signal", "rad.noise0"]]
    preparation = make_preparation(inputs, "iterative").fit(inputs)
    assert set(skops_types(dump_skops(preparation), "iterative")) <= TRUSTED_TYPES


def test_the_same_model_gives_the_same_bytes_and_loads_alike(kinds: Kinds) -> None:
    """skops writes id(obj) and random names; dump_skops renumbers them, so a copy (other
    memory ids) gives the same file, and what it holds predicts as the original."""
    fitted = kinds.results["forest"].final["forest"]
    first, second = dump_skops(fitted), dump_skops(copy.deepcopy(fitted))
    assert first == second
    assert sio.dumps(fitted) != sio.dumps(copy.deepcopy(fitted))  # what skops alone writes
    loaded = load_skops(first, "model.skops")
    inputs = load_bundle(kinds.bundles["forest"]).inputs(kinds.frame)
    np.testing.assert_array_equal(loaded.predict_proba(inputs), fitted.predict_proba(inputs))


# Crafted payloads: functions under each package a prefix allow-list trusted, each of which
# creates `marker` when a skops loader calls it (a reduce node: the "constructor" and its
# arguments). Their liveness is checked first, so a refusal is not a payload that could not run.
def _json_node(value: Any) -> dict[str, Any]:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _reduce_node(function: str, args: list[Any]) -> dict[str, Any]:
    module, name = function.rsplit(".", 1)
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [_json_node(a) for a in args],
        },
    }


def _create(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


PAYLOADS: dict[str, tuple[str, Callable[[Path], list[Any]]]] = {
    # a testing helper that executes a string
    "numpy": ("numpy.testing._private.utils.runstring", lambda m: [_create(m), {}]),
    # one that runs a Python subprocess
    "sklearn": (
        "sklearn.utils._testing.assert_run_python_script_without_output",
        lambda m: [_create(m)],
    ),
    # ones that write a file
    "scipy": ("scipy.io.savemat", lambda m: [str(m), {}]),
    "sksurv": ("sksurv.io.arffwrite.writearff", lambda m: [{}, str(m)]),
    "hepablate": ("hepablate.bundle.signing.user_key", lambda m: [str(m)]),
}


def _crafted(preparation: bytes, node: dict[str, Any]) -> bytes:
    """A bundle's preparation.skops with ``node`` as its pipeline's ``memory``: it would load
    as the same pipeline, the payload run on the way (what a prediction would not show)."""
    with zipfile.ZipFile(io.BytesIO(preparation)) as original:
        entries = {n: original.read(n) for n in original.namelist()}
    schema = json.loads(entries["schema.json"])
    schema["content"]["content"]["memory"] = node
    entries["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name, data in entries.items():
            out.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("package", sorted(PAYLOADS))
def test_a_crafted_reduce_node_is_refused_and_does_not_run(
    kinds: Kinds, tmp_path: Path, package: str
) -> None:
    function, args = PAYLOADS[package]
    preparation = (kinds.bundles["logistic"] / "preparation.skops").read_bytes()
    # Live: loaded with its types trusted, the payload makes its marker.
    probe = tmp_path / "probe.mat"
    live = _crafted(preparation, _reduce_node(function, args(probe)))
    assert function in sio.get_untrusted_types(data=live)
    assert function.startswith(("numpy.", "scipy.", "sklearn.", "sksurv.", "hepablate."))
    with contextlib.suppress(Exception):  # some fail after their effect (a wrong argument)
        sio.loads(live, trusted=sio.get_untrusted_types(data=live))
    assert probe.exists(), "the payload did not run even when trusted: the test proves nothing"

    marker = tmp_path / "marker.mat"
    crafted = _crafted(preparation, _reduce_node(function, args(marker)))
    with pytest.raises(BundleError, match=rf"names types hepablate does not write.*{function}"):
        load_skops(crafted, "preparation.skops")
    assert not marker.exists()

    # In a bundle, re-hashed: refused by its signature; re-signed by a trusted key (a stolen
    # key, say): refused by its types. `predict` exits 2 both times and nothing runs.
    bundle = tmp_path / "bundle"
    shutil.copytree(kinds.bundles["logistic"], bundle)
    (bundle / "preparation.skops").write_bytes(crafted)
    rehash(bundle)
    patient = tmp_path / "patient"
    patient.mkdir()
    rehashed = CliRunner().invoke(app, ["predict", str(bundle), str(patient)])
    sign_bundle(bundle)
    resigned = CliRunner().invoke(app, ["predict", str(bundle), str(patient)])
    for run, expected in (
        (rehashed, "manifest.json: changed after it was signed"),
        (resigned, f"names types hepablate does not write, refused unloaded: {function}"),
    ):
        assert run.exit_code == 2 and "bundle refused" in run.stdout, run.stdout
        assert expected in " ".join(run.stdout.split()), run.stdout
    assert not marker.exists()


def _rename_functions(state: Any, old: str, new: str) -> int:
    """Rename, in a skops schema, every reference to the function ``old``; returns how many."""
    if isinstance(state, list):
        return sum(_rename_functions(item, old, new) for item in state)
    if not isinstance(state, dict):
        return 0
    count = 0
    named = f"{state.get('__module__')}.{state.get('__class__')}"
    if state.get("__loader__") == "FunctionNode" and named == old:
        state["__module__"], state["__class__"] = new.rsplit(".", 1)
        count += 1
    return count + sum(_rename_functions(value, old, new) for value in state.values())


def test_a_crafted_function_reference_is_refused(kinds: Kinds) -> None:
    """The function the pipeline calls at prediction (its log transform), renamed to one that
    executes its argument: refused at load."""
    preparation = (kinds.bundles["logistic"] / "preparation.skops").read_bytes()
    with zipfile.ZipFile(io.BytesIO(preparation)) as original:
        entries = {n: original.read(n) for n in original.namelist()}
    schema = json.loads(entries["schema.json"])
    assert _rename_functions(schema, "numpy.log1p", "numpy.testing._private.utils.runstring")
    entries["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name, data in entries.items():
            out.writestr(name, data)
    with pytest.raises(BundleError, match=r"numpy\.testing\._private\.utils\.runstring"):
        load_skops(buffer.getvalue(), "preparation.skops")
