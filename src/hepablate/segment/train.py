"""Training a task's network from a cohort's own masks, resumable from a checkpoint.

Each task (``pre``: liver and tumours on the pre-ablation CT; ``post``: liver and ablation zone
on the post-ablation CT) gets its own DynUNet, trained on patches with foreground
oversampling, Dice + cross-entropy, flips, small affine and intensity augmentation, and
validated on held-out patients (split by patient) after every epoch; training stops early when
the mean foreground Dice has not improved for ``patience`` epochs, and the best epoch's weights
are kept.

**Resuming.** After every epoch the task's state (weights, optimiser, best weights, history,
early-stopping count) is saved with ``torch.save`` (state dicts and plain values only; read back
with ``weights_only=True``, so a checkpoint executes no code). Each epoch's randomness (patient
order, patch positions, augmentation, torch) is seeded from (seed, task, epoch) alone, so a run
resumed after a crash or Ctrl-C continues exactly as the uninterrupted run would have, to the
same final weights (one thread, CPU: tests/segment/test_train.py checks it bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers.utils import sliding_window_inference
from monai.losses.dice import DiceCELoss
from monai.transforms.compose import Compose
from monai.transforms.croppad.dictionary import RandCropByPosNegLabeld
from monai.transforms.intensity.dictionary import RandScaleIntensityd, RandShiftIntensityd
from monai.transforms.spatial.dictionary import RandAffined, RandFlipd
from monai.utils.misc import set_determinism

from hepablate.cohort import Cohort
from hepablate.segment.data import read_case, resample_labels
from hepablate.segment.errors import SegmentError
from hepablate.segment.network import as_tensor, build_network, normalise, pad_to, zyx
from hepablate.segment.plan import Plan, TaskPlan, TrainingPlan

__all__ = [
    "EpochRecord",
    "TaskResult",
    "TrainEvent",
    "TrainResult",
    "dice_per_class",
    "split_patients",
    "train_segmenter",
]

_CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainEvent:
    """What ``progress`` is told: after each iteration (``dice`` None) and each epoch."""

    task: str
    epoch: int  # 1-based
    max_epochs: int
    iteration: int
    iterations: int
    loss: float
    dice: dict[str, float] | None = None


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    dice: dict[str, float]
    seconds: float


@dataclass
class TaskResult:
    """A trained task: the best epoch's weights and how training went."""

    state: dict[str, torch.Tensor]
    training_patients: list[str]
    validation_patients: list[str]
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool

    @property
    def best_dice(self) -> dict[str, float]:
        return self.history[self.best_epoch - 1].dice


@dataclass
class TrainResult:
    plan: Plan
    tasks: dict[str, TaskResult] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class _Prepared:
    patient_id: str
    image: np.ndarray  # (z, y, x), normalised, padded to at least the patch
    labels: np.ndarray
    air: float


def split_patients(patients: list[str], training: TrainingPlan) -> tuple[list[str], list[str]]:
    """Training and validation patients, drawn by the plan's seed (at least one each)."""
    if len(patients) < 2:
        raise SegmentError(f"{len(patients)} patients: training needs at least 2 (1 held out)")
    held = min(len(patients) - 1, max(1, round(training.validation_fraction * len(patients))))
    order = np.random.default_rng(training.seed).permutation(len(patients))
    validation = sorted(patients[i] for i in order[:held])
    return [p for p in patients if p not in validation], validation


def _prepare(cohort: Cohort, patient: str, task: TaskPlan) -> _Prepared:
    case = read_case(cohort, patient, task.spec)
    image = normalise(case.image, task)
    labels = resample_labels(case.image, case.labels, task.target_spacing_mm)
    norm = task.normalisation
    air = float((norm.clip_low - norm.mean) / norm.std)
    patch = zyx(task.patch_size)
    padded, _ = pad_to(image.array, patch, air)
    padded_labels, _ = pad_to(labels, patch, 0)
    return _Prepared(patient, padded, padded_labels, air)


def _augmentation(task: TaskPlan, training: TrainingPlan) -> Compose:
    keys = ["image", "label"]
    rotate = math.radians(training.rotate_deg)
    return Compose(
        [
            RandCropByPosNegLabeld(
                keys,
                label_key="label",
                spatial_size=zyx(task.patch_size),
                pos=training.foreground_ratio,
                neg=1.0,
                num_samples=training.samples_per_image,
            ),
            *(RandFlipd(keys, prob=training.flip_probability, spatial_axis=a) for a in range(3)),
            RandAffined(
                keys,
                prob=training.affine_probability,
                rotate_range=(rotate, rotate, rotate),
                scale_range=(training.scale,) * 3,
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandScaleIntensityd(
                "image", factors=training.intensity_scale, prob=training.intensity_probability
            ),
            RandShiftIntensityd(
                "image", offsets=training.intensity_shift, prob=training.intensity_probability
            ),
        ]
    )


def dice_per_class(predicted: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Dice of each foreground class (1 when both are empty)."""
    scores = {}
    for value, name in enumerate(labels[1:], start=1):
        p, t = predicted == value, truth == value
        total = int(p.sum()) + int(t.sum())
        scores[name] = 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total
    return scores


def _segment(
    network: torch.nn.Module, image: np.ndarray, task: TaskPlan, overlap: float
) -> np.ndarray:
    """Class probabilities (classes, z, y, x) of a normalised, padded image."""
    network.eval()
    with torch.no_grad():
        logits = sliding_window_inference(
            as_tensor(image), zyx(task.patch_size), 1, network, overlap=overlap, mode="gaussian"
        )
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits, dim=1)[0].numpy()


def _validate(
    network: torch.nn.Module, cases: list[_Prepared], task: TaskPlan, overlap: float
) -> dict[str, float]:
    """Dice per class over the validation patients' voxels together (global Dice)."""
    predicted = [np.argmax(_segment(network, c.image, task, overlap), axis=0) for c in cases]
    return dice_per_class(
        np.concatenate([p.ravel() for p in predicted]),
        np.concatenate([c.labels.ravel() for c in cases]),
        task.labels,
    )


def _run_key(plan: Plan, name: str, training: list[str], validation: list[str]) -> str:
    text = json.dumps(
        {
            "task": plan.tasks[name].model_dump(mode="json"),
            "training": plan.training.model_dump(mode="json"),
            "patients": [training, validation],
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _epoch_seed(seed: int, task: str, epoch: int) -> int:
    entropy = [seed, int.from_bytes(task.encode("utf-8")[:8], "little"), epoch]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint whole or not at all (a crash while saving keeps the previous one)."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def _load(path: Path, key: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise SegmentError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
            "remove it to start again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise SegmentError(
            f"{path}: not a segmentation checkpoint of this hepablate; remove it to start again"
        )
    if state.get("key") != key:
        raise SegmentError(
            f"{path}: a checkpoint of another run (another plan, cohort or split); remove it "
            "to start again, or train with the plan it was made with"
        )
    return state


def _history(records: list[dict[str, Any]]) -> list[EpochRecord]:
    return [
        EpochRecord(int(r["epoch"]), float(r["loss"]), dict(r["dice"]), float(r["seconds"]))
        for r in records
    ]


def _train_task(
    cohort: Cohort,
    plan: Plan,
    name: str,
    patients: list[str],
    checkpoint: Path | None,
    progress: Callable[[TrainEvent], None] | None,
) -> TaskResult:
    import time

    task, training = plan.tasks[name], plan.training
    train_ids, val_ids = split_patients(patients, training)
    key = _run_key(plan, name, train_ids, val_ids)
    saved = None if checkpoint is None else _load(checkpoint, key)
    torch.manual_seed(training.seed)
    network = build_network(task)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    records: list[dict[str, Any]] = []
    best_state = {k: v.clone() for k, v in network.state_dict().items()}
    best_score, best_epoch, stale, finished = -1.0, 0, 0, False
    if saved is not None:
        network.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        best_state = saved["best_model"]
        records = list(saved["history"])
        best_score, best_epoch = float(saved["best_score"]), int(saved["best_epoch"])
        stale, finished = int(saved["stale"]), bool(saved["finished"])
    start = len(records)
    if not finished and start < training.max_epochs:
        cases = [_prepare(cohort, p, task) for p in train_ids]
        held = [_prepare(cohort, p, task) for p in val_ids]
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        augment = _augmentation(task, training)
        per_step = max(1, task.batch_size // training.samples_per_image)
        clock = time.perf_counter()
        spent = sum(float(r["seconds"]) for r in records)
        for epoch in range(start + 1, training.max_epochs + 1):
            began = time.perf_counter()
            seed = _epoch_seed(training.seed, name, epoch)
            set_determinism(seed=seed)  # torch, numpy and python's random for MONAI
            augment.set_random_state(seed=seed)
            rng = np.random.default_rng(seed)
            for group in optimiser.param_groups:  # nnU-Net's polynomial decay, by epoch
                group["lr"] = (
                    training.learning_rate * (1 - (epoch - 1) / training.max_epochs) ** 0.9
                )
            network.train()
            losses = []
            for iteration in range(1, training.iterations_per_epoch + 1):
                chosen = rng.choice(len(cases), per_step, replace=len(cases) < per_step)
                patches = []
                for index in chosen:
                    case = cases[int(index)]
                    patches.extend(augment({"image": case.image[None], "label": case.labels[None]}))
                images = torch.stack(
                    [torch.as_tensor(np.asarray(p["image"]), dtype=torch.float32) for p in patches]
                )
                labels = torch.stack(
                    [torch.as_tensor(np.asarray(p["label"])).round().long() for p in patches]
                )
                optimiser.zero_grad()
                loss = loss_fn(network(images), labels)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.item()))
                if progress is not None:
                    progress(
                        TrainEvent(
                            name,
                            epoch,
                            training.max_epochs,
                            iteration,
                            training.iterations_per_epoch,
                            losses[-1],
                        )
                    )
            dice = _validate(network, held, task, plan.inference.overlap)
            score = float(np.mean(list(dice.values())))
            if score > best_score:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            else:
                stale += 1
            records.append(
                {
                    "epoch": epoch,
                    "loss": float(np.mean(losses)),
                    "dice": dice,
                    "seconds": time.perf_counter() - began,
                }
            )
            minutes = (spent + time.perf_counter() - clock) / 60.0
            limit = training.time_limit_minutes
            finished = (
                stale >= training.patience
                or epoch == training.max_epochs
                or (limit is not None and minutes >= limit)
            )
            if checkpoint is not None:
                _save(
                    checkpoint,
                    {
                        "format": _CHECKPOINT_FORMAT,
                        "key": key,
                        "model": network.state_dict(),
                        "optimiser": optimiser.state_dict(),
                        "best_model": best_state,
                        "best_score": best_score,
                        "best_epoch": best_epoch,
                        "stale": stale,
                        "finished": finished,
                        "history": records,
                    },
                )
            if progress is not None:
                progress(
                    TrainEvent(
                        name,
                        epoch,
                        training.max_epochs,
                        training.iterations_per_epoch,
                        training.iterations_per_epoch,
                        records[-1]["loss"],
                        dice,
                    )
                )
            if finished:
                break
    history = _history(records)
    return TaskResult(
        state=best_state,
        training_patients=train_ids,
        validation_patients=val_ids,
        history=history,
        best_epoch=best_epoch,
        stopped_early=len(history) < training.max_epochs,
    )


def train_segmenter(
    cohort: Cohort,
    plan: Plan,
    patients: dict[str, list[str]],
    *,
    checkpoint_dir: Path | None = None,
    progress: Callable[[TrainEvent], None] | None = None,
) -> TrainResult:
    """Train one network per task of ``plan`` on ``patients[task]`` (the fingerprint's).

    With ``checkpoint_dir``, each task's state is saved there after every epoch
    (``<task>.pt``) and a run finds it and continues from it; a checkpoint of another plan,
    cohort or split is refused (``SegmentError``) rather than mixed in.
    """
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    result = TrainResult(plan)
    for name in plan.tasks:
        if name not in patients:
            raise SegmentError(f"plan task {name!r} has no patients (not in the fingerprint)")
        path = None if checkpoint_dir is None else checkpoint_dir / f"{name}.pt"
        result.tasks[name] = _train_task(cohort, plan, name, patients[name], path, progress)
    return result
