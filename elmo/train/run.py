"""One pretraining run, in named steps, on plain options (the pretrain stage converts params once):

load_inputs -> choose_init -> model_config -> ``TrainerSettings.resolve`` -> run_fingerprint and
checkpoints -> drift before -> fit (tracked) -> ended_by -> final_metrics (selection) -> drift after
-> write_outputs. Messages go to the ``elmo.pretrain`` logger.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from elmo.budget import CLOCK, EPOCHS, STEPS, warn_clock
from elmo.errors import StageError
from elmo.log import get_logger
from elmo.params.mlflow import MlflowParams
from elmo.params.pretrain import InitTrainParams, ModelParams, TrainerParams, TrainParams
from elmo.tracking import client as tracking_client, start_run
from elmo.train.callbacks import MetricSink, StepPause, StepProgress, TrainingLog
from elmo.train.checkpoints import FinalCheckpoint, checkpoint_callbacks, is_primary_process, prepare
from elmo.train.datamodule import PretrainData
from elmo.train.drift import drift_line, measure, plan_drift, seen_months
from elmo.train.fingerprint import run_fingerprint
from elmo.train.init import PREVIOUS, SCRATCH, choose_init, continued_train, retype
from elmo.train.inputs import Inputs, load_inputs, model_config, read_months
from elmo.train.module import BiLMTask
from elmo.train.outputs import PretrainPaths, final_metrics, write_outputs
from elmo.train.trainer import TrainerSettings, build_trainer

log = get_logger("pretrain")


@dataclass(frozen=True)
class PretrainOptions:
    """What is trained and how: the preset (its name, model and train params), the trainer, the seed,
    where it starts (``init``, ``init_train``) and whether an interrupted run resumes."""

    preset: str
    model: ModelParams
    train: TrainParams
    trainer: TrainerParams
    seed: int
    init: str = SCRATCH
    init_train: InitTrainParams = InitTrainParams()
    resume: bool = True


@dataclass
class PretrainResult:
    metrics: dict  # what pretrain's metrics file holds
    run_id: str | None  # the MLflow run (None in a DDP worker's view: rank 0 tracks)
    checkpoints: str  # what was done with the checkpoint directory (resumed, started, discarded)


def ended_by(global_step: int, train, asked) -> str:
    """How the fit ended (elmo/budget.py): ``steps`` (max_steps), ``epochs`` (max_epochs, folded into
    ``train.max_steps`` by :func:`fit_budget`; ``asked`` is the preset's train params) or ``clock``
    (max_minutes: Lightning's Timer stopped it before the count; the caller checked interruptions)."""
    if global_step >= train.max_steps:
        return EPOCHS if train.max_steps < asked.max_steps else STEPS
    if train.max_minutes:
        return CLOCK
    raise StageError(f"training ended at step {global_step} of {train.max_steps} with no budget reached")


def fit_budget(train, steps_per_epoch: int):
    """``max_epochs`` folded into ``max_steps`` (the stream has no epochs; the schedule ends there too)."""
    if train.max_epochs is not None and train.max_epochs * steps_per_epoch < train.max_steps:
        return train.model_copy(update={"max_steps": train.max_epochs * steps_per_epoch})
    return train


def pretrain(opts: PretrainOptions, paths: PretrainPaths, mlflow_params: MlflowParams, root: Path) -> PretrainResult:
    """load inputs -> resolve the trainer -> fingerprint and checkpoints -> build -> fit (tracked in an
    MLflow run of ``mlflow_params``, ``root`` the workspace) -> select and evaluate the weights -> write
    outputs."""
    t = opts.train
    primary = is_primary_process()
    ckpt_dir = paths.checkpoint_dir

    inputs = load_inputs(paths.vocab_dir, paths.arrays_dir)
    months = read_months(paths.petitions)
    prev, why, init = choose_init(opts.init, paths.out_dir, paths.out_name, paths.arrays_dir, inputs, opts.model,
                                  opts.init_train)
    scratch_valid = inputs.data["valid"]
    if init["used"] == PREVIOUS:
        inputs = Inputs(prev.vocab, retype(inputs.data, prev.vocab, paths.arrays_dir))
        t = continued_train(t, opts.init_train)
    asked = t
    config = model_config(opts.model, inputs.vocab)
    settings = TrainerSettings.resolve(opts.trainer)
    settings.apply_threads()
    fp = run_fingerprint(config, t, opts.seed, settings, opts.trainer, inputs,
                         init={"from_weights_sha256": prev.weights_sha256} if init["used"] == PREVIOUS else None)
    resume_from, ckpt_msg = prepare(ckpt_dir, fp, resume=opts.resume, primary=primary)
    if primary:
        log.info(f"pretrain: preset {opts.preset}, {settings.accelerator}, {settings.world} process(es) x "
                 f"{settings.threads} thread(s); checkpoints: {ckpt_msg}")

    dm = PretrainData(inputs.data["train"], inputs.data["valid"], batch_tokens=t.batch_tokens, seed=opts.seed,
                      val_batches=t.val_batches)
    steps_per_epoch = dm.steps_per_epoch(settings.world)
    if steps_per_epoch < 1:
        raise StageError(f"{paths.arrays_dir}: the train split makes fewer batches than processes "
                         f"({settings.world})")
    t = fit_budget(t, steps_per_epoch)

    drift_text, drift = plan_drift(prev, why, months, scratch_valid, t.batch_tokens, t.eval_max_tokens,
                                   paths.petitions)
    if primary and drift_text:
        prev_valid = (inputs.data if init["used"] == PREVIOUS
                      else retype({"valid": scratch_valid}, prev.vocab, paths.arrays_dir))["valid"]
        drift["before"] = measure(prev.bilm.to(settings.device), prev_valid, drift_text, device=settings.device,
                                  bf16=settings.bf16)
        prev.bilm.cpu()
        log.info(f"drift before training: {drift_line(drift['before'])}")

    L.seed_everything(opts.seed, workers=False, verbose=False)
    task = BiLMTask(config, t, opts.seed)
    if init["used"] == PREVIOUS:
        task.model.load_state_dict(prev.bilm.state_dict())  # its weights; Lightning's resume (if any) wins
    sink = MetricSink()
    log_cb = TrainingLog(sink, t.log_every_steps, t.max_steps)
    periodic, best = checkpoint_callbacks(ckpt_dir, t.checkpoint_every_steps)
    trainer = build_trainer(settings, t, callbacks=[log_cb, StepProgress(t.max_steps, log_cb), periodic, best,
                                                   FinalCheckpoint(ckpt_dir), StepPause()], root_dir=str(ckpt_dir))

    with contextlib.ExitStack() as stack:
        run_id = None
        if primary:
            logged = {"preset": opts.preset, "model": config.to_dict(), "train": t.model_dump(),
                      "trainer": opts.trainer.model_dump(), "seed": opts.seed, "fingerprint": fp, "init": init,
                      "vocab_sha256": inputs.vocab.sha256, "parameters": task.model.num_parameters(),
                      "resumed_from": str(resume_from) if resume_from else None}
            mlrun = stack.enter_context(start_run(mlflow_params, root, stage="pretrain", params=logged))
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

        how = ended_by(trainer.global_step, t, asked)
        warn_clock(log, "pretrain", {"the biLM": how})
        model = task.model.to(settings.device)
        final = final_metrics(model, inputs, t, settings, best, trainer.global_step, sink)
        if drift_text:
            drift["after"] = measure(model, inputs.data["valid"], drift_text, device=settings.device,
                                     bf16=settings.bf16)
            log.info(f"drift after training: {drift_line(drift['after'])}")
        tokens_per_s = [r["tokens_per_s"] for r in sink.train_rows if r.get("tokens_per_s")]
        metrics = {
            "preset": opts.preset,
            "parameters": model.num_parameters(),
            "steps": trainer.global_step,
            "epochs": round(trainer.global_step / steps_per_epoch, 3),
            "ended_by": how,
            "train_minutes": round(fit_s / 60, 2),
            "tokens_per_s": round(sum(tokens_per_s) / len(tokens_per_s), 1) if tokens_per_s else None,
            "tokens_trained": log_cb.tokens_trained,  # real positions, all processes
            "train_split_tokens": int(sum(inputs.data["train"].lengths + 2)),
            "init": init,
            "months": seen_months(prev if init["used"] == PREVIOUS else None, months),
            "drift": drift,
            **final,
        }
        with tempfile.TemporaryDirectory() as tmp:  # a previous biLM's vocabulary (+ added characters)
            vocab_dir = inputs.vocab.save(Path(tmp) / "vocab") if init["used"] == PREVIOUS else paths.vocab_dir
            write_outputs(paths, opts.preset, model, metrics, sink, fp, run_id, vocab_dir)
    return PretrainResult(metrics, run_id, ckpt_msg)
