"""What the deep networks share: their thread setting, their training progress bar, and their
members' weights as plain arrays (for safetensors) and back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
from torch import nn

__all__ = ["load_members", "member_arrays", "torch_threads", "training_progress"]

Network = TypeVar("Network", bound=nn.Module)


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
