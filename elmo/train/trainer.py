"""The ``lightning.Trainer`` of a pretrain run, from ``pretrain.trainer`` and the preset's ``train``.

* devices / num_nodes / strategy: Lightning's own; more than one process means DDP (the process
  group is gloo on CPUs, NCCL on GPUs; a 2-process CPU run works on one machine, the same params
  run on several GPUs or nodes under torchrun/SLURM). Every parameter takes part in every step
  (elmo.model.softmax keeps idle adaptive clusters in the graph), so DDP needs no unused-parameter
  search.
* precision ``auto``: bf16 autocast on a GPU, fp32 on a CPU.
* the run stops at max_steps (max_epochs folded in by the stage) or, only when max_minutes is set
  (an opt-in: the result then depends on the machine's speed), at that wall clock (Lightning's
  Timer, whose clock is kept in the checkpoints, so a resumed run has only what is left of it).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy

from elmo.params.pretrain import TrainerParams, TrainParams


def resolve_accelerator(p: TrainerParams) -> str:
    if p.accelerator != "auto":
        return "gpu" if p.accelerator == "cuda" else p.accelerator
    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_precision(p: TrainerParams, accelerator: str) -> str:
    if p.precision != "auto":
        return p.precision
    return "bf16-mixed" if accelerator == "gpu" and torch.cuda.is_bf16_supported() else "32-true"


MAX_AUTO_CPU_PROCESSES = 8


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def processes_per_node(p: TrainerParams, accelerator: str) -> int:
    """``devices``, or for ``auto``: every GPU, or on a CPU one single-threaded process per usable
    core (at most 8). An LSTM steps through time in thousands of small operations; two threads of
    one process meet at a barrier in each, which costs more than it gains (several times over on
    a machine shared with other jobs), while DDP processes meet once a step."""
    if p.devices == "auto":
        if accelerator == "gpu":
            return max(1, torch.cuda.device_count())
        return max(1, min(MAX_AUTO_CPU_PROCESSES, usable_cores()))
    return int(p.devices)


def threads_per_process(p: TrainerParams, accelerator: str, devices: int) -> int:
    """``threads``, or the usable cores shared by this node's processes (CPU), or all of them (GPU)."""
    if p.threads:
        return p.threads
    return max(1, usable_cores() // (devices if accelerator == "cpu" else 1))


@dataclass(frozen=True)
class TrainerSettings:
    """``pretrain.trainer`` resolved once for this machine: what every later step reads (the
    fingerprint, the Lightning Trainer, evaluation's device and precision), so ``auto`` is
    decided in one place and the same answer is used throughout a run."""

    accelerator: str  # cpu | gpu | mps
    devices: int  # processes per node
    num_nodes: int
    strategy: str  # as configured: auto | ddp | ddp_find_unused_parameters_true
    precision: str  # 32-true | bf16-mixed | 16-mixed
    threads: int  # torch threads per process

    @classmethod
    def resolve(cls, p: TrainerParams) -> TrainerSettings:
        accelerator = resolve_accelerator(p)
        devices = processes_per_node(p, accelerator)
        return cls(accelerator=accelerator, devices=devices, num_nodes=p.num_nodes, strategy=p.strategy,
                   precision=resolve_precision(p, accelerator),
                   threads=threads_per_process(p, accelerator, devices))

    @property
    def world(self) -> int:
        """Processes in the whole run (all nodes)."""
        return self.devices * self.num_nodes

    @property
    def device(self) -> str:
        """Where this process evaluates the trained model."""
        return "cuda" if self.accelerator == "gpu" else "cpu"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16-mixed"

    def apply_threads(self) -> int:
        torch.set_num_threads(self.threads)
        return self.threads


def strategy_for(s: TrainerSettings):
    if s.strategy == "auto" and s.world <= 1:
        return "auto"
    if s.strategy in ("auto", "ddp", "ddp_find_unused_parameters_true"):
        return DDPStrategy(process_group_backend="nccl" if s.accelerator == "gpu" else "gloo",
                           find_unused_parameters=s.strategy == "ddp_find_unused_parameters_true")
    return s.strategy


def quiet_lightning() -> None:
    """Keep the console for what matters: no hardware banners, tips or known-harmless warnings."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for msg in ("Checkpoint directory .* exists and is not empty", ".*isinstance\\(treespec, LeafSpec\\).*",
                "The number of training batches .* is smaller than the logging interval",
                ".*does not have many workers which may be a bottleneck.*"):
        warnings.filterwarnings("ignore", message=msg)


def build_trainer(s: TrainerSettings, train: TrainParams, *, callbacks: list, root_dir: str) -> L.Trainer:
    quiet_lightning()
    return L.Trainer(
        accelerator=s.accelerator,
        devices=s.devices,
        num_nodes=s.num_nodes,
        strategy=strategy_for(s),
        precision=s.precision,
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
