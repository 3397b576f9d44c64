"""Training: split by patient, checkpoints every epoch, and an interrupted run resumed to the
same final weights as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hepablate.cohort import Cohort
from hepablate.segment.errors import SegmentError
from hepablate.segment.plan import Fingerprint, Plan, fingerprint, plan
from hepablate.segment.train import TrainEvent, dice_per_class, split_patients, train_segmenter

from .conftest import TINY


@pytest.fixture(scope="module")
def measured(tiny_cohort: Cohort) -> Fingerprint:
    return fingerprint(tiny_cohort)


@pytest.fixture(scope="module")
def pre_plan(measured: Fingerprint) -> Plan:
    """The tiny plan, pre task only (one network trains in seconds)."""
    planned = plan(measured, TINY)
    return planned.model_copy(update={"tasks": {"pre": planned.tasks["pre"]}})


def _patients(measured: Fingerprint) -> dict[str, list[str]]:
    return {"pre": measured.tasks["pre"].patients}


class _StopError(Exception):
    """What the test raises to kill training (as Ctrl-C would, between two iterations)."""


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_final_weights(
    tiny_cohort: Cohort, measured: Fingerprint, pre_plan: Plan, tmp_path: Path
) -> None:
    events: list[TrainEvent] = []
    whole = train_segmenter(
        tiny_cohort,
        pre_plan,
        _patients(measured),
        checkpoint_dir=tmp_path / "whole",
        progress=events.append,
    )

    def kill_in_epoch_2(event: TrainEvent) -> None:
        if event.epoch == 2:
            raise _StopError

    with pytest.raises(_StopError):
        train_segmenter(
            tiny_cohort,
            pre_plan,
            _patients(measured),
            checkpoint_dir=tmp_path / "killed",
            progress=kill_in_epoch_2,
        )
    saved = torch.load(tmp_path / "killed" / "pre.pt", weights_only=True)
    assert len(saved["history"]) == 1 and not saved["finished"]
    assert saved["optimiser"]["state"]  # the optimiser's moments were saved, not only weights

    resumed = train_segmenter(
        tiny_cohort, pre_plan, _patients(measured), checkpoint_dir=tmp_path / "killed"
    )

    a, b = whole.tasks["pre"], resumed.tasks["pre"]
    assert [r.epoch for r in b.history] == [1, 2] and b.best_epoch == a.best_epoch
    assert a.state.keys() == b.state.keys()
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert [r.dice for r in a.history] == [r.dice for r in b.history]
    # Progress: every iteration, then the epoch with its validation Dice.
    assert [(e.epoch, e.iteration, e.dice is not None) for e in events] == [
        (1, 1, False),
        (1, 2, False),
        (1, 2, True),
        (2, 1, False),
        (2, 2, False),
        (2, 2, True),
    ]
    # A finished checkpoint is not trained again: the same result, at once.
    again = train_segmenter(
        tiny_cohort, pre_plan, _patients(measured), checkpoint_dir=tmp_path / "whole"
    )
    assert all(torch.equal(a.state[k], again.tasks["pre"].state[k]) for k in a.state)


@pytest.mark.slow
def test_a_checkpoint_of_another_plan_is_refused(
    tiny_cohort: Cohort, measured: Fingerprint, pre_plan: Plan, tmp_path: Path
) -> None:
    one_epoch = pre_plan.model_copy(
        update={"training": pre_plan.training.model_copy(update={"max_epochs": 1})}
    )
    train_segmenter(tiny_cohort, one_epoch, _patients(measured), checkpoint_dir=tmp_path)
    with pytest.raises(SegmentError, match=r"pre\.pt: a checkpoint of another run"):
        train_segmenter(tiny_cohort, pre_plan, _patients(measured), checkpoint_dir=tmp_path)
    (tmp_path / "pre.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SegmentError, match=r"pre\.pt: not a readable checkpoint"):
        train_segmenter(tiny_cohort, pre_plan, _patients(measured), checkpoint_dir=tmp_path)


def test_patients_are_split_disjointly_by_the_seed(pre_plan: Plan) -> None:
    patients = [f"P{i:02d}" for i in range(20)]
    training, validation = split_patients(patients, pre_plan.training)
    assert len(validation) == 4 and not set(training) & set(validation)
    assert sorted(training + validation) == patients
    assert split_patients(patients, pre_plan.training) == (training, validation)
    other = pre_plan.training.model_copy(update={"seed": 1})
    assert split_patients(patients, other)[1] != validation
    assert split_patients(["A", "B"], pre_plan.training)[1] in (["A"], ["B"])
    with pytest.raises(SegmentError, match="at least 2"):
        split_patients(["A"], pre_plan.training)


def test_dice_per_class() -> None:
    truth = torch.tensor([0, 1, 1, 2, 2, 0]).numpy()
    predicted = torch.tensor([0, 1, 0, 2, 2, 2]).numpy()
    scores = dice_per_class(predicted, truth, ["background", "liver", "tumour"])
    assert scores == {"liver": pytest.approx(2 / 3), "tumour": pytest.approx(0.8)}
    assert dice_per_class(truth * 0, truth * 0, ["background", "liver"]) == {"liver": 1.0}
