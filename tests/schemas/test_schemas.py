"""The typed outputs: the committed JSON Schemas are what the models export, real written
files validate against them (with jsonschema, independently of pydantic) and re-dump to the
same bytes, and a file with a missing or wrong field is refused with the file and the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hepablate.bundle import BundleError, load_bundle, save_bundle
from hepablate.bundle.predict import predict_table
from hepablate.report.study import render_report
from hepablate.schemas import (
    METRICS_SCHEMA_VERSION,
    PREDICTION_SCHEMA_VERSION,
    OutputFileError,
    dump_json,
    json_schemas,
    read_metrics,
    read_prediction,
    write_json_schemas,
)
from hepablate.schemas.manifest import Manifest
from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary
from hepablate.schemas.prediction import BinaryPrediction, SurvivalPrediction
from hepablate.study.results import write_outputs
from tests.bundle.synthetic import BINARY_MODELS, SURVIVAL_MODELS, study, table, train
from tests.conftest import REPO

SCHEMAS = REPO / "docs" / "schemas"


@dataclass
class Written:
    run: Path  # a run folder with metrics.json (write_outputs)
    manifest: Path
    prediction: Path


def _write(folder: Path, survival: bool) -> Written:
    models = SURVIVAL_MODELS if survival else BINARY_MODELS
    frame = table()
    # A network and a baseline: the deep-against-baseline comparison is filled too.
    result, _ = train(frame, study([models[0], models[3]], survival=survival))
    write_outputs(result, folder / "run", warnings=["few events"])
    summary = read_metrics(folder / "run" / "metrics.json")
    bundle = load_bundle(save_bundle(result, summary, folder / "bundle", extraction=None))
    prediction = folder / "prediction.json"
    rows = bundle.rows(frame).iloc[[0, 1]]
    prediction.write_text(dump_json(predict_table(bundle, rows)), encoding="utf-8")
    return Written(folder / "run", folder / "bundle" / "manifest.json", prediction)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    return {
        kind: _write(tmp_path_factory.mktemp(kind), survival=kind == "survival")
        for kind in ("binary", "survival")
    }


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_committed_schemas_are_what_the_models_export(tmp_path: Path) -> None:
    """docs/schemas stays true: regenerate with `python -m hepablate.schemas --out docs/schemas`."""
    written = write_json_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(json_schemas())
    for path in written:
        committed = SCHEMAS / path.name
        assert committed.is_file(), committed
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is out of date: python -m hepablate.schemas --out docs/schemas"
        )


@pytest.mark.parametrize("kind", ["binary", "survival"])
def test_written_files_validate_against_the_exported_schemas(
    written: dict[str, Written], kind: str
) -> None:
    files = written[kind]
    for name, path in (
        ("metrics.schema.json", files.run / "metrics.json"),
        ("prediction.schema.json", files.prediction),
        ("manifest.schema.json", files.manifest),
    ):
        errors = [e.message for e in _validator(name).iter_errors(_json(path))]
        assert errors == [], (path, errors[:3])
    # Each is read back as its typed object, which writes the same bytes again: the models
    # hold every field, in the written order.
    summary = read_metrics(files.run / "metrics.json")
    assert isinstance(summary, SurvivalStudySummary if kind == "survival" else BinaryStudySummary)
    assert summary.schema_version == 1 and summary.warnings == ["few events"]
    assert dump_json(summary) == (files.run / "metrics.json").read_text(encoding="utf-8")
    prediction = read_prediction(files.prediction)
    row = SurvivalPrediction if kind == "survival" else BinaryPrediction
    assert [type(r) for r in prediction.predictions] == [row, row]
    assert prediction.bundle.trust.accepted_by == "signature"
    assert dump_json(prediction) == files.prediction.read_text(encoding="utf-8")
    manifest = Manifest.model_validate_json(files.manifest.read_bytes())
    assert (json.dumps(manifest.model_dump(mode="json"), indent=1) + "\n").encode(
        "utf-8"
    ) == files.manifest.read_bytes()  # the bundle id (its SHA-256) is what the model writes


def test_a_metrics_json_missing_a_field_names_the_file_and_the_field(
    written: dict[str, Written], tmp_path: Path
) -> None:
    raw = _json(written["binary"].run / "metrics.json")
    del raw["models"]["logistic"]["metrics"]["auc"]
    raw["models"]["mlp"]["roc"]["fpr"][0] = "0.1x"
    old = tmp_path / "metrics.json"
    old.write_text(json.dumps(raw), encoding="utf-8")
    errors = [e.message for e in _validator("metrics.schema.json").iter_errors(raw)]
    assert errors  # the exported schema refuses it too
    with pytest.raises(OutputFileError) as refused:
        read_metrics(old)
    assert str(refused.value).splitlines() == [
        f"{old}: models.logistic.metrics.auc: Field required",
        f"{old}: models.mlp.roc.fpr.0: Input should be a valid number, unable to parse string "
        "as a number",
    ]
    # The report reads through the model: the same error, not a KeyError.
    for name in ("selected_features.csv", "predictions.csv"):
        (tmp_path / name).write_bytes((written["binary"].run / name).read_bytes())
    with pytest.raises(OutputFileError, match=r"models\.logistic\.metrics\.auc: Field required"):
        render_report(tmp_path)


def test_nan_is_refused_and_a_file_that_is_not_json_is_named(
    written: dict[str, Written], tmp_path: Path
) -> None:
    text = (written["survival"].run / "metrics.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    raw["models"]["cox"]["metrics"]["harrell_c"]["value"] = float("nan")
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(raw), encoding="utf-8")  # Python writes NaN unless told not to
    with pytest.raises(OutputFileError, match=r"models\.cox\.metrics\.harrell_c\.value: Input"):
        read_metrics(path)
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(OutputFileError, match=rf"^{path}: not valid JSON"):
        read_metrics(path)


def test_a_newer_schema_version_is_refused_and_an_unversioned_file_read_as_1(
    written: dict[str, Written], tmp_path: Path
) -> None:
    for source, read, current in (
        (written["binary"].run / "metrics.json", read_metrics, METRICS_SCHEMA_VERSION),
        (written["binary"].prediction, read_prediction, PREDICTION_SCHEMA_VERSION),
    ):
        raw = _json(source)
        path = tmp_path / source.name
        path.write_text(json.dumps({**raw, "schema_version": current + 1}), encoding="utf-8")
        with pytest.raises(OutputFileError) as refused:
            read(path)
        assert str(refused.value) == (
            f"{path}: schema_version {current + 1} is newer than this hepablate reads "
            f"({current}); upgrade hepablate to read it"
        )
        del raw["schema_version"]  # as written before the outputs were versioned
        path.write_text(json.dumps(raw), encoding="utf-8")
        assert read(path).schema_version == 1


def test_a_prediction_missing_a_field_names_the_row_and_the_field(
    written: dict[str, Written], tmp_path: Path
) -> None:
    raw = _json(written["survival"].prediction)
    del raw["predictions"][1]["risk_group"]
    del raw["predictions"][0]["what_if_margin"]["note"]
    path = tmp_path / "prediction.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(OutputFileError) as refused:
        read_prediction(path)
    assert str(refused.value).splitlines() == [
        f"{path}: predictions.0.what_if_margin.note: Field required",
        f"{path}: predictions.1.risk_group: Field required",
    ]


def test_a_manifest_without_a_field_is_refused_naming_it(
    written: dict[str, Written], tmp_path: Path
) -> None:
    import hashlib
    import shutil

    from hepablate.bundle import sign_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(written["binary"].manifest.parent, bundle)
    manifest = _json(bundle / "manifest.json")
    del manifest["endpoint"]["events"]
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    (bundle / "manifest.sha256").write_text(digest, encoding="utf-8")
    with pytest.raises(BundleError, match=r"manifest\.json: endpoint\.events: Field required"):
        sign_bundle(bundle)
