"""The ``lightning.Trainer`` of a pretrain run, from ``pretrain.trainer`` and the preset's ``train``.

* devices / num_nodes / strategy: Lightning's own; more than one process means DDP (the process
  group is gloo on CPUs, NCCL on GPUs; a 2-process CPU run works on one machine, the same params
  run on several GPUs or nodes under torchrun/SLURM). The adaptive softmax only computes the
  clusters a batch needs, so DDP then looks for unused parameters.
* precision ``auto``: bf16 autocast on a GPU, fp32 on a CPU.
* the run stops at the first of max_steps, max_epochs and max_minutes (Lightning's Timer, whose
  clock is kept in the checkpoints, so a resumed run has only what is left of the budget).
"""

from __future__ import annotations

import logging
import os
import warnings
from datetime import timedelta

import lightning as L
import torch

from elmo.params.pretrain import TrainerParams, TrainParams


def resolve_accelerator(p: TrainerParams) -> str:
    if p.accelerator != "auto":
        return "gpu" if p.accelerator == "cuda" else p.accelerator
    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_precision(p: TrainerParams, accelerator: str) -> str:
    if p.precision != "auto":
        return p.precision
    return "bf16-mixed" if accelerator == "gpu" and torch.cuda.is_bf16_supported() else "32-true"


def processes_per_node(p: TrainerParams, accelerator: str) -> int:
    if p.devices == "auto":
        return torch.cuda.device_count() if accelerator == "gpu" else 1
    return int(p.devices)


def resolve_strategy(p: TrainerParams, accelerator: str, *, adaptive_softmax: bool):
    distributed = processes_per_node(p, accelerator) * p.num_nodes > 1
    if p.strategy == "auto" and not distributed:
        return "auto"
    if p.strategy in ("auto", "ddp", "ddp_find_unused_parameters_true"):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(process_group_backend="nccl" if accelerator == "gpu" else "gloo",
                           find_unused_parameters=adaptive_softmax or p.strategy == "ddp_find_unused_parameters_true")
    return p.strategy


def set_threads(p: TrainerParams, accelerator: str) -> int:
    """torch threads of this process: ``threads``, or the usable cores shared by this node's processes."""
    n = p.threads
    if n == 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        n = max(1, cores // (processes_per_node(p, accelerator) if accelerator == "cpu" else 1))
    torch.set_num_threads(n)
    return n


def quiet_lightning() -> None:
    """Keep the console for what matters: no hardware banners, tips or known-harmless warnings."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for msg in ("Checkpoint directory .* exists and is not empty", ".*isinstance\\(treespec, LeafSpec\\).*",
                "The number of training batches .* is smaller than the logging interval",
                ".*does not have many workers which may be a bottleneck.*"):
        warnings.filterwarnings("ignore", message=msg)


def build_trainer(p: TrainerParams, train: TrainParams, *, callbacks: list, root_dir: str,
                  adaptive_softmax: bool) -> L.Trainer:
    accelerator = resolve_accelerator(p)
    quiet_lightning()
    return L.Trainer(
        accelerator=accelerator,
        devices=p.devices,
        num_nodes=p.num_nodes,
        strategy=resolve_strategy(p, accelerator, adaptive_softmax=adaptive_softmax),
        precision=resolve_precision(p, accelerator),
        max_steps=train.max_steps,  # max_epochs is folded in by the stage: the stream has no epochs
        max_epochs=-1,
        max_time=timedelta(minutes=train.max_minutes) if train.max_minutes else None,
        val_check_interval=train.val_every_steps,
        check_val_every_n_epoch=None,  # validate every val_every_steps steps
        num_sanity_val_steps=0,
        gradient_clip_val=train.grad_clip,
        gradient_clip_algorithm="norm",
        logger=False,  # metrics go to MLflow and the DVC plots through elmo.train.callbacks
        log_every_n_steps=train.log_every_steps,
        callbacks=callbacks,
        default_root_dir=root_dir,
        enable_progress_bar=False,  # elmo.train.callbacks.StepProgress: one bar over the steps
        enable_model_summary=False,
        use_distributed_sampler=False,  # elmo.train.datamodule shards the bucketed batches itself
        deterministic=False,
        benchmark=False,
    )
