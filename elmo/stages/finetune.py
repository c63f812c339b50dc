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
import time
from pathlib import Path
from typing import Any

from elmo.errors import StageError
from elmo.log import get_logger
from elmo.stages import stage_report

# Idle OpenMP threads sleep instead of spinning: on 2 cores shared with other work, spinning threads
# made the biLM and the task model 3-4x slower (benchmarks/README.md). Takes effect when torch is
# first imported after this module, as in `elmo finetune`; an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


log = get_logger("finetune")


def load_task_data(t, data_dir: Path, pipeline) -> dict[str, Any]:
    """Train/dev records checked (see elmo/task/data.py), their texts normalised by the biLM's text
    pipeline, and the label set."""
    from elmo.task.data import check_labels, read_records

    kw = dict(text_field=t.text_field, label_field=t.label_field, id_field=t.id_field, fmt=t.format,
              invalid_records=t.invalid_records, empty_text=t.empty_text, delimiter=t.delimiter,
              pipeline=pipeline)
    train, train_rep = read_records(data_dir / t.train_file, **kw)
    dev, dev_rep = read_records(data_dir / t.dev_file, **kw)
    labels, dev, unseen = check_labels(train, dev, str(data_dir / t.dev_file), t.unseen_dev_labels)
    if unseen:
        dev_rep.skipped["unseen_label"] += unseen
        dev_rep.records = len(dev)
    if not dev:
        raise StageError(f"{data_dir / t.dev_file}: no dev records left to evaluate on")
    return {"train": train, "dev": dev, "labels": labels, "reports": {"train": train_rep, "dev": dev_rep}}


def tokenize_records(tokenizer, records, max_tokens: int, report, policy: str, desc: str):
    """Token lists of normalised records (cut at max_tokens, counted); a text with no tokens is skipped
    (counted) or an error. ``tokenizer``: the text pipeline's."""
    from tqdm.auto import tqdm

    kept, tokens, truncated = [], [], 0
    for r in tqdm(records, desc=f"tokenize {desc}", unit="text", mininterval=2.0):
        toks = tokenizer.tokenize(r.text)
        if not toks:
            msg = f"{report.file}: line {r.line}: field text has no tokens after analysis: {r.text!r}"
            if policy == "error":
                raise StageError(msg + " (set finetune.task.empty_text: skip to count and skip it)")
            report.skip("empty_text", msg)
            continue
        truncated += len(toks) > max_tokens
        kept.append(r)
        tokens.append(toks[:max_tokens])
    report.records = len(kept)
    return kept, tokens, truncated


def workspace_relative(read_report: dict, root: Path) -> dict:
    """A read report (elmo.task.data.ReadReport.as_dict) naming its file relative to the workspace, so
    that the metrics are the same wherever the workspace is (a clone elsewhere, another machine)."""
    prefix = f"{Path(root)}{os.sep}"
    return {**read_report, "file": read_report["file"].removeprefix(prefix),
            "skipped_examples": [e.removeprefix(prefix) for e in read_report["skipped_examples"]]}


def pretraining_pipeline(bilm_dir: Path):
    """The text pipeline the biLM's corpus was made with (stored in its vocabulary; an old vocabulary
    without one: the default normaliser with its tokenizer settings, and a warning)."""
    from elmo.model import vocab_dir
    from elmo.text.pipeline import TextPipeline
    from elmo.vocab import Vocabulary

    vdir = vocab_dir(bilm_dir)
    if vdir is None:
        raise FileNotFoundError(f"{bilm_dir}: the biLM was saved without its vocabulary (vocab/)")
    return TextPipeline.load(vdir, legacy_tokenizer=Vocabulary.load(vdir).tokenizer_config)


def run(params, root: Path) -> dict:
    import torch

    from elmo.budget import warn_clock
    from elmo.task.variants import VARIANTS
    from elmo.text.pipeline import TextPipeline
    from elmo.tracking import RunTracker, start_run, tag_trained_model

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
        from elmo.task.experiment import Experiment, TaskInputs
        from elmo.task.outputs import report, write_outputs

        inputs = TaskInputs(labels, train_recs, train_tok, dev_recs, dev_tok, pipeline)
        job = Experiment(params, root, inputs, bilm_dir if needs_elmo else None, tracker=RunTracker(run),
                         log=log.info)
        result = job.run_all()
        warn_clock(log, "finetune", job.ended_by)
        result["data"] = {
            "train": {**workspace_relative(reps["train"].as_dict(), root), "truncated": trunc_tr},
            "dev": {**workspace_relative(reps["dev"].as_dict(), root), "truncated": trunc_dev},
            "labels": labels,
        }
        result["seconds_total"] = time.perf_counter() - t0
        write_outputs(job, result)
        tag_trained_model(root / f.out_dir)  # register logs the model into this run (its source run)
    return stage_report("finetune", params, report(job, result))
