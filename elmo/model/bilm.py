"""The bidirectional language model of ELMo (Peters et al. 2018, bilm-tf's architecture).

    chars (B, T, C) --CharCNN--> x (B, T, P)   context-independent token vectors
    forward stack:  x -> LSTM_1 -> LSTM_2 (+ residual from LSTM_1) -> predicts token t+1 from <= t
    backward stack: the same on each sentence reversed (own weights) -> predicts t-1 from >= t
    both tops -> dropout -> one shared (tied) softmax over the word vocabulary

Each LSTM is ``nn.LSTM(in, H, proj_size=P)`` (cuDNN-fused on a GPU): cell size H, output projected
to P. The two stacks never exchange states: a stacked ``bidirectional=True`` LSTM would feed layer
2 of one direction with layer 1 of the other, i.e. with the very token it must predict
(tests/test_model_leakage.py proves ours does not, and that the check catches a model that does).

Sentences are right-padded: ``mask`` (B, T) is true on a prefix of each row. The backward stack
reverses each sentence within its own length, so pads stay at the end in both directions and never
reach a real position.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from elmo.model.char_cnn import CharCNN
from elmo.model.config import BiLMConfig
from elmo.model.files import load_bilm, save_bilm
from elmo.model.softmax import make_softmax
from elmo.vocab.chars import UNK

# On a CPU, projected LSTMs run PyTorch's own kernel instead of oneDNN's; that is expected, not news.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


@dataclass
class BiLMOutput:
    token: torch.Tensor  # (B, T, P) char-CNN token vectors (zeros at pads)
    forward: list[torch.Tensor]  # L x (B, T, P): forward layer l at t has seen tokens <= t
    backward: list[torch.Tensor]  # L x (B, T, P): backward layer l at t has seen tokens >= t
    mask: torch.Tensor  # (B, T) bool


@dataclass
class LMLoss:
    loss: torch.Tensor  # scalar: (mean fwd NLL + mean bwd NLL) / 2 — what is optimised
    nll_fwd: torch.Tensor  # scalar, summed over the forward targets (no grad)
    nll_bwd: torch.Tensor  # scalar, summed over the backward targets (no grad)
    n_fwd: int  # number of forward targets (non-pad)
    n_bwd: int


def check_mask(mask: torch.Tensor) -> torch.Tensor:
    """The lengths (B,) of a right-padded mask; anything else is an error."""
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a (B, T) bool tensor, got {tuple(mask.shape)} {mask.dtype}")
    lengths = mask.sum(dim=1)  # (B,)
    prefix = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(prefix, mask):
        raise ValueError("mask must be right-padded (true on a prefix of each row)")
    return lengths


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of x (B, T, D) within its length; pads stay where they are. An involution."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    idx = lengths.unsqueeze(1) - 1 - t  # (B, T)
    idx = torch.where(idx >= 0, idx, t.expand(B, T))
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class LSTMStack(nn.Module):
    """L projected LSTM layers of one direction; dropout on each layer's input, residual from layer 2 on."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        P, H = config.projection_dim, config.lstm_dim
        self.layers = nn.ModuleList(nn.LSTM(P, H, proj_size=P, batch_first=True) for _ in range(config.n_layers))
        self.dropout = nn.Dropout(config.dropout)
        for lstm in self.layers:
            with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015; bilm-tf's forget_bias)
                lstm.bias_ih_l0[H:2 * H].fill_(1.0)
                lstm.bias_hh_l0[H:2 * H].zero_()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, T, P), pads at the end -> L x (B, T, P)."""
        outs = []
        for i, lstm in enumerate(self.layers):
            y, _ = lstm(self.dropout(x))  # (B, T, P)
            if i > 0:
                y = y + x  # residual connection (bilm-tf: every layer after the first)
            outs.append(y)
            x = y
        return outs


class BiLM(nn.Module):
    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        self.config = config
        self.token_encoder = CharCNN(config)
        self.forward_lm = LSTMStack(config)
        self.backward_lm = LSTMStack(config)
        self.out_dropout = nn.Dropout(config.dropout)
        self.softmax = make_softmax(config)  # tied: one output layer for both directions

    # ------------------------------------------------------------------ representations
    def forward(self, chars: torch.Tensor, mask: torch.Tensor) -> BiLMOutput:
        """chars (B, T, C) char ids, mask (B, T) bool (right-padded) -> every layer's states."""
        if chars.dim() != 3 or chars.shape[:2] != mask.shape:
            raise ValueError(f"chars must be (B, T, C) matching mask (B, T); got {tuple(chars.shape)} "
                             f"and {tuple(mask.shape)}")
        lengths = check_mask(mask)
        x = self.token_encoder(chars, mask)  # (B, T, P)
        fwd = self.forward_lm(x)  # L x (B, T, P)
        bwd = [reverse_padded(h, lengths) for h in self.backward_lm(reverse_padded(x, lengths))]
        return BiLMOutput(token=x, forward=fwd, backward=bwd, mask=mask)

    def layer_outputs(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ELMo's layers: (L+1, B, T, 2P); layer 0 = [x; x], layer l = [forward_l; backward_l].

        Pads are zeros. Use the model in eval mode (``BiLM.load`` returns it so) for
        deterministic vectors.
        """
        out = self.forward(chars, mask)
        layers = [torch.cat([out.token, out.token], dim=-1)]
        layers += [torch.cat([f, b], dim=-1) for f, b in zip(out.forward, out.backward)]
        return torch.stack(layers) * mask.unsqueeze(-1).to(layers[0].dtype)  # (L+1, B, T, 2P)

    # ------------------------------------------------------------------ language-model loss
    def loss(self, out: BiLMOutput, fwd_targets: torch.Tensor, bwd_targets: torch.Tensor,
             exact: bool | None = None) -> LMLoss:
        """Mean of the forward and backward NLL over non-pad targets (target id 0 is ignored).

        fwd_targets[b, t] is the word id at t+1, bwd_targets[b, t] the word id at t-1. ``exact``
        (default: not training) normalises over the whole vocabulary whatever the softmax kind.
        """
        exact = (not self.training) if exact is None else exact
        f_pos, b_pos = fwd_targets != 0, bwd_targets != 0  # (B, T) each
        h = torch.cat([self.out_dropout(out.forward[-1])[f_pos],
                       self.out_dropout(out.backward[-1])[b_pos]])  # (Nf + Nb, P)
        targets = torch.cat([fwd_targets[f_pos], bwd_targets[b_pos]])  # (Nf + Nb,)
        if targets.numel() == 0:
            raise ValueError("batch has no targets (every target is <pad>)")
        nll = self.softmax.exact_nll(h, targets) if exact else self.softmax.train_nll(h, targets)
        nf = int(f_pos.sum())
        nll_f, nll_b = nll[:nf], nll[nf:]
        nb = nll_b.numel()
        loss = 0.5 * (nll_f.sum() / max(nf, 1) + nll_b.sum() / max(nb, 1))
        return LMLoss(loss=loss, nll_fwd=nll_f.detach().sum(), nll_bwd=nll_b.detach().sum(), n_fwd=nf, n_bwd=nb)

    def log_probs(self, out: BiLMOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Full next-word (forward) and previous-word (backward) distributions, (B, T, V) each."""
        B, T, P = out.forward[-1].shape
        f = self.softmax.log_probs(out.forward[-1].reshape(B * T, P)).reshape(B, T, -1)
        b = self.softmax.log_probs(out.backward[-1].reshape(B * T, P)).reshape(B, T, -1)
        return f, b

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, vocab_dir: str | Path | None = None, meta: dict | None = None) -> Path:
        """Write config.json + weights.safetensors (+ ``vocab/`` copied from ``vocab_dir``), atomically."""
        return save_bilm(self, directory, vocab_dir=vocab_dir, meta=meta)

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> BiLM:
        """Rebuild a saved biLM (no pickle), in eval mode."""
        return load_bilm(directory, map_location=map_location, model_class=BiLM)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def with_chars(self, n_chars: int) -> BiLM:
        """A copy whose character embedding has ``n_chars`` rows (characters added to the vocabulary:
        finetune's adapt, pretrain's ``init: previous``); the added rows start as <unk>'s, so the copy
        computes exactly what this biLM computes until they are trained."""
        old = self.token_encoder.embed.weight.detach()
        grown = BiLM(self.config.replace(n_chars=n_chars))
        state = self.state_dict()
        emb = old[UNK].expand(n_chars, -1).clone()
        emb[: old.shape[0]] = old
        state["token_encoder.embed.weight"] = emb
        grown.load_state_dict(state)
        return grown
