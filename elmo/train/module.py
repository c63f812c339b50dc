"""The LightningModule that trains a :class:`~elmo.model.BiLM`.

* training: the configured softmax (full, sampled or adaptive); loss = mean of the forward and
  backward NLL over non-pad targets;
* validation: always the exact softmax; per-direction perplexity = exp(mean NLL) and the average
  ``valid/ppl`` = exp((NLL_fwd + NLL_bwd) / 2), summed over every rank before dividing;
* randomness (dropout, sampled negatives) is reseeded from (seed, global step, rank) at every
  step, so a resumed run draws exactly what an uninterrupted one draws.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from elmo.model import BiLM, BiLMConfig
from elmo.model.perplexity import perplexities
from elmo.params.pretrain import TrainParams
from elmo.train.schedule import warmup_decay


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def lr_factor(step: int, train: TrainParams) -> float:
    """Multiplier of ``train.lr`` at ``step``: elmo.train.schedule.warmup_decay with the preset's settings."""
    return warmup_decay(step, warmup_steps=train.warmup_steps, max_steps=train.max_steps, schedule=train.schedule,
                        min_lr_ratio=train.min_lr_ratio)


class LRSchedule:
    """A picklable lr_lambda (LambdaLR keeps its __dict__ in the checkpoint)."""

    def __init__(self, train: TrainParams) -> None:
        self.train = train.model_dump()

    def __call__(self, step: int) -> float:
        return lr_factor(step, TrainParams(**self.train))


def param_groups(model: BiLM) -> dict[str, list[torch.nn.Parameter]]:
    """Parameters by layer, for the gradient-norm log: char_embed, char_cnn, highway, token_proj,
    forward_1..L, backward_1..L, softmax."""
    groups: dict[str, list[torch.nn.Parameter]] = {}
    enc = model.token_encoder
    groups["char_embed"] = list(enc.embed.parameters())
    groups["char_cnn"] = list(enc.convs.parameters())
    groups["highway"] = list(enc.highway.parameters())
    groups["token_proj"] = list(enc.proj.parameters())
    for name, stack in (("forward", model.forward_lm), ("backward", model.backward_lm)):
        for i, layer in enumerate(stack.layers, start=1):
            groups[f"{name}_{i}"] = list(layer.parameters())
    groups["softmax"] = list(model.softmax.parameters())
    return {k: v for k, v in groups.items() if v}


class BiLMTask(L.LightningModule):
    def __init__(self, config: BiLMConfig, train: TrainParams, seed: int) -> None:
        super().__init__()
        self.model = BiLM(config)
        self.train_params = train
        self.seed = seed
        self._groups = param_groups(self.model)
        self.grad_norms: dict[str, float] = {}  # filled on logging steps (pre-clipping norms)
        self.tokens_seen = 0  # real positions trained on by this process (since this process started)
        self.last_loss: torch.Tensor | None = None
        self._val = torch.zeros(4, dtype=torch.float64)  # nll_fwd, n_fwd, nll_bwd, n_bwd
        self.val_metrics: dict[str, float] = {}

    # ---------------------------------------------------------------- training
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        torch.manual_seed(step_seed(self.seed, self.global_step, self.global_rank))
        out = self.model(batch.chars, batch.mask)
        res = self.model.loss(out, batch.fwd_targets, batch.bwd_targets)
        self.tokens_seen += int(batch.mask.sum())
        self.last_loss = res.loss.detach()
        self.log("train/loss", self.last_loss, prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=batch.mask.shape[0])
        return res.loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # the step being taken is global_step + 1: the one TrainingLog reports after it
        if (self.global_step + 1) % self.train_params.log_every_steps != 0:
            return
        norms = {}
        total = 0.0
        for name, params in self._groups.items():
            sq = sum(float(p.grad.detach().float().pow(2).sum()) for p in params if p.grad is not None)
            norms[name] = math.sqrt(sq)
            total += sq
        norms["total"] = math.sqrt(total)
        self.grad_norms = norms

    def configure_optimizers(self):
        t = self.train_params
        params = [p for p in self.model.parameters() if p.requires_grad]
        if t.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=t.lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay)
        elif t.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=t.lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay)
        elif t.optimizer == "adagrad":  # bilm-tf's choice (lr 0.2, initial accumulator 1.0)
            opt = torch.optim.Adagrad(params, lr=t.lr, initial_accumulator_value=1.0, weight_decay=t.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, LRSchedule(t))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---------------------------------------------------------------- validation (exact softmax)
    def on_validation_epoch_start(self) -> None:
        self._val = torch.zeros(4, dtype=torch.float64)

    def validation_step(self, batch, batch_idx: int) -> None:
        out = self.model(batch.chars, batch.mask)
        res = self.model.loss(out, batch.fwd_targets, batch.bwd_targets, exact=True)
        self._val += torch.tensor([float(res.nll_fwd), res.n_fwd, float(res.nll_bwd), res.n_bwd], dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        sums = self._val.to(self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        m = perplexities(*[float(x) for x in sums.cpu()])
        self.val_metrics = m
        for k, v in m.items():
            self.log(f"valid/{k}", v, prog_bar=k == "ppl", sync_dist=False)
