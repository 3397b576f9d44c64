"""Model bundles: round trip, tampering, disallowed types, and predictions with a what-if curve.
(What a bundle may hold and how it is trusted: test_trusted_types.py, test_verification.py.)

A tabular virtual cohort (no images) with a margin column that protects: the study refits the
models on all rows, the bundle holds the best one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hepablate.bundle import Bundle, BundleError, load_bundle, save_bundle, sign_bundle
from hepablate.bundle.predict import MARGIN, predict_table
from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.extract import extract
from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.results import mean_prediction, summarise
from hepablate.validation.metrics import risk_tertiles

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

STUDY: dict[str, Any] = {
    "endpoint": "rfs_24m",
    "selection": [
        {"method": "near_zero_variance"},
        {"method": "univariate", "params": {"fdr": 0.2}},
    ],
    "models": [
        {"name": "logistic", "kind": "logistic"},
        {"name": "forest", "kind": "random_forest", "grid": {"min_samples_leaf": [5]}},
    ],
    "validation": {"folds": 3, "repeats": 1, "bootstrap": 100, "permutations": 0},
}


@dataclass
class Trained:
    table: pd.DataFrame
    result: Any
    summary: BinaryStudySummary | SurvivalStudySummary
    bundle: Path


def _table(cohort_dir: Path, seed: int) -> pd.DataFrame:
    table = extract(load_cohort(cohort_dir))
    # A margin that protects: lower for the patients who recurred (what imaging would measure).
    rng = np.random.default_rng(seed)
    event = table["outcome.rfs_24m"].fillna(0).to_numpy(dtype=float)
    table[MARGIN] = 4.0 - 3.0 * event + rng.normal(0.0, 1.0, len(table))
    return table


@pytest.fixture(scope="module")
def trained(virtual_tables: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    folder = tmp_path_factory.mktemp("bundle")
    table = _table(virtual_tables, seed=5)
    config = StudyConfig.model_validate(STUDY)
    result = run_study(study_data(table, config), config)
    summary = summarise(result)
    bundle = save_bundle(result, summary, folder / "bundle", extraction={"radiomics": None})
    return Trained(table, result, summary, bundle)


def _copy(trained: Trained, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(trained.bundle, target)
    return target


def _rewrite_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    """A forged but self-consistent manifest, signed again with a trusted key (the user's):
    what a deliberate edit with a stolen key would leave, so that what is checked after the
    signature is tested."""
    import hashlib

    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    (bundle / "manifest.sha256").write_text(digest, encoding="utf-8")
    sign_bundle(bundle)


def test_the_bundle_holds_the_best_model_and_predicts_as_it_did(trained: Trained) -> None:
    bundle = load_bundle(trained.bundle)
    best = trained.summary.comparison.ranking[0]
    assert bundle.manifest.model == best
    manifest = json.loads((trained.bundle / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {
        "extraction.json",
        "study.json",
        "schema.json",
        "metrics.json",
        "thresholds.json",
        "preparation.skops",
        "model.skops",
    }
    assert all(len(digest) == 64 for digest in manifest["files"].values())
    assert manifest["versions"]["scikit-learn"] and manifest["versions"]["hepablate"]
    # No time in the manifest (the id would change with it): the signature has it.
    assert "created" not in manifest and bundle.created == bundle.trust.signed_at
    assert (trained.bundle / "signature.json").is_file()
    assert bundle.trust.how == "signature" and bundle.trust.key_name == "own key"
    inputs = bundle.inputs(bundle.rows(trained.table))
    expected = trained.result.final[best].predict_proba(inputs)[:, 1]
    np.testing.assert_array_equal(bundle.risk(inputs), expected)
    # The risk groups: the tertiles of the best model's out-of-fold probabilities (a forest's
    # can be 0 for a third of the patients).
    low, high = bundle.thresholds["risk_groups"]["cuts"]
    assert 0 <= low < high <= 1
    assert [low, high] == risk_tertiles(mean_prediction(trained.result.models[best]))


@pytest.mark.parametrize(
    "name",
    [
        "manifest.json",
        "manifest.sha256",
        "signature.json",
        "schema.json",
        "preparation.skops",
        "model.skops",
        "metrics.json",
    ],
)
def test_one_changed_byte_is_refused(trained: Trained, tmp_path: Path, name: str) -> None:
    """The file at fault is named; a changed manifest breaks its signature."""
    bundle = _copy(trained, tmp_path)
    data = bytearray((bundle / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name}: "):
        load_bundle(bundle)


def test_an_extra_or_a_missing_file_is_refused(trained: Trained, tmp_path: Path) -> None:
    bundle = _copy(trained, tmp_path)
    (bundle / "notes.txt").write_text("hello\n", encoding="utf-8")
    with pytest.raises(BundleError, match=r"not in the manifest: notes\.txt"):
        load_bundle(bundle)
    (bundle / "notes.txt").unlink()
    (bundle / "thresholds.json").unlink()
    with pytest.raises(BundleError, match=r"missing: thresholds\.json"):
        load_bundle(bundle)


def test_a_skops_file_with_a_type_from_elsewhere_is_refused(
    trained: Trained, tmp_path: Path
) -> None:
    """Even with the manifest's hash updated to match and signed by a trusted key."""
    import hashlib

    import skops.io as sio

    bundle = _copy(trained, tmp_path)
    sio.dump({"path": Path("/etc/passwd")}, bundle / "model.skops")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((bundle / "model.skops").read_bytes()).hexdigest()
    manifest["files"]["model.skops"] = digest
    _rewrite_manifest(bundle, manifest)
    with pytest.raises(BundleError, match=r"model\.skops: names types .* refused.*pathlib"):
        load_bundle(bundle)


def test_another_scikit_learn_minor_version_is_refused(trained: Trained, tmp_path: Path) -> None:
    bundle = _copy(trained, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["versions"]["scikit-learn"] = "0.1.0"
    _rewrite_manifest(bundle, manifest)
    with pytest.raises(BundleError, match=r"scikit-learn 0\.1\.0"):
        load_bundle(bundle)


def test_prediction_with_contributions_and_a_falling_what_if_curve(trained: Trained) -> None:
    bundle: Bundle = load_bundle(trained.bundle)
    assert MARGIN in bundle.schema["selected"]
    patient = bundle.rows(trained.table).iloc[[0]]
    prediction = predict_table(bundle, patient).model_dump(mode="json")
    [row] = prediction["predictions"]
    assert 0.0 <= row["probability"] <= 1.0
    assert row["risk_group"] in ("low", "intermediate", "high")
    assert row["uncertainty"] is None and "not an ensemble" in row["uncertainty_method"]
    features = [c["feature"] for c in row["contributions"]]
    assert MARGIN in features and features == sorted(
        features,
        key=lambda f: (
            -abs(next(c["contribution"] for c in row["contributions"] if c["feature"] == f))
        ),
    )
    what_if = row["what_if_margin"]
    assert what_if["available"] and what_if["model_uses_it"] and "not causal" in what_if["note"]
    risk = np.asarray(what_if["risk"])
    assert what_if["margin_mm"][0] == 0.0 and what_if["margin_mm"][-1] == 10.0
    assert risk[0] > risk[-1] + 0.1, risk  # a wider margin, a lower predicted risk
    assert prediction["validation"]["metric"] == "auc" and prediction["bundle"]["id"]
    # The contributions of the SHAP explainer add up to the prediction minus the reference's.
    reference = bundle.schema["reference"]
    base = patient.copy()
    for column, value in reference.items():
        if value is not None:
            base[column] = value
    base_risk = float(bundle.risk(bundle.inputs(base))[0])
    total = sum(c["contribution"] for c in row["contributions"])
    assert abs(base_risk + total - row["probability"]) < 1e-6


def test_inputs_outside_the_training_data_are_reported(trained: Trained) -> None:
    bundle: Bundle = load_bundle(trained.bundle)
    training = trained.result.data.X  # the rows the model was fitted on (known endpoint)
    low, high = bundle.schema["ranges"][MARGIN]
    assert (low, high) == pytest.approx(tuple(training[MARGIN].quantile([0.01, 0.99])))
    patient = bundle.rows(trained.table).iloc[[0]]

    def checks(margin: float) -> list[dict[str, Any]]:
        # A missing margin is refused unless asked for (tests/bundle/test_predict_failures.py).
        imputed = predict_table(
            bundle, patient.assign(**{MARGIN: margin}), allow_imputed_margin=True
        ).model_dump(mode="json")
        [row] = imputed["predictions"]
        return [c for c in row["input_checks"] if c["feature"] == MARGIN]

    missing, outside, inside = checks(np.nan), checks(high + 5.0), checks((low + high) / 2)
    assert [c["check"] for c in missing] == ["missing"]
    assert f"median ({bundle.schema['reference'][MARGIN]:.4g})" in missing[0]["message"]
    assert [c["check"] for c in outside] == ["out_of_range"] and outside[0]["value"] == high + 5
    assert inside == []
    # A category no training row had, on a categorical input.
    column = next(c for c, t in bundle.schema["types"].items() if t == "category")
    seen = bundle.schema["levels"][column]
    assert seen and set(training[column].dropna().astype(str)) == set(seen)
    odd = bundle.inputs(patient.assign(**{column: "never seen"}))
    [checks] = bundle.input_checks(odd, [column])
    assert [c["check"] for c in checks] == ["unseen_category"] and seen[0] in checks[0]["message"]
    [none] = bundle.input_checks(bundle.inputs(patient.assign(**{column: seen[0]})), [column])
    assert none == []


def test_predict_cli_refuses_a_tampered_bundle_and_an_invalid_patient(
    trained: Trained, tmp_path: Path
) -> None:
    bundle = _copy(trained, tmp_path)
    (bundle / "study.json").write_text("{}", encoding="utf-8")
    patient = tmp_path / "nobody"
    patient.mkdir()
    out = tmp_path / "p.json"
    tampered = CliRunner().invoke(app, ["predict", str(bundle), str(patient), "--out", str(out)])
    assert tampered.exit_code == 2 and "bundle refused" in tampered.stdout
    assert "study.json" in tampered.stdout and not out.exists()
    invalid = CliRunner().invoke(
        app, ["predict", str(trained.bundle), str(patient), "--out", str(out)]
    )
    assert invalid.exit_code == 2 and "cohort.yaml" in invalid.stdout and not out.exists()


def test_predict_cli_says_how_the_bundle_was_accepted(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed by the user's key: accepted, and prediction.json says so; unsigned: refused
    with the fix, then accepted by its pinned id."""
    import hepablate.bundle.predict

    patient = tmp_path / "patient"
    simulate_cohort(SimulationConfig(n=1, seed=10004, images=False), patient, workers=1)
    # The patient's measured row is a training row with its margin: this tabular patient has
    # no images, hence no margin, which predict refuses (tests/bundle/test_predict_failures.py).
    row = load_bundle(trained.bundle).rows(trained.table).iloc[[0]]
    monkeypatch.setattr(
        hepablate.bundle.predict,
        "predict_cohort",
        # a patient without images: no automatic masks to hand on
        lambda bundle, _, auto_masks=None, **options: predict_table(bundle, row, **options),
    )
    out = tmp_path / "p.json"
    ran = CliRunner().invoke(app, ["predict", str(trained.bundle), str(patient), "--out", str(out)])
    assert ran.exit_code == 0, ran.stdout
    bundle_id = load_bundle(trained.bundle).id
    assert f"bundle {bundle_id} accepted: signed by" in ran.stdout
    assert "(trusted: own key)" in ran.stdout
    written = json.loads(out.read_text(encoding="utf-8"))["bundle"]
    assert written["id"] == bundle_id and written["trust"]["accepted_by"] == "signature"
    assert written["trust"]["key_name"] == "own key" and written["created"]

    unsigned = _copy(trained, tmp_path)
    (unsigned / "signature.json").unlink()
    refused = CliRunner().invoke(app, ["predict", str(unsigned), str(patient), "--out", str(out)])
    assert refused.exit_code == 2 and "bundle refused" in refused.stdout
    assert "not signed" in refused.stdout and "--bundle-id" in refused.stdout
    pinned = CliRunner().invoke(
        app, ["predict", str(unsigned), str(patient), "--out", str(out), "--bundle-id", bundle_id]
    )
    assert pinned.exit_code == 0, pinned.stdout
    assert "accepted: its id is pinned (--bundle-id); unsigned" in pinned.stdout
    written = json.loads(out.read_text(encoding="utf-8"))["bundle"]
    assert written["trust"]["accepted_by"] == "pinned" and written["created"] is None


def test_survival_curves_run_while_enough_training_rows_are_followed(tmp_path: Path) -> None:
    """Events in the first 30 months, follow-up to 83: the curves go on past the last event
    decile, monthly, to the last month at which 10 training rows were still followed."""
    from tests.bundle.synthetic import study, table, train

    frame = table(n=80, seed=4)
    rng = np.random.default_rng(4)
    event = frame["outcome.ltp.event"].to_numpy(dtype=bool)
    frame["outcome.ltp.time_months"] = np.where(
        event, rng.uniform(1.0, 30.0, len(frame)), rng.uniform(30.0, 83.0, len(frame))
    )
    result, summary = train(frame, study([{"name": "cox", "kind": "cox"}], survival=True))
    bundle = load_bundle(save_bundle(result, summary, tmp_path / "bundle", extraction=None))

    time = np.sort(frame["outcome.ltp.time_months"].to_numpy())[::-1]
    curve = bundle.thresholds["survival_curve"]
    assert curve["until_months"] == pytest.approx(time[9])  # the 10th longest follow-up
    assert int(np.sum(time >= curve["until_months"])) == 10
    assert curve["follow_up_months"] == pytest.approx(time[0])
    times = summary.validation.evaluation_times_months
    assert times is not None and max(times) < 31.0 < curve["until_months"]
    assert bundle.thresholds["threshold"] is None  # a risk score has no probability threshold

    [row] = predict_table(bundle, bundle.rows(frame).iloc[[0]]).model_dump(mode="json")[
        "predictions"
    ]
    months = row["survival"]["months"]
    assert months == list(np.arange(1.0, np.floor(time[9]) + 1.0))
    assert row["survival"]["source"].startswith(f"every month up to {time[9]:.1f} months")
    probability = np.asarray(row["survival"]["probability"])
    assert len(probability) == len(months) and np.all(np.diff(probability) <= 1e-12)
    assert probability[-1] < probability[0]  # the curve falls over the events' months
