"""The torch module behind mlp_wide / mlp_small.

It lives apart from models.py so that loading or running any other model (ridge, the baselines, the benchmark)
never imports torch, the slowest import of a stage's process.
"""

from __future__ import annotations

import torch
from torch import nn


class ScoreNetwork(nn.Module):
    """mlp_wide / mlp_small: fully connected blocks (Linear, ReLU, Dropout), then one unit and a sigmoid.

    The sigmoid keeps every prediction inside the min-max-normalised score range [0, 1].
    """

    def __init__(self, input_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers += [nn.Linear(width, 1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)
