"""finetune: a frozen-biLM ELMo classifier on the task data, with baselines and ablations.

    records (fetch_task) -> tokens (the pretraining Tokenizer) -> biLM layers, cached once
      -> main model (finetune.model, biLM finetune.bilm.mode): epochs selected on a held-out slice of
         train, x TF-IDF (elmo/task/experiment.py)
      -> comparisons (finetune.compare): TF-IDF + LR and task-model variants, same data, same run
    writes (elmo/task/outputs.py) models/<task>/ (Classifier), metrics/finetune.json,
    metrics/finetune_comparison.{json,md}, plots/finetune/; all also in the MLflow run. Training ends
    by epochs or early stopping; an opt-in clock (max_minutes) that ended any of it is warned about
    once and recorded (ended_by: clock, elmo/budget.py).
    Messages go to stderr (the elmo.finetune logger); stdout of `elmo finetune` is the JSON report.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on 2 cores shared with other work, spinning threads
# made the biLM and the task model 3-4x slower (benchmarks/README.md). OpenMP reads it when torch's
# library loads, so it is set before the imports below (which import torch), as in `elmo finetune`;
# an explicit setting is kept. (pyproject.toml lets this module's imports follow it: E402.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time
from pathlib import Path
from typing import Any

import torch

from elmo.budget import warn_clock
from elmo.log import get_logger
from elmo.stages import stage_report
from elmo.task import experiment as ex
from elmo.task.adapt import AdaptOptions
from elmo.task.experiment import TaskInputs
from elmo.task.inputs import load_task_data, pretraining_pipeline, tokenize_records, workspace_relative
from elmo.task.outputs import FinetuneRun, OutputOptions, report, write_outputs
from elmo.task.variants import VARIANTS
from elmo.text.pipeline import TextPipeline
from elmo.tracking import RunTracker, start_run, tag_trained_model

log = get_logger("finetune")


def experiment(params, root: Path, inputs, bilm_dir: Path | None, tracker) -> tuple[Any, dict[str, Any]]:
    """The steps of elmo/task/experiment.py on options made from ``params.finetune`` once: data ->
    biLMs -> layer cache -> train (each variant) -> ensemble -> the table. (what the outputs need,
    {main, main_dev, ensemble, comparison})"""
    f, seed = params.finetune, params.seed
    data = ex.TaskSplits.build(inputs, ex.SplitOptions(f.heldout_fraction, f.heldout_salt, f.model.word_min_count,
                                                       f.task.train_file), log.info)
    a = f.adapt
    adapt = AdaptOptions(max_steps=a.max_steps, max_minutes=a.max_minutes, batch_tokens=a.batch_tokens, lr=a.lr,
                         cut_frac=a.cut_frac, ratio=a.ratio, grad_clip=a.grad_clip,
                         heldout_sentences=a.heldout_sentences, extend_chars_min_count=a.extend_chars_min_count,
                         seed=seed)
    bilms = ex.BiLMs(bilm_dir, random_dir=root / f.cache_dir / "random_bilm", seed=seed, adapt_dir=root / a.out_dir,
                     adapt=adapt, adapt_texts=data.train_tok + (data.tokens["dev"] if a.use_dev_texts else []),
                     log=log.info)
    cache = ex.LayerCache(inputs.pipeline, data.tokens, root / f.cache_dir, f.cache_dtype, f.embed_batch_tokens,
                          log.info)
    trainer = ex.TaskTrainer(data, bilms, cache, ex.TrainOptions(f.train, f.unfreeze, seed), tracker=tracker,
                             log=log.info)
    table = ex.ComparisonOptions(f.model, f.bilm.mode, f.ensemble.with_tfidf, f.ensemble.weights, f.compare,
                                 f.out_dir)
    result = ex.comparison(table, trainer, ex.TfidfBaseline(data, f.tfidf, seed, log.info))
    warn_clock(log, "finetune", trainer.ended_by)
    done = FinetuneRun(data, inputs.pipeline, cache.layer_dtype(result["main"]), cache.seconds, bilms.adapted,
                       trainer.ended_by, tracker)
    return done, result


def output_options(f, root: Path):
    """What finetune writes where (``f``: params.finetune)."""
    return OutputOptions(task=f.task.name, bilm_mode=f.bilm.mode, out_name=f.out_dir, max_tokens=f.max_tokens,
                         out_dir=root / f.out_dir, metrics=root / f.metrics, comparison=root / f.comparison,
                         comparison_table=root / f.comparison_table, plots_dir=root / f.plots_dir)


def run(params, root: Path) -> dict:
    f = params.finetune
    t0 = time.perf_counter()
    threads = f.train.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    needs_elmo = f.model.use_elmo or any(c in VARIANTS and VARIANTS[c][2] is not None for c in f.compare)
    bilm_dir = root / f.bilm_dir
    if needs_elmo and not (bilm_dir / "config.json").is_file():
        raise FileNotFoundError(f"{bilm_dir}: no saved biLM (run `elmo pretrain` first, or set finetune.bilm_dir)")
    pipeline = pretraining_pipeline(bilm_dir) if (bilm_dir / "config.json").is_file() \
        else TextPipeline.from_params(params.clean, params.tokenize)
    tokenizer = pipeline.tokenizer
    data = load_task_data(f.task, root / f.task.data_dir, pipeline)
    labels = data["labels"]
    reps = data["reports"]
    train_recs, train_tok, trunc_tr = tokenize_records(tokenizer, data["train"], f.max_tokens, reps["train"],
                                                       f.task.empty_text, "train")
    dev_recs, dev_tok, trunc_dev = tokenize_records(tokenizer, data["dev"], f.max_tokens, reps["dev"],
                                                    f.task.empty_text, "dev")
    log.info(f"finetune: {len(train_recs)} train / {len(dev_recs)} dev texts, {len(labels)} labels; "
        f"skipped train {dict(reps['train'].skipped)} dev {dict(reps['dev'].skipped)}")

    with start_run(params.mlflow, root, stage="finetune", run_name=f"finetune-{f.task.name}",
                   params={"finetune": f.model_dump(), "seed": params.seed, "text_pipeline": pipeline.config()}) as run:
        inputs = TaskInputs(labels, train_recs, train_tok, dev_recs, dev_tok, pipeline)
        tracker = RunTracker(run)
        done, result = experiment(params, root, inputs, bilm_dir if needs_elmo else None, tracker)
        result["data"] = {
            "train": {**workspace_relative(reps["train"].as_dict(), root), "truncated": trunc_tr},
            "dev": {**workspace_relative(reps["dev"].as_dict(), root), "truncated": trunc_dev},
            "labels": labels,
        }
        result["seconds_total"] = time.perf_counter() - t0
        opts = output_options(f, root)
        write_outputs(done, result, opts)
        tag_trained_model(opts.out_dir)  # register logs the model into this run (its source run)
    return stage_report("finetune", params, report(done, result, opts))
