"""The biLM's output layer over the word vocabulary, shared (tied) by both directions.

Three kinds (``BiLMConfig.softmax``), one interface:

* ``train_nll(h, targets) -> (N,)``: the per-token loss used for training — exact for ``full`` and
  ``adaptive``; for ``sampled`` (Jean et al. 2015, as bilm-tf) a softmax over the true word and
  ``n_samples`` negatives drawn log-uniformly over the frequency-sorted vocabulary, every logit
  corrected by ``-log(expected count)`` and accidental hits removed (TF's sampled_softmax_loss).
* ``exact_nll(h, targets) -> (N,)``: -log p(target) under the fully normalised distribution; what
  perplexity is computed from, always, whatever the training kind.
* ``log_probs(h) -> (N, V)``: the whole distribution.

``h`` is (N, P) top-layer states, ``targets`` (N,) word ids; pads are removed before the call.
Word ids follow elmo/vocab: <pad>=0, <unk>=1, <bos>=2, <eos>=3, then words by falling frequency,
which is what makes the log-uniform (Zipfian) proposal a good one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from elmo.model.config import BiLMConfig

EXACT_CHUNK = 2048  # rows per (rows, V) logits block when normalising over the whole vocabulary


class LogUniformSampler:
    """Draws ids in [first, V) with P(rank k) = log((k+2)/(k+1)) / log(R+1), rank k = id - first.

    Sampling is with replacement, so the expected count of an id among S draws is S * q(id).
    ``first=1`` never proposes <pad>, which is never a target.
    """

    def __init__(self, vocab_size: int, first: int = 1) -> None:
        self.first = first
        self.range = vocab_size - first  # R
        self.log_range = math.log(self.range + 1)

    def sample(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        u = torch.rand(n, device=device, dtype=torch.float64)
        k = torch.exp(u * self.log_range).floor().long() - 1  # (n,) ranks in [0, R)
        return k.clamp_(0, self.range - 1) + self.first

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        k = (ids - self.first).double()
        return (torch.log((k + 2) / (k + 1)) / self.log_range).log().float()


class FullSoftmax(nn.Module):
    """Logits ``h @ W.T + b`` over the whole vocabulary: W (V, P), b (V,)."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        V, P = config.vocab_size, config.projection_dim
        self.weight = nn.Parameter(torch.randn(V, P) / math.sqrt(P))  # bilm-tf: N(0, 1/sqrt(P))
        self.bias = nn.Parameter(torch.zeros(V))

    def train_nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(h, self.weight, self.bias).float(), targets, reduction="none")

    def exact_nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = [F.cross_entropy(F.linear(h[i:i + EXACT_CHUNK], self.weight, self.bias).float(),
                               targets[i:i + EXACT_CHUNK], reduction="none")
               for i in range(0, h.shape[0], EXACT_CHUNK)]
        return torch.cat(out) if out else h.new_zeros(0)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(F.linear(h, self.weight, self.bias).float(), dim=-1)


class SampledSoftmax(FullSoftmax):
    """Same parameters as :class:`FullSoftmax`; trains on sampled negatives, evaluates exactly."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__(config)
        self.n_samples = config.n_samples
        self.sampler = LogUniformSampler(config.vocab_size)

    def train_nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.exact_nll(h, targets)
        S = self.n_samples
        neg = self.sampler.sample(S, device=h.device)  # (S,) shared by every row of the batch
        log_s = math.log(S)
        # true logits, corrected by the log expected count of the target: (N,)
        w_t = self.weight.index_select(0, targets)  # (N, P)
        true = (h * w_t).sum(-1) + self.bias.index_select(0, targets)
        true = true.float() - (self.sampler.log_q(targets) + log_s)
        # negative logits: (N, S)
        neg_logits = F.linear(h, self.weight.index_select(0, neg), self.bias.index_select(0, neg)).float()
        neg_logits = neg_logits - (self.sampler.log_q(neg) + log_s)
        neg_logits = neg_logits.masked_fill(neg.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))  # accidental hits
        logits = torch.cat([true.unsqueeze(1), neg_logits], dim=1)  # (N, 1 + S), the true word at column 0
        return torch.logsumexp(logits, dim=1) - true


class AdaptiveSoftmax(nn.Module):
    """``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017): a head over the frequent words and the
    cluster tokens, smaller tails for the rarer ones; exact in training and evaluation alike."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        cutoffs = config.effective_cutoffs
        if cutoffs:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(config.projection_dim, config.vocab_size, cutoffs,
                                                     div_value=config.adaptive_div_value, head_bias=True)
        else:  # a vocabulary smaller than the first cutoff: a plain softmax
            self.asm = None
            self.full = FullSoftmax(config)

    def train_nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.asm is None:
            return self.full.train_nll(h, targets)
        nll = -self.asm(h.float(), targets).output
        if self.training:
            # A cluster without targets in this batch is skipped; touch its weights with a zero so
            # every parameter is in the graph (DDP then needs no search for unused parameters).
            nll = nll + 0.0 * sum(p.reshape(-1)[0] for p in self.asm.tail.parameters())
        return nll

    def exact_nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.asm is None:
            return self.full.exact_nll(h, targets)
        if h.shape[0] == 0:
            return h.new_zeros(0)
        return -self.asm(h.float(), targets).output

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        if self.asm is None:
            return self.full.log_probs(h)
        return self.asm.log_prob(h.float())


def make_softmax(config: BiLMConfig) -> nn.Module:
    return {"full": FullSoftmax, "sampled": SampledSoftmax, "adaptive": AdaptiveSoftmax}[config.softmax](config)
