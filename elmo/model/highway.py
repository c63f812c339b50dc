"""Highway layers (Srivastava et al. 2015), as in bilm-tf / allennlp's character encoder.

y = g * x + (1 - g) * relu(W_h x + b_h),   g = sigmoid(W_g x + b_g)

The gate bias starts at 1, so a fresh layer mostly *carries* its input through (g ~ 0.73): the
CNN features reach the LSTMs unchanged until the transform proves useful.
"""

from __future__ import annotations

import torch
from torch import nn


class Highway(nn.Module):
    def __init__(self, dim: int, n_layers: int, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.dim = dim
        # one Linear per layer computes both the transform and the gate: (.., dim) -> (.., 2 dim)
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(n_layers))
        for layer in self.layers:
            nn.init.zeros_(layer.bias[:dim])
            nn.init.constant_(layer.bias[dim:], gate_bias)  # carry

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, dim) -> (N, dim)
        for layer in self.layers:
            transform, gate = layer(x).chunk(2, dim=-1)  # (N, dim) each
            g = torch.sigmoid(gate)
            x = g * x + (1.0 - g) * torch.relu(transform)
        return x
