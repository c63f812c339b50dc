"""ScalarMix (Peters et al. 2018, eq. 1): ELMo_k = γ · Σ_j softmax(s)_j · h_{k,j}.

``s`` (one scalar per layer) and ``γ`` are trainable (``trainable_gamma=False`` fixes γ at 1);
one mix per place it is used (the task model's input, and optionally the output of its RNN).
With ``layer_norm`` each layer's vector is first normalised over its features at each position
(no learned affine). Per position, not over the batch as allennlp does, so a sentence's mix never
depends on what else is in the batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ScalarMix(nn.Module):
    def __init__(self, n_layers: int, *, trainable_gamma: bool = True, layer_norm: bool = False,
                 initial_scalars: list[float] | None = None) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"ScalarMix needs at least one layer, got {n_layers}")
        init = initial_scalars if initial_scalars is not None else [0.0] * n_layers
        if len(init) != n_layers:
            raise ValueError(f"initial_scalars has {len(init)} values for {n_layers} layers")
        self.n_layers = n_layers
        self.layer_norm = layer_norm
        self.scalars = nn.Parameter(torch.tensor(init, dtype=torch.float32))  # s, (L+1,)
        self.gamma = nn.Parameter(torch.ones(()), requires_grad=trainable_gamma)  # γ, ()

    def weights(self) -> torch.Tensor:
        """softmax(s), (L+1,): non-negative, sums to 1."""
        return torch.softmax(self.scalars, dim=0)

    def forward(self, layers: torch.Tensor, layer_dim: int = 0) -> torch.Tensor:
        """layers with the L+1 biLM layers on ``layer_dim``, e.g. (L+1, B, T, D) -> (B, T, D).

        Pads hold zeros in the biLM's outputs and stay zero (layer norm maps a zero vector to 0).
        """
        if layers.shape[layer_dim] != self.n_layers:
            raise ValueError(f"expected {self.n_layers} layers on dim {layer_dim}, got shape {tuple(layers.shape)}")
        layers = layers.to(self.scalars.dtype)
        if self.layer_norm:
            layers = F.layer_norm(layers, layers.shape[-1:], eps=1e-6)
        shape = [1] * layers.dim()
        shape[layer_dim] = self.n_layers
        w = self.weights().view(shape)  # broadcast over every other dim
        return self.gamma * (w * layers).sum(dim=layer_dim)

    def extra_repr(self) -> str:
        return f"n_layers={self.n_layers}, trainable_gamma={self.gamma.requires_grad}, layer_norm={self.layer_norm}"
