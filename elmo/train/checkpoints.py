"""Checkpoints of a pretrain run: every N steps (``last.ckpt`` + the latest ``step=…``), the best
by valid perplexity (``best.ckpt``), and the rule for resuming.

A checkpoint directory belongs to one *fingerprint* — a hash of the model config, the training
params, the seed, the data (vocabulary and training-array hashes) and the training code. A run
resumes only from checkpoints with its own fingerprint; checkpoints of anything else are moved
to ``<dir>.previous`` (replacing an older one) and the run starts afresh, so a changed param,
dataset or code never continues a stale run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

import elmo
from elmo.io import atomic_write_json
from elmo.train.evaluate import evaluate

FINGERPRINT_FILE = "fingerprint.json"
LAST = "last.ckpt"
BEST = "best"


def is_primary_process() -> bool:
    """True unless this process is a non-zero rank of a distributed launch (Lightning, torchrun, SLURM)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


# The packages whose sources decide what training computes. Every file here is a pretrain dep in
# dvc.yaml, and every one of them that pretrain imports is hashed (tests/test_dvc_deps.py), so a
# code change both reruns the stage and discards stale checkpoints; test helpers live in tests/.
CODE_DIRS = ("model", "train", "data")


def code_files() -> list[Path]:
    """The files :func:`code_hash` reads, in the order it reads them."""
    root = Path(elmo.__file__).parent
    return [f for sub in CODE_DIRS for f in sorted((root / sub).glob("*.py"))]


def code_hash() -> str:
    """sha256 over the sources that decide what training computes (elmo/model, elmo/train, elmo/data)."""
    h = hashlib.sha256()
    for f in code_files():
        h.update(f"{f.parent.name}/{f.name}\0".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def prepare(directory: Path, fp: str, *, resume: bool, primary: bool = True) -> tuple[Path | None, str]:
    """Make ``directory`` this run's; return (checkpoint to resume from or None, what happened).

    Only the primary process moves or writes anything; the others only read.
    """
    directory = Path(directory)
    fp_file = directory / FINGERPRINT_FILE
    old = None
    if fp_file.is_file():
        try:
            old = json.loads(fp_file.read_text(encoding="utf-8")).get("fingerprint")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            old = None
    if directory.exists() and old == fp and resume:
        last = directory / LAST
        if last.is_file():
            return last, f"resuming from {last}"
        return None, "starting (no checkpoint yet)"
    if primary:
        if directory.exists():
            stale = directory.with_name(directory.name + ".previous")
            if stale.exists():
                shutil.rmtree(stale)
            directory.rename(stale)
            why = "resume is off" if old == fp else "checkpoints of another config, data or code"
            msg = f"starting afresh ({why}: moved to {stale})"
        else:
            msg = "starting"
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(fp_file, {"fingerprint": fp})
        return None, msg
    return None, "starting"


def checkpoint_callbacks(directory: Path, every_n_steps: int) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """(periodic: the latest ``step=N.ckpt`` + ``last.ckpt`` every N steps; best by valid/ppl)."""
    # no monitor: with one, Lightning defers an epoch's last-batch save to a validation that
    # a step-based schedule may not run; save_top_k=1 without a monitor keeps the latest
    periodic = ModelCheckpoint(dirpath=directory, filename="{step}", every_n_train_steps=every_n_steps,
                               save_top_k=1, save_last=True, enable_version_counter=False,
                               save_on_train_epoch_end=False)
    best = ModelCheckpoint(dirpath=directory, filename=BEST, monitor="valid/ppl", mode="min", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    return periodic, best


class FinalCheckpoint(Callback):
    """``last.ckpt`` at the step training ended on (periodic saves may have stopped short of it),
    so a finished run that is started again has nothing left to do."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LAST

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step > 0:
            trainer.save_checkpoint(self.path)


def load_weights(model, ckpt: Path) -> int:
    """The biLM weights of a Lightning checkpoint into ``model`` (tensors only); returns its step."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)
    return int(state.get("global_step", -1))


def select_weights(model, best: ModelCheckpoint, step: int, subset, *, device, bf16: bool) -> tuple[dict, dict]:
    """Keep the better, on the validation batches ``subset``, of the last step (in ``model``) and
    the best validated checkpoint (loaded into ``model`` when it wins). Returns (what was kept,
    the last step's perplexities)."""
    last = evaluate(model, subset, device=device, bf16=bf16, desc="valid (last step)")
    selected = {"from": "last", "step": step, "valid_subset_ppl": last["ppl"]}
    path = Path(best.best_model_path) if best.best_model_path else None
    if path is not None and path.is_file() and best.best_model_score is not None \
            and float(best.best_model_score) < last["ppl"]:
        best_step = load_weights(model, path)
        model.to(device)
        selected = {"from": "best", "step": best_step, "valid_subset_ppl": float(best.best_model_score)}
    return selected, last
