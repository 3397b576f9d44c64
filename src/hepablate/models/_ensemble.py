"""What the deep networks share: the one ensemble trainer (held-out split, seeds, AdamW, early
stopping), their thread setting, their training progress bar, and their members' weights as
plain arrays (for safetensors) and back.

A network family (the tabular networks, the multimodal one) says how to build a member, how to
batch an epoch and what its loss is (``Family``); ``train_ensemble`` does the rest, the same for
both: member ``i`` is seeded ``seed * 1000 + i`` (torch and its numpy generator), holds out 20%
of the training rows (grouped by patient when ``groups`` are given; all rows when the held-out
ones cannot score the loss, e.g. no event), and keeps the weights of its best held-out epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from torch import nn

__all__ = [
    "HELD_OUT",
    "MIN_DELTA",
    "Family",
    "Member",
    "Training",
    "held_out_split",
    "load_members",
    "member_arrays",
    "torch_threads",
    "train_ensemble",
    "training_progress",
]

Network = TypeVar("Network", bound=nn.Module)

# The share of the training rows (patients) each member holds out for early stopping.
HELD_OUT = 0.2
# An epoch counts as better only when the held-out loss falls by more than this. The two
# training loops used 1e-5 (tabular, full batch) and 1e-4 (multimodal); 1e-4 for both: the
# losses are means over a few dozen to a few hundred held-out rows, whose sampling error is
# of the order of 1e-2, so a gain below 1e-4 is not evidence of a better network, and waiting
# on it only lets a full-batch network creep on for ``patience`` more epochs per plateau.
MIN_DELTA = 1e-4


@dataclass(frozen=True)
class Training:
    """How every member of an ensemble is trained (the estimator's parameters)."""

    n_members: int
    seed: int
    epochs: int
    patience: int
    learning_rate: float
    weight_decay: float
    n_threads: int
    verbose: bool
    label: str  # the progress bar's name of the model
    min_delta: float = MIN_DELTA


@dataclass(frozen=True)
class Member:
    """One member being trained: its index, seed, random generator and rows."""

    index: int
    seed: int
    rng: np.random.Generator
    train: np.ndarray
    held: np.ndarray


class Family(Protocol[Network]):
    """What a network family tells the trainer."""

    def scorable(self, rows: np.ndarray) -> bool:
        """Whether the loss can be scored on ``rows`` (a held-out set with events)."""
        ...

    def build(self, member: Member) -> Network:
        """A new network (after the member's seed is set), started as the family starts it."""
        ...

    def batches(self, member: Member) -> Iterable[np.ndarray]:
        """The rows of each optimiser step of one epoch."""
        ...

    def training_loss(self, network: Network, rows: np.ndarray, member: Member) -> torch.Tensor:
        """The loss of a training batch (with any augmentation)."""
        ...

    def held_out_loss(self, network: Network, rows: np.ndarray) -> torch.Tensor:
        """The loss of the held-out rows, as they are (called without gradients)."""
        ...


def held_out_split(
    n: int, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out rows: ``HELD_OUT`` of the groups (patients), or of the rows."""
    if groups is None:
        split = ShuffleSplit(n_splits=1, test_size=HELD_OUT, random_state=seed)
        train, held = next(split.split(np.zeros(n)))
    else:
        grouped = GroupShuffleSplit(n_splits=1, test_size=HELD_OUT, random_state=seed)
        train, held = next(grouped.split(np.zeros(n), groups=groups))
    return train, held


def train_ensemble(
    training: Training, family: Family[Network], n_rows: int, groups: np.ndarray | None
) -> tuple[list[Network], list[int]]:
    """The members (in eval mode, at their best held-out epoch) and each one's best epoch."""
    members: list[Network] = []
    epochs: list[int] = []
    with (
        torch_threads(training.n_threads),
        training_progress(
            training.verbose, training.label, training.n_members, training.epochs
        ) as progress,
    ):
        for index in range(training.n_members):
            seed = training.seed * 1000 + index
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            train, held = held_out_split(n_rows, seed, groups)
            if not family.scorable(held):  # nothing to score on: use the training loss
                train, held = np.arange(n_rows), np.arange(n_rows)
            member = Member(index, seed, rng, train, held)
            network = family.build(member)
            best = _early_stopped(network, family, member, training, progress)
            members.append(network)
            epochs.append(best)
    return members, epochs


def _early_stopped(
    network: Network,
    family: Family[Network],
    member: Member,
    training: Training,
    progress: Callable[[int, int, float], None],
) -> int:
    """Train ``network`` until its held-out loss has not improved by ``min_delta`` for
    ``patience`` epochs; restore the best epoch's weights and return that epoch (0: none)."""
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    best, best_epoch, waited = np.inf, 0, 0
    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    for epoch in range(1, training.epochs + 1):
        network.train()
        for rows in family.batches(member):
            optimiser.zero_grad()
            loss = family.training_loss(network, rows, member)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        network.eval()
        with torch.no_grad():
            score = float(family.held_out_loss(network, member.held))
        progress(member.index, epoch, score)
        if score < best - training.min_delta:
            best, best_epoch, waited = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            waited += 1
            if waited >= training.patience:
                break
    network.load_state_dict(best_state)
    network.eval()
    return best_epoch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def training_progress(
    show: bool, label: str, n_members: int, epochs: int
) -> Iterator[Callable[[int, int, float], None]]:
    """Yield ``step(member, epoch, held_out_loss)``; with ``show``, it drives a progress bar on
    stderr (one task per member, up to ``epochs`` each; gone when training ends)."""
    if not show:
        yield lambda member, epoch, loss: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("held-out loss {task.fields[loss]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = [
            bar.add_task(f"{label} member {i + 1}/{n_members}", total=epochs, loss="-")
            for i in range(n_members)
        ]

        def step(member: int, epoch: int, loss: float) -> None:
            bar.update(tasks[member], completed=epoch, loss=f"{loss:.4f}")

        yield step


def member_arrays(members: list[Network]) -> dict[str, np.ndarray]:
    """Every member's weights, named ``member<i>.<parameter>``."""
    return {
        f"member{i}.{name}": value.detach().numpy().copy()
        for i, member in enumerate(members)
        for name, value in member.state_dict().items()
    }


def load_members(
    arrays: dict[str, np.ndarray], n_members: int, network: Callable[[], Network]
) -> list[Network]:
    """``n_members`` networks from ``member_arrays``; weights that do not fit are refused."""
    members = []
    for i in range(n_members):
        module = network()
        prefix = f"member{i}."
        state = {
            k.removeprefix(prefix): torch.from_numpy(np.asarray(v))
            for k, v in arrays.items()
            if k.startswith(prefix)
        }
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"member {i}: the weights do not fit the network: {exc}") from exc
        module.eval()
        members.append(module)
    return members
