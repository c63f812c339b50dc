"""Stage pretrain: train the ELMo biLM on the training arrays of the vocab stage.

Reads ``pretrain.vocab_dir`` (the vocabulary) and ``pretrain.arrays_dir`` (memory-mapped token
ids per split); trains the ``pretrain.preset`` model with Lightning (``pretrain.trainer``: CPU or
GPUs, one or several processes or nodes) and writes, each atomically:

* ``pretrain.out_dir`` — the biLM: config.json, weights.safetensors, vocab/ (elmo.model.files),
  with the weights of the better of the best-by-validation checkpoint and the last step,
* ``pretrain.metrics`` — valid and test perplexity per direction and averaged (full softmax),
  steps, how the run ended (``ended_by``: steps | epochs | clock), tokens, time, throughput, the
  selected checkpoint,
* ``pretrain.plots_dir`` — ``loss.csv`` (step, train_loss, lr, tokens_per_s) and
  ``perplexity.csv`` (step, valid_ppl, valid_ppl_fwd, valid_ppl_bwd) for ``dvc plots``,

and one MLflow run (params, per-step loss, lr, tokens/s, gradient norm per layer, validation
perplexity, final metrics, the drift report, the plot tables). Checkpoints go to
``pretrain.checkpoint_dir``; an interrupted run of the same config, data and code resumes there
(elmo.train.checkpoints).

``pretrain.init`` (elmo/train/init.py): ``scratch`` starts from random weights; ``previous``
continues from the biLM already in ``out_dir`` (DVC keeps it: ``persist``), with its vocabulary,
for ``pretrain.init_train``'s share of the preset's steps; scratch when there is none (logged, and
``init`` in the metrics says which was used and from what). Whenever a previous biLM is there, the
metrics' ``drift`` holds its perplexity and OOV rate on the valid sentences of the months it has
never seen, and the new biLM's on the same sentences (elmo/train/drift.py).
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo.contracts import SPLITS
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.log import get_logger
from elmo.model import BiLMConfig
from elmo.params.base import runtime_only_keys
from elmo.params.pretrain import ModelParams, TrainerParams
from elmo.plots import curves_png, write_csv
from elmo.stages import stage_report

log = get_logger("pretrain")


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


def ended_by(global_step: int, train, asked) -> str:
    """How the fit ended (elmo/budget.py): ``steps`` (max_steps), ``epochs`` (max_epochs, folded into
    ``train.max_steps`` by :func:`fit_budget`; ``asked`` is the preset's train params) or ``clock``
    (max_minutes: Lightning's Timer stopped it before the count; the caller checked interruptions)."""
    from elmo.budget import CLOCK, EPOCHS, STEPS

    if global_step >= train.max_steps:
        return EPOCHS if train.max_steps < asked.max_steps else STEPS
    if train.max_minutes:
        return CLOCK
    raise StageError(f"training ended at step {global_step} of {train.max_steps} with no budget reached")


@dataclass
class Inputs:
    """What the vocab stage wrote, loaded: the vocabulary and one dataset per split."""

    vocab: Any  # elmo.vocab.Vocabulary
    data: dict[str, Any]  # split -> elmo.data.loader.SentenceDataset

    @property
    def arrays_meta(self) -> dict:
        return self.data["train"].arrays.meta


def load_inputs(vocab_dir: Path, arrays_dir: Path) -> Inputs:
    from elmo.data.loader import SentenceDataset
    from elmo.vocab import Vocabulary

    vocab = Vocabulary.load(vocab_dir)
    data = {s: SentenceDataset(arrays_dir, s, vocab) for s in SPLITS}
    for s in SPLITS:
        if len(data[s]) == 0:
            raise StageError(f"{arrays_dir}: the {s} split has no sentences (clean.valid_fraction/test_fraction?)")
    return Inputs(vocab, data)


def run_fingerprint(config: BiLMConfig, train, seed: int, settings, trainer: TrainerParams, inputs: Inputs,
                    init: dict | None = None) -> str:
    """What a checkpoint must match to be resumed: model, training, seed, processes, trainer, data, code,
    and for an ``init: previous`` run the weights it started from."""
    from elmo.train.checkpoints import code_hash, fingerprint

    return fingerprint({"config": config.to_dict(), "train": train.model_dump(), "seed": seed,
                        "world": settings.world, "accelerator": settings.accelerator,
                        "trainer": trainer_fingerprint(trainer), "vocab_sha256": inputs.vocab.sha256,
                        "arrays": inputs.arrays_meta, "code": code_hash(), **({"init": init} if init else {})})


def read_months(path: Path):
    """Each petition's month (clean's table), or None when the table is not there (a workspace
    without clean's output: the biLM then records no months and there is no drift report)."""
    from elmo.train.drift import petition_months

    if not path.is_file():
        log.warning(f"pretrain.petitions: {path} not found: the biLM records no months, no drift report")
        return None
    return petition_months(path)


def choose_init(p, root: Path, inputs: Inputs, preset):
    """(the previous biLM or None, why (not), the ``init`` report). The previous biLM is loaded whenever
    there is one that fits (``init: scratch`` too: the drift report measures it); it is trained on only
    with ``init: previous``."""
    from elmo.train.init import PREVIOUS, SCRATCH, load_previous

    prev, why = load_previous(root / p.out_dir, inputs.vocab, root / p.arrays_dir, inputs.data["train"],
                              lambda vocab: model_config(preset.model, vocab), name=str(p.out_dir))
    used = PREVIOUS if p.init == PREVIOUS and prev is not None else SCRATCH
    init = {"asked": p.init, "used": used}
    if used == PREVIOUS:
        init.update({"from": p.out_dir, "from_weights_sha256": prev.weights_sha256,
                     "from_steps": prev.meta.get("steps"), "from_months": prev.months,
                     "chars_added": len(prev.chars_added), "train": p.init_train.model_dump()})
        log.info(f"pretrain: init previous: {why}")
    elif p.init == PREVIOUS:
        init["note"] = f"{why}: trained from scratch"
        log.warning(f"pretrain: init previous asked, but {why}: training from scratch")
    else:
        log.info("pretrain: init scratch (random weights, the vocab stage's vocabulary)")
    return prev, why, init


def plan_drift(prev, no_prev: str, months, scratch_valid, train, petitions: Path):
    """(month -> valid batches of the months the previous biLM never saw, the drift report so far);
    no batches when there is no previous biLM (``no_prev`` says why), it records no months, or there
    is no month table."""
    from elmo.train.drift import drift_text, sentence_months

    if prev is None or months is None or prev.months is None:
        why = (no_prev if prev is None else "no month table (pretrain.petitions)" if months is None
               else "the previous biLM does not record its months")
        return {}, {"available": False, "reason": why}
    months_of = sentence_months(scratch_valid, months, petitions)
    text = drift_text(scratch_valid, months_of, prev.months, batch_tokens=train.batch_tokens,
                      max_tokens=train.eval_max_tokens)
    report = {"available": True, "seen_months": prev.months, "new_months": sorted(text),
              "text": "valid-split sentences of the new months"
                      + (f", at most {train.eval_max_tokens:,} tokens in all" if train.eval_max_tokens else ""),
              "before": None, "after": None}
    if not text:
        log.info("drift: the corpus has no month the previous biLM has not seen")
    return text, report


def seen_months(prev, months) -> list[str] | None:
    """The months the new biLM has seen: the corpus's, plus those of the biLM it continued."""
    if months is None:
        return None
    return sorted(set(months["month"].unique().to_list()) | set((prev.months or []) if prev else []))


def _drift_line(res: dict) -> str:
    o = res["overall"]
    per = ", ".join(f"{m} {r['ppl']:.1f}" for m, r in res["months"].items())
    return f"perplexity {o['ppl']:.2f} ({per}), OOV rate {o['oov_rate']:.2%} on {o['tokens']:,} tokens"


def fit_budget(train, steps_per_epoch: int):
    """``max_epochs`` folded into ``max_steps`` (the stream has no epochs; the schedule ends there too)."""
    if train.max_epochs is not None and train.max_epochs * steps_per_epoch < train.max_steps:
        return train.model_copy(update={"max_steps": train.max_epochs * steps_per_epoch})
    return train


def final_metrics(model, inputs: Inputs, train, settings, best, global_step: int, sink) -> dict:
    """The weights to keep (best-by-validation checkpoint or the last step) and their exact
    valid/test perplexities; the last step's validation is added to the plot rows if missing."""
    from elmo.train.checkpoints import select_weights
    from elmo.train.datamodule import valid_batches
    from elmo.train.evaluate import split_perplexity

    subset = valid_batches(inputs.data["valid"], train.batch_tokens, max_batches=train.val_batches)
    selected, last_m = select_weights(model, best, global_step, subset, device=settings.device, bf16=settings.bf16)
    if not sink.valid_rows or sink.valid_rows[-1]["step"] != global_step:
        sink.valid_rows.append({"step": global_step, "valid_ppl": last_m["ppl"],
                                "valid_ppl_fwd": last_m["ppl_fwd"], "valid_ppl_bwd": last_m["ppl_bwd"]})
    final = {split: split_perplexity(model, inputs.data[split], split, batch_tokens=train.batch_tokens,
                                     max_tokens=train.eval_max_tokens, device=settings.device, bf16=settings.bf16)
             for split in ("valid", "test")}
    return {"selected": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in selected.items()},
            "valid": final["valid"], "test": final["test"]}


def write_outputs(root: Path, p, model, inputs: Inputs, metrics: dict, sink, fp: str, run_id: str | None,
                  vocab_dir: Path) -> None:
    """The biLM directory (with the vocabulary in ``vocab_dir``), the DVC plots tables and the metrics
    file (each atomic), and the MLflow results."""
    from elmo.tracking import log_results, tag_trained_model
    from elmo.train.drift import mlflow_metrics

    out_dir = root / p.out_dir
    init = metrics["init"]
    model.cpu().save(out_dir, vocab_dir=vocab_dir, meta={
        "preset": p.preset, "fingerprint": fp, "steps": metrics["steps"], "selected": metrics["selected"],
        "valid_ppl": metrics["valid"]["ppl"], "test_ppl": metrics["test"]["ppl"], "months": metrics["months"],
        "init": {k: init[k] for k in ("used", "from_weights_sha256", "from_steps") if k in init},
    })  # no run id: what it is only
    plots_dir = root / p.plots_dir
    write_csv(plots_dir / "loss.csv", sink.train_rows, ["step", "train_loss", "lr", "tokens_per_s"])
    write_csv(plots_dir / "perplexity.csv", sink.valid_rows, ["step", "valid_ppl", "valid_ppl_fwd", "valid_ppl_bwd"])
    # the same curves as images: `dvc plots show` renders them without a browser's chart library
    curves_png(plots_dir / "loss.png", {"train loss": sink.train_rows}, "step", "train_loss", "biLM training loss")
    curves_png(plots_dir / "perplexity.png", {d: [{"step": r["step"], "valid_ppl": r.get(k)} for r in sink.valid_rows]
                                              for d, k in (("both", "valid_ppl"), ("forward", "valid_ppl_fwd"),
                                                           ("backward", "valid_ppl_bwd"))},
               "step", "valid_ppl", "biLM validation perplexity")
    atomic_write_json(root / p.metrics, metrics)
    if run_id is not None:
        flat = {f"final/{s}_{k}": v for s in ("valid", "test") for k, v in metrics[s].items()
                if isinstance(v, float) and math.isfinite(v)}
        flat.update(mlflow_metrics(metrics["drift"]))
        selected = metrics["selected"]
        log_results(flat, step=metrics["steps"],
                    tags={"elmo.fingerprint": fp, "elmo.preset": p.preset, "ended_by": metrics["ended_by"],
                          "elmo.selected": f"{selected['from']}@{selected['step']}", "elmo.init": init["used"]},
                    files=[plots_dir / "loss.csv", plots_dir / "perplexity.csv", plots_dir / "loss.png",
                           plots_dir / "perplexity.png", root / p.metrics,
                           out_dir / "config.json"])
        tag_trained_model(out_dir)  # register logs the model into this run (its source run)


def run(params, root: Path) -> dict:
    """load inputs -> resolve the trainer -> fingerprint and checkpoints -> build -> fit (tracked)
    -> select and evaluate the weights -> write outputs -> report."""
    import lightning as L

    from elmo.budget import warn_clock
    from elmo.tracking import client as tracking_client, start_run
    from elmo.train.callbacks import MetricSink, StepPause, StepProgress, TrainingLog
    from elmo.train.checkpoints import FinalCheckpoint, checkpoint_callbacks, is_primary_process, prepare
    from elmo.train.datamodule import PretrainData
    from elmo.train.drift import measure
    from elmo.train.init import PREVIOUS, continued_train, retype
    from elmo.train.module import BiLMTask
    from elmo.train.trainer import TrainerSettings, build_trainer

    p = params.pretrain
    root = Path(root)
    preset = p.selected
    t = preset.train
    primary = is_primary_process()
    ckpt_dir = root / p.checkpoint_dir
    started = time.time()

    inputs = load_inputs(root / p.vocab_dir, root / p.arrays_dir)
    months = read_months(root / p.petitions)
    prev, why, init = choose_init(p, root, inputs, preset)
    scratch_valid = inputs.data["valid"]
    if init["used"] == PREVIOUS:
        inputs = Inputs(prev.vocab, retype(inputs.data, prev.vocab, root / p.arrays_dir))
        t = continued_train(t, p.init_train)
    asked = t
    config = model_config(preset.model, inputs.vocab)
    settings = TrainerSettings.resolve(p.trainer)
    settings.apply_threads()
    fp = run_fingerprint(config, t, params.seed, settings, p.trainer, inputs,
                         init={"from_weights_sha256": prev.weights_sha256} if init["used"] == PREVIOUS else None)
    resume_from, ckpt_msg = prepare(ckpt_dir, fp, resume=p.resume, primary=primary)
    if primary:
        log.info(f"pretrain: preset {p.preset}, {settings.accelerator}, {settings.world} process(es) x "
                 f"{settings.threads} thread(s); checkpoints: {ckpt_msg}")

    dm = PretrainData(inputs.data["train"], inputs.data["valid"], batch_tokens=t.batch_tokens, seed=params.seed,
                      val_batches=t.val_batches)
    steps_per_epoch = dm.steps_per_epoch(settings.world)
    if steps_per_epoch < 1:
        raise StageError(f"{root / p.arrays_dir}: the train split makes fewer batches than processes "
                         f"({settings.world})")
    t = fit_budget(t, steps_per_epoch)

    drift_text, drift = plan_drift(prev, why, months, scratch_valid, t, root / p.petitions)
    if primary and drift_text:
        prev_valid = (inputs.data if init["used"] == PREVIOUS
                      else retype({"valid": scratch_valid}, prev.vocab, root / p.arrays_dir))["valid"]
        drift["before"] = measure(prev.bilm.to(settings.device), prev_valid, drift_text, device=settings.device,
                                  bf16=settings.bf16)
        prev.bilm.cpu()
        log.info(f"drift before training: {_drift_line(drift['before'])}")

    L.seed_everything(params.seed, workers=False, verbose=False)
    task = BiLMTask(config, t, params.seed)
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
            logged = {"preset": p.preset, "model": config.to_dict(), "train": t.model_dump(),
                      "trainer": p.trainer.model_dump(), "seed": params.seed, "fingerprint": fp, "init": init,
                      "vocab_sha256": inputs.vocab.sha256, "parameters": task.model.num_parameters(),
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

        how = ended_by(trainer.global_step, t, asked)
        warn_clock(log, "pretrain", {"the biLM": how})
        model = task.model.to(settings.device)
        final = final_metrics(model, inputs, t, settings, best, trainer.global_step, sink)
        if drift_text:
            drift["after"] = measure(model, inputs.data["valid"], drift_text, device=settings.device,
                                     bf16=settings.bf16)
            log.info(f"drift after training: {_drift_line(drift['after'])}")
        tokens_per_s = [r["tokens_per_s"] for r in sink.train_rows if r.get("tokens_per_s")]
        metrics = {
            "preset": p.preset,
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
            vocab_dir = inputs.vocab.save(Path(tmp) / "vocab") if init["used"] == PREVIOUS else root / p.vocab_dir
            write_outputs(root, p, model, inputs, metrics, sink, fp, run_id, vocab_dir)

    return stage_report("pretrain", params, {"checkpoints": ckpt_msg, "mlflow_run_id": run_id,
                                             "seconds": round(time.time() - started, 1), **metrics})
