"""The task model (Peters et al. 2018, §3.3): frozen biLM layers -> ELMo mix at the input
(⊕ optional trainable word embedding) -> BiLSTM/GRU -> (⊕ optional second mix at its output)
-> pooling over real positions -> dropout -> linear.

The biLM's layers arrive precomputed (from :mod:`elmo.embed.cache` in training, from
:class:`elmo.embed.Elmo` at prediction): only the mixes, the word embedding, the RNN and the
output layer are trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from elmo.data.batch import encode_batch
from elmo.embed.scalar_mix import ScalarMix
from elmo.model.bilm import check_mask, reverse_padded


@dataclass(frozen=True)
class TaskConfig:
    n_classes: int
    vocab_size: int  # task word vocabulary (0 = <pad>, 1 = <unk>)
    elmo_layers: int = 0  # L+1 (0 without ELMo)
    elmo_dim: int = 0  # 2P
    use_elmo: bool = True
    elmo_gamma: bool = True
    elmo_layer_norm: bool = False
    elmo_output_mix: bool = False
    elmo_dropout: float = 0.5
    word_dim: int = 100
    rnn: str = "lstm"
    hidden: int = 128
    rnn_layers: int = 1
    pooling: str = "max_mean"
    dropout: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TaskConfig: unknown key(s) {', '.join(unknown)}")
        return cls(**d)


class BiRNN(nn.Module):
    """A bidirectional LSTM/GRU over right-padded batches: the backward direction runs on each
    sentence reversed within its length (as the biLM does), so pads never reach a real position
    and no packing is needed (PyTorch's fused CPU kernels run on the padded tensor)."""

    def __init__(self, kind: str, in_dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        dims = [in_dim] + [2 * hidden] * (layers - 1)
        self.fwd = nn.ModuleList(cls(d, hidden, batch_first=True) for d in dims)
        self.bwd = nn.ModuleList(cls(d, hidden, batch_first=True) for d in dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim), mask (B, T) right-padded -> (B, T, 2H), zeros at pads."""
        lengths = check_mask(mask)
        for i, (f, b) in enumerate(zip(self.fwd, self.bwd)):
            if i > 0:
                x = self.dropout(x)
            hf, _ = f(x)
            hb, _ = b(reverse_padded(x, lengths))
            x = torch.cat([hf, reverse_padded(hb, lengths)], dim=-1)
        return x * mask.unsqueeze(-1).to(x.dtype)


class TaskModel(nn.Module):
    def __init__(self, cfg: TaskConfig) -> None:
        super().__init__()
        if cfg.use_elmo and (cfg.elmo_layers < 1 or cfg.elmo_dim < 1):
            raise ValueError("use_elmo needs elmo_layers and elmo_dim")
        if not cfg.use_elmo and cfg.word_dim == 0:
            raise ValueError("the task model needs an input: use_elmo or word_dim > 0")
        self.cfg = cfg
        mix = dict(trainable_gamma=cfg.elmo_gamma, layer_norm=cfg.elmo_layer_norm)
        self.input_mix = ScalarMix(cfg.elmo_layers, **mix) if cfg.use_elmo else None
        self.output_mix = ScalarMix(cfg.elmo_layers, **mix) if cfg.use_elmo and cfg.elmo_output_mix else None
        self.embed = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=0) if cfg.word_dim else None
        in_dim = (cfg.elmo_dim if cfg.use_elmo else 0) + cfg.word_dim
        self.rnn = BiRNN(cfg.rnn, in_dim, cfg.hidden, cfg.rnn_layers, cfg.dropout)
        out_dim = 2 * cfg.hidden + (cfg.elmo_dim if self.output_mix is not None else 0)
        pooled = out_dim * (2 if cfg.pooling == "max_mean" else 1)
        self.elmo_dropout = nn.Dropout(cfg.elmo_dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(pooled, cfg.n_classes)

    def forward(self, elmo: torch.Tensor | None, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """elmo (B, L+1, T, 2P) or None, words (B, T) task word ids, mask (B, T) bool -> logits (B, K)."""
        parts = []
        if self.input_mix is not None:
            if elmo is None:
                raise ValueError("this model uses ELMo: pass the biLM layers")
            parts.append(self.elmo_dropout(self.input_mix(elmo, layer_dim=1)))  # (B, T, 2P)
        if self.embed is not None:
            parts.append(self.dropout(self.embed(words)))  # (B, T, E)
        x = torch.cat(parts, dim=-1)  # (B, T, in_dim)
        h = self.rnn(x, mask)  # (B, T, 2H)
        if self.output_mix is not None:
            h = torch.cat([h, self.elmo_dropout(self.output_mix(elmo, layer_dim=1))], dim=-1)
        m = mask.unsqueeze(-1)  # (B, T, 1)
        pooled = []
        if self.cfg.pooling in ("max", "max_mean"):
            pooled.append(h.masked_fill(~m, float("-inf")).max(dim=1).values)
        if self.cfg.pooling in ("mean", "max_mean"):
            pooled.append((h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1))
        return self.out(self.dropout(torch.cat(pooled, dim=-1)))  # (B, K)

    def batch_inputs(self, data, idx) -> tuple:
        """The forward() arguments for items ``idx`` of a :class:`elmo.task.train.TaskData`."""
        return data.batch(idx, self.cfg.use_elmo)


class BiLMTaskModel(nn.Module):
    """A task model over a biLM that trains with it (ULMFiT-style finetuning, ``finetune.bilm.mode``
    ``unfrozen``/``adapted_unfrozen``): the biLM's layers are computed in the forward pass instead
    of read from the cache, so gradients reach the biLM groups that are unfrozen.

    In eval mode it computes exactly what ``Elmo.layer_batch`` + :class:`TaskModel` compute, so a
    saved model (its head and this biLM's weights, ``save_classifier``) predicts the same.
    """

    def __init__(self, head: TaskModel, bilm, vocab) -> None:
        super().__init__()
        if not head.cfg.use_elmo:
            raise ValueError("a biLM task model needs a head that uses ELMo")
        if head.cfg.elmo_dim != 2 * bilm.config.projection_dim or head.cfg.elmo_layers != bilm.config.n_layers + 1:
            raise ValueError(f"head expects {head.cfg.elmo_layers} layers of {head.cfg.elmo_dim}, the biLM gives "
                             f"{bilm.config.n_layers + 1} of {2 * bilm.config.projection_dim}")
        self.head = head
        self.bilm = bilm
        self.vocab = vocab  # encodes token lists into the biLM's char ids
        self.cfg = head.cfg

    def forward(self, chars: torch.Tensor, bilm_mask: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """chars (B, T+2, C) and bilm_mask (B, T+2) of [<bos>, w1..wn, <eos>]; words, mask (B, T) -> (B, K)."""
        T = words.shape[1]
        layers = self.bilm.layer_outputs(chars, bilm_mask)  # (L+1, B, T+2, 2P)
        elmo = layers.permute(1, 0, 2, 3)[:, :, 1:T + 1]  # (B, L+1, T, 2P): <bos> dropped; <eos> only past n
        return self.head(elmo, words, mask)

    def batch_inputs(self, data, idx) -> tuple:
        if data.tokens is None:
            raise ValueError("a biLM task model needs the data's token lists (TaskData.tokens)")
        _, words, mask = data.batch(idx, False)
        b = encode_batch(self.vocab, [data.tokens[i] for i in idx])
        return b.chars, b.mask, words, mask
