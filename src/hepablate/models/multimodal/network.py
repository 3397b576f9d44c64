"""The multimodal network: a MONAI ``Regressor`` over a tumour's crop channels, fused with a
dense branch over its tabular features, plus a wide linear term."""

from __future__ import annotations

import torch
from monai.networks.nets.regressor import Regressor
from torch import nn

__all__ = ["FusionNetwork"]


class FusionNetwork(nn.Module):
    """The image encoder and the dense branch fused by a linear head, plus a wide term."""

    def __init__(
        self,
        crop_shape: tuple[int, ...],
        n_tabular: int,
        channels: tuple[int, ...],
        embedding: int,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = Regressor(
            in_shape=crop_shape,
            out_shape=(embedding,),
            channels=channels,
            strides=tuple(2 for _ in channels),
            num_res_units=1,
            dropout=dropout,
        )
        self.tabular = nn.Sequential(nn.Linear(n_tabular, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(embedding + hidden, 1)
        # The wide part: a logistic regression on the tabular features, so that the deep parts
        # only have to learn what it misses (with a few dozen events, they would otherwise
        # have to relearn the margin's plain effect from scratch).
        self.wide = nn.Linear(n_tabular, 1)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(image))

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.embed(image), self.tabular(tabular)], dim=1)
        return (self.wide(tabular) + self.head(fused)).squeeze(1)
