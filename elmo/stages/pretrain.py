"""Stage pretrain: train the ELMo biLM on the training arrays of the vocab stage.

Reads ``pretrain.vocab_dir`` (the vocabulary) and ``pretrain.arrays_dir`` (memory-mapped token
ids per split); trains the ``pretrain.preset`` model with Lightning (``pretrain.trainer``: CPU or
GPUs, one or several processes or nodes) and writes, each atomically:

* ``pretrain.out_dir`` — the biLM: config.json, weights.safetensors, vocab/ (elmo.model.files),
  with the weights of the better of the best-by-validation checkpoint and the last step,
* ``pretrain.metrics`` — valid and test perplexity per direction and averaged (full softmax),
  steps, tokens, time, throughput, the selected checkpoint,
* ``pretrain.plots_dir`` — ``loss.csv`` (step, train_loss, lr, tokens_per_s) and
  ``perplexity.csv`` (step, valid_ppl, valid_ppl_fwd, valid_ppl_bwd) for ``dvc plots``,

and one MLflow run (params, per-step loss, lr, tokens/s, gradient norm per layer, validation
perplexity, final metrics, the plot tables). Checkpoints go to ``pretrain.checkpoint_dir``; an
interrupted run of the same config, data and code resumes there (elmo.train.checkpoints).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sys
import time
from pathlib import Path

from elmo.contracts import SPLITS
from elmo.errors import StageError
from elmo.io import atomic_write_json, atomic_write_text
from elmo.model import BiLMConfig
from elmo.params.base import runtime_only_keys
from elmo.params.pretrain import ModelParams, TrainerParams


def trainer_fingerprint(trainer: TrainerParams) -> dict:
    """The trainer settings that belong in the checkpoint fingerprint: all but the runtime-only
    ones (threads) and ``devices``, which the fingerprint records resolved, as ``world``."""
    return trainer.model_dump(exclude={*runtime_only_keys(TrainerParams), "devices"})


def model_config(model: ModelParams, vocab) -> BiLMConfig:
    """The biLM config of a preset for this vocabulary (sizes from the data, shape from params)."""
    try:
        return BiLMConfig(vocab_size=vocab.size, n_chars=vocab.char_size, max_chars=vocab.max_chars_per_token,
                          char_pad_id=0, **model.model_dump())
    except ValueError as err:
        raise StageError(f"pretrain preset does not fit the vocabulary ({vocab!r}): {err}") from None


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k)) for k in columns})
    return buf.getvalue()


def _stopped_by(trainer, train, asked) -> str:
    from lightning.pytorch.callbacks import Timer

    if trainer.global_step >= train.max_steps:
        return "max_epochs" if train.max_steps < asked.max_steps else "max_steps"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return "max_minutes"
    return "interrupted" if trainer.interrupted else "end"


def run(params, root: Path) -> dict:
    import lightning as L

    from elmo.data.loader import SentenceDataset
    from elmo.tracking import client as tracking_client, log_results, start_run
    from elmo.train.callbacks import MetricSink, StepProgress, TrainingLog
    from elmo.train.checkpoints import (
        FinalCheckpoint,
        checkpoint_callbacks,
        code_hash,
        fingerprint,
        is_primary_process,
        prepare,
        select_weights,
    )
    from elmo.train.datamodule import PretrainData, valid_batches
    from elmo.train.evaluate import split_perplexity
    from elmo.train.module import BiLMTask
    from elmo.train.trainer import (
        build_trainer,
        processes_per_node,
        resolve_accelerator,
        resolve_precision,
        set_threads,
    )
    from elmo.vocab import Vocabulary

    p = params.pretrain
    root = Path(root)
    preset = p.selected
    t = preset.train
    primary = is_primary_process()
    vocab_dir, arrays_dir = root / p.vocab_dir, root / p.arrays_dir
    out_dir, ckpt_dir = root / p.out_dir, root / p.checkpoint_dir
    started = time.time()

    vocab = Vocabulary.load(vocab_dir)
    data = {s: SentenceDataset(arrays_dir, s, vocab) for s in SPLITS}
    for s in SPLITS:
        if len(data[s]) == 0:
            raise StageError(f"{arrays_dir}: the {s} split has no sentences (clean.valid_fraction/test_fraction?)")
    config = model_config(preset.model, vocab)
    accelerator = resolve_accelerator(p.trainer)
    threads = set_threads(p.trainer, accelerator)
    meta = data["train"].arrays.meta
    world = processes_per_node(p.trainer, accelerator) * p.trainer.num_nodes
    fp_parts = {"config": config.to_dict(), "train": t.model_dump(), "seed": params.seed, "world": world,
                "accelerator": accelerator,
                "trainer": trainer_fingerprint(p.trainer), "vocab_sha256": vocab.sha256,
                "arrays": meta, "code": code_hash()}
    fp = fingerprint(fp_parts)
    resume_from, ckpt_msg = prepare(ckpt_dir, fp, resume=p.resume, primary=primary)
    if primary:
        print(f"pretrain: preset {p.preset}, {accelerator}, {world} process(es) x {threads} thread(s); "
              f"checkpoints: {ckpt_msg}",
              file=sys.stderr, flush=True)

    dm = PretrainData(data["train"], data["valid"], batch_tokens=t.batch_tokens, seed=params.seed,
                      val_batches=t.val_batches)
    steps_per_epoch = dm.steps_per_epoch(world)
    if steps_per_epoch < 1:
        raise StageError(f"{arrays_dir}: the train split makes fewer batches than processes ({world})")
    if t.max_epochs is not None and t.max_epochs * steps_per_epoch < t.max_steps:
        t = t.model_copy(update={"max_steps": t.max_epochs * steps_per_epoch})  # the schedule ends there too

    L.seed_everything(params.seed, workers=False, verbose=False)
    task = BiLMTask(config, t, params.seed)
    sink = MetricSink()
    log_cb = TrainingLog(sink, t.log_every_steps, t.max_steps)
    periodic, best = checkpoint_callbacks(ckpt_dir, t.checkpoint_every_steps)
    trainer = build_trainer(p.trainer, t, callbacks=[log_cb, StepProgress(t.max_steps, log_cb), periodic, best,
                                                 FinalCheckpoint(ckpt_dir)], root_dir=str(ckpt_dir))

    with contextlib.ExitStack() as stack:
        run_id = None
        if primary:
            logged = {"preset": p.preset, "model": config.to_dict(), "train": t.model_dump(),
                      "trainer": p.trainer.model_dump(), "seed": params.seed, "fingerprint": fp,
                      "vocab_sha256": vocab.sha256, "parameters": task.model.num_parameters(),
                      "resumed_from": str(resume_from) if resume_from else None}
            mlrun = stack.enter_context(start_run(params.mlflow, root, stage="pretrain", params=logged))
            run_id = mlrun.info.run_id
            sink.attach(tracking_client(), run_id)
        fit_start = time.time()
        trainer.fit(task, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None, weights_only=False)
        fit_s = time.time() - fit_start
        if not trainer.is_global_zero:
            # a DDP worker process (started by Lightning, torchrun or SLURM) is done: rank 0 evaluates,
            # writes and reports; the worker leaves quietly instead of printing a report of its own
            sys.exit(0)
        if trainer.interrupted:
            raise StageError(f"training was interrupted at step {trainer.global_step}; rerun to resume from {ckpt_dir}")

        # ------------------------------------------------ the weights to keep, and their perplexities
        device = "cuda" if accelerator == "gpu" else "cpu"
        bf16 = resolve_precision(p.trainer, accelerator) == "bf16-mixed"
        model = task.model.to(device)
        subset = valid_batches(data["valid"], t.batch_tokens, max_batches=t.val_batches)
        selected, last_m = select_weights(model, best, trainer.global_step, subset, device=device, bf16=bf16)
        if not sink.valid_rows or sink.valid_rows[-1]["step"] != trainer.global_step:
            sink.valid_rows.append({"step": trainer.global_step, "valid_ppl": last_m["ppl"],
                                    "valid_ppl_fwd": last_m["ppl_fwd"], "valid_ppl_bwd": last_m["ppl_bwd"]})
        final = {split: split_perplexity(model, data[split], split, batch_tokens=t.batch_tokens,
                                         max_tokens=t.eval_max_tokens, device=device, bf16=bf16)
                 for split in ("valid", "test")}

        # ------------------------------------------------ outputs
        tokens_per_s = [r["tokens_per_s"] for r in sink.train_rows if r.get("tokens_per_s")]
        metrics = {
            "preset": p.preset,
            "parameters": model.num_parameters(),
            "steps": trainer.global_step,
            "epochs": round(trainer.global_step / steps_per_epoch, 3),
            "stopped_by": _stopped_by(trainer, t, preset.train),
            "train_minutes": round(fit_s / 60, 2),
            "tokens_per_s": round(sum(tokens_per_s) / len(tokens_per_s), 1) if tokens_per_s else None,
            "tokens_trained": log_cb.tokens_trained,  # real positions, all processes
            "train_split_tokens": int(sum(data["train"].lengths + 2)),
            "selected": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in selected.items()},
            "valid": final["valid"],
            "test": final["test"],
        }
        model.cpu().save(out_dir, vocab_dir=vocab_dir, meta={
            "preset": p.preset, "fingerprint": fp, "steps": trainer.global_step, "selected": metrics["selected"],
            "valid_ppl": final["valid"]["ppl"], "test_ppl": final["test"]["ppl"], "mlflow_run_id": run_id})
        plots_dir = root / p.plots_dir
        atomic_write_text(plots_dir / "loss.csv", _csv(sink.train_rows, ["step", "train_loss", "lr", "tokens_per_s"]))
        atomic_write_text(plots_dir / "perplexity.csv",
                          _csv(sink.valid_rows, ["step", "valid_ppl", "valid_ppl_fwd", "valid_ppl_bwd"]))
        atomic_write_json(root / p.metrics, metrics)
        if run_id is not None:
            flat = {f"final/{s}_{k}": v for s in ("valid", "test") for k, v in final[s].items()
                    if isinstance(v, float) and math.isfinite(v)}
            log_results(flat, step=trainer.global_step,
                        tags={"elmo.fingerprint": fp, "elmo.preset": p.preset,
                              "elmo.selected": f"{selected['from']}@{selected['step']}"},
                        files=[plots_dir / "loss.csv", plots_dir / "perplexity.csv", root / p.metrics,
                               out_dir / "config.json"])

    return {"stage": "pretrain", "out_dir": str(out_dir), "metrics_file": str(root / p.metrics),
            "plots_dir": str(root / p.plots_dir), "checkpoints": ckpt_msg, "mlflow_run_id": run_id,
            "seconds": round(time.time() - started, 1), **metrics}
