"""`hepablate segment evaluate`: the metrics on hand-made masks with known answers, and the
command on the tiny cohort (segmenting with the tiny bundle, or reading predicted masks)."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.schemas import read_segment_evaluation
from hepablate.segment.bundle import save_segmenter
from hepablate.segment.metrics import (
    equivalent_diameter_mm,
    lesion_instances,
    lesion_records,
    match_lesions,
    recall_by_size,
    size_bin,
    summarise,
    surface_scores,
)
from hepablate.segment.network import build_network
from hepablate.segment.plan import Fingerprint, plan
from hepablate.segment.train import EpochRecord, TaskResult, TrainResult
from tests.conftest import REPO

from .conftest import TINY
from .test_bundle import _fingerprint

runner = CliRunner()
MASKS = ("liver", "pre_tumours", "post_liver", "post_ablation")


def _text(output: str) -> str:
    return " ".join(output.split())


def _ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    z, y, x = np.indices(shape)
    cz, cy, cx = centre
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


# --- the metrics -------------------------------------------------------------------------------


def test_two_cubes_shifted_by_two_voxels() -> None:
    """A 10-voxel cube against itself shifted by k = 2 voxels along x, voxels 3 x 3 x 1 mm
    (z, y, x): the shift is along the finest axis, so every nearest edge voxel is found along x.

    Dice = (n - k) / n = 0.8. The cube's edge has 10³ - 8³ = 488 voxels; their distances to
    the other cube's edge: the x = 0 face (100 voxels) and the inner 8 x 8 of the x = 9 face
    (64) are 2 mm away, the ring of 36 lateral-face voxels at x = 1 is 1 mm away, the other 288
    are on the other edge (0 mm); the same the other way round (symmetry). So HD95 = 2 mm (the
    2 mm distances are a third of all) and the mean surface distance is (164·2 + 36) / 488 mm.
    """
    manual = np.zeros((16, 16, 20), bool)
    predicted = np.zeros_like(manual)
    manual[3:13, 3:13, 3:13] = True
    predicted[3:13, 3:13, 5:15] = True

    scores = surface_scores(predicted, manual, (3.0, 3.0, 1.0))

    assert scores.dice == pytest.approx(0.8)
    assert scores.hd95_mm == pytest.approx(2.0)
    assert scores.asd_mm == pytest.approx(364 / 488)
    # The spacing is read (z, y, x): the same shift along z is 3 mm a voxel.
    along_z = np.zeros_like(manual)
    along_z[5:15, 3:13, 3:13] = True
    assert surface_scores(along_z, manual, (3.0, 3.0, 1.0)).hd95_mm == pytest.approx(6.0)


def test_empty_masks_give_undefined_distances_not_infinities() -> None:
    manual = np.zeros((12, 12, 12), bool)
    manual[3:8, 3:8, 3:8] = True
    missed = surface_scores(np.zeros_like(manual), manual, (1.0, 1.0, 1.0))
    assert (missed.dice, missed.hd95_mm, missed.asd_mm) == (0.0, None, None)
    nothing = surface_scores(manual, np.zeros_like(manual), (1.0, 1.0, 1.0))
    assert nothing.dice is None  # no manual voxel: Dice is undefined


def test_an_8mm_lesion_missed_and_a_false_positive() -> None:
    """At 1 mm voxels: a 24 mm lesion found exactly, an 8 mm one missed, one predicted lesion
    where there is none, and one that overlaps the large lesion too little to count."""
    shape = (60, 60, 60)
    large = _ball(shape, (20, 20, 20), 12)
    small = _ball(shape, (45, 45, 45), 4)
    manual = large.astype(np.int64) + 2 * small
    predicted = large.astype(np.int64)
    predicted[50:56, 5:11, 5:11] = 2  # nowhere near a manual lesion
    predicted[45:47, 45:47, 30:32] = 3  # beside the small lesion, not touching it

    match = match_lesions(manual, lesion_instances(predicted))

    assert equivalent_diameter_mm(float(small.sum())) == pytest.approx(8.0, abs=0.3)
    assert size_bin(equivalent_diameter_mm(float(small.sum()))) == "<10 mm"
    assert match.detected == {1: True, 2: False}
    assert match.best_dice[1] == pytest.approx(1.0) and match.best_dice[2] is None
    assert match.predicted == 3 and len(match.false_positives) == 2
    bins = {b.size: b for b in recall_by_size(lesion_records("P", match, 1.0))}
    assert (bins["<10 mm"].lesions, bins["<10 mm"].recall) == (1, 0.0)
    assert (bins[">20 mm"].lesions, bins[">20 mm"].recall) == (1, 1.0)
    assert bins["10-20 mm"].recall is None  # no lesion of that size: undefined, not 0


def test_a_predicted_lesion_many_times_too_large_is_a_miss_and_a_false_positive() -> None:
    shape = (40, 40, 40)
    manual = _ball(shape, (20, 20, 20), 3).astype(np.int64)
    blob = np.zeros(shape, np.int64)
    blob[5:35, 5:35, 5:35] = 1  # holds the lesion: Dice 2·113 / (113 + 27000) < 0.1
    match = match_lesions(manual, lesion_instances(blob))
    assert match.detected == {1: False} and match.false_positives == [1]
    assert match.best_dice[1] == pytest.approx(2 * manual.sum() / (manual.sum() + 27000))


def test_a_binary_predicted_mask_is_split_into_its_lesions() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[6:9, 6:9, 6:9] = 1
    labels[1:3, 6:8, 6:8] = 5
    instances = lesion_instances(labels)
    assert sorted(np.unique(instances).tolist()) == [0, 1, 2, 3]
    assert len(np.unique(instances[6:9, 6:9, 6:9])) == 1


def test_summaries_give_quartiles_and_bootstrap_intervals() -> None:
    summary = summarise([1.0, 2.0, None, 3.0, 4.0])
    assert summary.n == 4 and summary.mean == 2.5 and summary.median == 2.5
    assert (summary.q1, summary.q3) == (1.75, 3.25)
    assert summary.mean_ci is not None and summary.median_ci is not None
    low, high = summary.mean_ci
    assert 1.0 <= low < 2.5 < high <= 4.0
    assert summarise([0.0, 0.0, 0.0]).mean_ci == (0.0, 0.0)  # no spread, no interval width
    assert summarise([2.0]).mean_ci is None  # one patient: no interval
    assert summarise([None]).n == 0 and summarise([]).median is None


# --- the command -------------------------------------------------------------------------------


def _validate_against_schema(path: Path) -> None:
    schema = json.loads(
        (REPO / "docs" / "schemas" / "segment-evaluation.schema.json").read_text(encoding="utf-8")
    )
    errors = [
        e.message
        for e in jsonschema.Draft202012Validator(schema).iter_errors(
            json.loads(path.read_text(encoding="utf-8"))
        )
    ]
    assert errors == []


@pytest.mark.slow
def test_evaluate_segments_the_cohort_and_writes_the_evaluation(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation.json"
    result = runner.invoke(
        app, ["segment", "evaluate", str(trained_bundle), str(tiny_cohort_dir), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in _text(result.stdout) and "liver Dice" in result.stdout
    _validate_against_schema(out)
    evaluation = read_segment_evaluation(out)
    assert evaluation.predicted is None and evaluation.skipped == {}
    assert sorted(evaluation.tasks) == ["post", "pre"]
    for task in evaluation.tasks.values():
        assert [c.patient for c in task.cases] == ["SIM0001", "SIM0002", "SIM0003"]
        assert task.liver is not None and task.liver.dice.n == 3
        assert 0.0 < (task.liver.dice.median or 0.0) < 1.0
        lesions = task.lesions
        assert len(lesions.lesions) == sum(c.manual_lesions for c in task.cases) > 0
        assert sum(b.lesions for b in lesions.recall_by_size) == len(lesions.lesions)
        fp = sum(c.false_positives for c in task.cases) / 3
        assert lesions.false_positives_per_case == pytest.approx(fp)
    margins = evaluation.margins
    assert margins is not None
    assert margins.measured + margins.missed + margins.not_measured == len(margins.tumours)
    assert all(r.manual_mm is not None for r in margins.tumours)  # manual: always measured


def _copy_manual_masks(cohort_dir: Path, out: Path) -> Path:
    for patient in sorted((cohort_dir / "images").iterdir()):
        (out / "images" / patient.name).mkdir(parents=True)
        for name in MASKS:
            shutil.copy(patient / f"{name}.nii.gz", out / "images" / patient.name)
    return out


@pytest.mark.slow
def test_the_manual_masks_as_predictions_score_perfectly_with_no_margin_error(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    predicted = _copy_manual_masks(tiny_cohort_dir, tmp_path / "predicted")
    out = tmp_path / "evaluation.json"
    result = runner.invoke(
        app,
        [
            "segment",
            "evaluate",
            str(trained_bundle),
            str(tiny_cohort_dir),
            "--out",
            str(out),
            "--predicted",
            str(predicted),
        ],
    )

    assert result.exit_code == 0, result.output
    evaluation = read_segment_evaluation(out)
    assert evaluation.predicted == str(predicted)
    for task in evaluation.tasks.values():
        assert task.liver is not None
        assert task.liver.dice.median == 1.0 and task.liver.hd95_mm.q3 == 0.0
        assert task.liver.asd_mm.mean == 0.0
        assert task.lesions.global_dice == 1.0 and task.lesions.recall == 1.0
        assert task.lesions.false_positives_per_case == 0.0
        assert task.lesions.detected_dice.mean == 1.0
    margins = evaluation.margins
    assert margins is not None and margins.missed == 0 and margins.not_measured == 0
    assert margins.measured == len(margins.tumours) >= 3
    assert all(r.error_mm == 0.0 and r.automatic_mm == r.manual_mm for r in margins.tumours)
    assert margins.absolute_error_mm.median == 0.0
    assert margins.absolute_error_mm.median_ci == (0.0, 0.0)
    assert all(math.isfinite(r.manual_mm or math.nan) for r in margins.tumours)


# --- bad input ---------------------------------------------------------------------------------


def _cohort_without(cohort_dir: Path, out: Path, masks: set[str]) -> Path:
    """A copy of the cohort whose ``cohort.yaml`` declares none of ``masks`` (files removed)."""
    shutil.copytree(cohort_dir, out)
    document = yaml.safe_load((out / "cohort.yaml").read_text(encoding="utf-8"))
    for name in masks:
        document["images"]["masks"].pop(name)
        for path in (out / "images").glob(f"*/{name}.nii.gz"):
            path.unlink()
    (out / "cohort.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return out


@pytest.mark.slow
def test_a_cohort_without_masks_exits_2_naming_cohort_yaml(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    bare = _cohort_without(tiny_cohort_dir, tmp_path / "bare", set(MASKS) | {"vessels"})
    out = tmp_path / "evaluation.json"
    result = runner.invoke(
        app, ["segment", "evaluate", str(trained_bundle), str(bare), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert f"error: {bare / 'cohort.yaml'}: no patient has the manual masks" in _text(result.output)
    assert "Traceback" not in result.output and not out.exists()


def _post_only_bundle(folder: Path) -> Path:
    """An untrained bundle with the post task's network only."""
    found = _fingerprint()
    found = Fingerprint(cohort=found.cohort, tasks={"post": found.tasks["post"]})
    overrides = copy.deepcopy(TINY)
    del overrides["tasks"]["pre"]
    planned = plan(found, overrides)
    torch.manual_seed(0)
    result = TrainResult(planned)
    result.tasks["post"] = TaskResult(
        state=build_network(planned.tasks["post"]).state_dict(),
        training_patients=["A"],
        validation_patients=["B"],
        history=[EpochRecord(1, 1.5, {"liver": 0.5, "zone": 0.1}, 2.0)],
        best_epoch=1,
        stopped_early=False,
    )
    return save_segmenter(result, found, overrides, folder)


@pytest.mark.slow
def test_a_bundle_without_the_cohorts_task_exits_2_naming_the_bundle(
    tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    bundle = _post_only_bundle(tmp_path / "seg")
    pre_only = _cohort_without(tiny_cohort_dir, tmp_path / "pre", {"post_ablation", "post_liver"})
    result = runner.invoke(
        app,
        ["segment", "evaluate", str(bundle), str(pre_only), "--out", str(tmp_path / "e.json")],
    )
    assert result.exit_code == 2, result.output
    assert (
        f"error: {bundle}: has no network for the tasks whose manual masks the cohort has: "
        "pre (pre_tumours) (it has post)"
    ) in _text(result.output)


@pytest.mark.slow
def test_a_missing_predicted_mask_exits_2_naming_the_file(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    predicted = _copy_manual_masks(tiny_cohort_dir, tmp_path / "predicted")
    (predicted / "images" / "SIM0002" / "post_ablation.nii.gz").unlink()
    result = runner.invoke(
        app,
        [
            "segment",
            "evaluate",
            str(trained_bundle),
            str(tiny_cohort_dir),
            "--out",
            str(tmp_path / "e.json"),
            "--predicted",
            str(predicted),
        ],
    )
    assert result.exit_code == 2, result.output
    missing = predicted / "images" / "SIM0002" / "post_ablation.nii.gz"
    assert f"error: {missing}: the predicted post_ablation mask of patient SIM0002" in _text(
        result.output
    )
