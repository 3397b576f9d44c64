"""What the deep networks share: their thread setting, and their members' weights as plain
arrays (for safetensors) and back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
from torch import nn

__all__ = ["load_members", "member_arrays", "torch_threads"]

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
