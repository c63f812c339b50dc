"""The context-independent token encoder: characters of one token -> one vector (Kim et al. 2016).

    chars (N, C) -> embed (N, C, E) -> conv1d of widths w_k, n_k filters each -> max over positions
    -> activation -> concat (N, sum n_k) -> highway x K -> linear projection (N, P)

Max-pooling before the activation equals activation-then-max for the monotonic relu/tanh, and is
cheaper. The pad char embeds to zeros (``padding_idx``), as in allennlp's ELMo character encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from elmo.model.config import BiLMConfig
from elmo.model.highway import Highway


class CharCNN(nn.Module):
    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.n_chars, config.char_embed_dim, padding_idx=config.char_pad_id)
        nn.init.uniform_(self.embed.weight, -1.0, 1.0)  # bilm-tf's char embedding init
        with torch.no_grad():
            self.embed.weight[config.char_pad_id].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(config.char_embed_dim, n, kernel_size=w) for w, n in config.filters)
        self.act = torch.relu if config.activation == "relu" else torch.tanh
        self.highway = Highway(config.n_filters, config.highway_layers)
        self.proj = nn.Linear(config.n_filters, config.projection_dim)

    def encode(self, chars: torch.Tensor) -> torch.Tensor:
        """chars (N, C) of N tokens -> token vectors (N, P)."""
        x = self.embed(chars).transpose(1, 2)  # (N, E, C): Conv1d wants channels first
        feats = [conv(x).amax(dim=2) for conv in self.convs]  # K x (N, n_k)
        h = self.act(torch.cat(feats, dim=1))  # (N, F), F = sum n_k
        h = self.highway(h)  # (N, F)
        return self.proj(h)  # (N, P)

    def forward(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """chars (B, T, C), mask (B, T) -> token vectors (B, T, P); zeros at pad positions.

        Only the real tokens are encoded, each distinct spelling once; a token's vector depends on
        its own characters only.
        """
        B, T, C = chars.shape
        out = chars.new_zeros((B, T, self.config.projection_dim), dtype=self.proj.weight.dtype)
        idx = mask.reshape(-1).nonzero().squeeze(1)  # (N,) flat positions of real tokens
        if idx.numel():
            flat = chars.reshape(B * T, C).index_select(0, idx)  # (N, C)
            # Text repeats itself (particles, endings, punctuation): encode each distinct spelling
            # once (U << N) and scatter; the gradient of a repeated token is summed by index_select.
            uniq, inverse = torch.unique(flat, dim=0, return_inverse=True)  # (U, C), (N,)
            vecs = self.encode(uniq).index_select(0, inverse)  # (N, P)
            out = out.reshape(B * T, -1).index_copy(0, idx, vecs.to(out.dtype)).reshape(B, T, -1)
        return out
