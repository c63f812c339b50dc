"""What a pretrain run reports while it trains (rank 0 writes; every rank takes part in the sums).

Every ``log_every_steps`` steps: the batch loss (mean over ranks), learning rate, training tokens/s
over all ranks (validation time excluded), and the gradient L2 norm per layer before clipping.
After every validation: valid perplexity per direction and averaged, and one console line.
Each row goes to MLflow (when a run is open) and to the DVC plot tables; the rows travel in the
checkpoints, so a resumed run's curves continue the interrupted ones.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
import torch
from tqdm import tqdm

from elmo.budget import step_pause
from elmo.log import get_logger
from elmo.tracking import log_metric_rows

log = get_logger("pretrain")


class MetricSink:
    """Rows of (step, metrics) for the plot tables, mirrored to an MLflow run when one is given."""

    def __init__(self) -> None:
        self.train_rows: list[dict[str, float]] = []
        self.valid_rows: list[dict[str, float]] = []
        self.client = None
        self.run_id: str | None = None

    def attach(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.client is None:
            return
        log_metric_rows(self.client, self.run_id, step, metrics)


class TrainingLog(L.Callback):
    def __init__(self, sink: MetricSink, log_every: int, total_steps: int | None = None) -> None:
        self.sink = sink
        self.log_every = log_every
        self.total_steps = total_steps
        self._t = 0.0
        self._tokens = 0
        self._val_time = 0.0
        self._val_start: float | None = None
        self.last_tokens_per_s: float | None = None
        self.tokens_trained = 0  # real positions trained on, all ranks, this run and the ones it resumed

    # ------------------------------------------------------------ state in the checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"train_rows": self.sink.train_rows, "valid_rows": self.sink.valid_rows,
                "tokens_trained": self.tokens_trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sink.train_rows = list(state.get("train_rows", []))
        self.sink.valid_rows = list(state.get("valid_rows", []))
        self.tokens_trained = int(state.get("tokens_trained", 0))

    # ------------------------------------------------------------ training
    def on_train_start(self, trainer, pl_module) -> None:
        step = trainer.global_step  # rows after a resumed checkpoint's step were never checkpointed
        self.sink.train_rows = [r for r in self.sink.train_rows if r["step"] <= step]
        self.sink.valid_rows = [r for r in self.sink.valid_rows if r["step"] <= step]
        self._t, self._tokens, self._val_time = time.perf_counter(), pl_module.tokens_seen, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.log_every != 0 or pl_module.last_loss is None:
            return
        now = time.perf_counter()
        stats = torch.tensor([float(pl_module.last_loss), pl_module.tokens_seen - self._tokens], dtype=torch.float64)
        if trainer.world_size > 1:
            stats = trainer.strategy.reduce(stats.to(pl_module.device), reduce_op="sum").cpu()
        elapsed = max(now - self._t - self._val_time, 1e-9)
        self._t, self._tokens, self._val_time = now, pl_module.tokens_seen, 0.0
        self.tokens_trained += int(stats[1])
        if not trainer.is_global_zero:
            return
        tokens_per_s = float(stats[1]) / elapsed
        self.last_tokens_per_s = tokens_per_s
        metrics = {
            "train/loss": float(stats[0]) / trainer.world_size,
            "train/lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "train/tokens_per_s": tokens_per_s,
        }
        metrics.update({f"grad_norm/{k}": v for k, v in pl_module.grad_norms.items()})
        self.sink.train_rows.append({"step": step, "train_loss": metrics["train/loss"], "lr": metrics["train/lr"],
                                     "tokens_per_s": tokens_per_s})
        self.sink.log(step, metrics)

    def on_train_end(self, trainer, pl_module) -> None:
        rest = torch.tensor([pl_module.tokens_seen - self._tokens], dtype=torch.float64)
        if trainer.world_size > 1:
            rest = trainer.strategy.reduce(rest.to(pl_module.device), reduce_op="sum").cpu()
        self.tokens_trained += int(rest[0])
        self._tokens = pl_module.tokens_seen

    # ------------------------------------------------------------ validation
    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._val_start is not None:
            self._val_time += time.perf_counter() - self._val_start
            self._val_start = None
        if trainer.sanity_checking or not trainer.is_global_zero or not pl_module.val_metrics:
            return
        m = pl_module.val_metrics
        step = trainer.global_step
        self.sink.valid_rows.append({"step": step, "valid_ppl": m["ppl"], "valid_ppl_fwd": m["ppl_fwd"],
                                     "valid_ppl_bwd": m["ppl_bwd"]})
        self.sink.log(step, {f"valid/{k}": v for k, v in m.items() if k != "tokens"})
        of = f"/{self.total_steps}" if self.total_steps else ""
        speed = f", {self.last_tokens_per_s:,.0f} tokens/s" if self.last_tokens_per_s else ""
        log.info(f"step {step}{of}: valid perplexity {m['ppl']:.2f} (forward {m['ppl_fwd']:.2f}, "
                 f"backward {m['ppl_bwd']:.2f}){speed}")


class StepPause(L.Callback):
    """The test hook of elmo/budget.py: sleeps ``$ELMO_STEP_SLEEP_S`` after every step (a slower machine)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step_pause()


class StepProgress(L.Callback):
    """One tqdm bar over the run's optimizer steps (rank 0): loss, valid perplexity, tokens/s."""

    def __init__(self, total_steps: int, log: TrainingLog) -> None:
        self.total = total_steps
        self.training_log = log
        self.bar = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.bar = tqdm(total=self.total, initial=trainer.global_step, desc="pretrain", unit="step",
                            dynamic_ncols=True, file=sys.stderr)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None:
            return
        self.bar.update(trainer.global_step - self.bar.n)
        if trainer.global_step % self.training_log.log_every == 0 and pl_module.last_loss is not None:
            post = {"loss": f"{float(pl_module.last_loss):.3f}"}
            if pl_module.val_metrics:
                post["valid_ppl"] = f"{pl_module.val_metrics['ppl']:.1f}"
            if self.training_log.last_tokens_per_s:
                post["tok/s"] = f"{self.training_log.last_tokens_per_s:,.0f}"
            self.bar.set_postfix(post, refresh=False)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    on_exception = lambda self, trainer, pl_module, exc: self.on_train_end(trainer, pl_module)  # noqa: E731
