"""The tabular networks' body: a wide linear term plus an MLP started at zero, the numbers
optionally through periodic embeddings; and the discrete-time variant with a baseline per
interval."""

from __future__ import annotations

import torch
from rtdl_num_embeddings import PeriodicEmbeddings
from torch import nn

__all__ = ["Body", "IntervalBody"]


class Body(nn.Module):
    """``wide(x) + out(mlp(x'))``, where ``x'`` is ``x`` with its first ``n_numeric`` columns
    replaced by their periodic embeddings (``embedding`` numbers per column; 0: none)."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: int,
        dropout: float,
        n_numeric: int = 0,
        embedding: int = 0,
    ) -> None:
        super().__init__()
        self.wide = nn.Linear(n_inputs, n_outputs)
        self.n_numeric = n_numeric if embedding > 0 else 0
        self.embed: nn.Module | None = None
        deep_inputs = n_inputs
        if self.n_numeric:
            # PLR embeddings (Gorishniy et al., NeurIPS 2022): sin/cos of learnt frequencies,
            # then a linear layer and ReLU, per numeric column.
            self.embed = PeriodicEmbeddings(self.n_numeric, embedding, n_frequencies=16, lite=False)
            deep_inputs = n_inputs - self.n_numeric + self.n_numeric * embedding
        self.deep = nn.Sequential(
            nn.Linear(deep_inputs, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.out = nn.Linear(hidden, n_outputs)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = x
        if self.embed is not None:
            numbers = self.embed(x[:, : self.n_numeric]).flatten(1)
            deep = torch.cat([numbers, x[:, self.n_numeric :]], dim=1)
        return self.wide(x) + self.out(self.deep(deep))


class IntervalBody(Body):
    """The logistic hazard of each interval: a learnt baseline per interval plus the shared
    risk of the inputs (the discrete-time analogue of proportional hazards), so the intervals
    share what the covariates do instead of fitting it 20 times over."""

    def __init__(
        self,
        n_inputs: int,
        n_intervals: int,
        hidden: int,
        dropout: float,
        n_numeric: int = 0,
        embedding: int = 0,
    ) -> None:
        super().__init__(n_inputs, 1, hidden, dropout, n_numeric, embedding)
        self.baseline = nn.Parameter(torch.zeros(n_intervals))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.baseline[None, :] + super().forward(x)
