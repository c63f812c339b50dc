"""What finetune reads: the task's train/dev records (checked, normalised by the biLM's text pipeline),
their token lists, and that text pipeline itself. Plain arguments: ``t`` is ``finetune.task``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from elmo.errors import StageError
from elmo.model import vocab_dir
from elmo.task.data import check_labels, read_records
from elmo.text.pipeline import TextPipeline
from elmo.vocab import Vocabulary


def load_task_data(t, data_dir: Path, pipeline) -> dict[str, Any]:
    """Train/dev records checked (see elmo/task/data.py), their texts normalised by the biLM's text
    pipeline, and the label set."""
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
    vdir = vocab_dir(bilm_dir)
    if vdir is None:
        raise FileNotFoundError(f"{bilm_dir}: the biLM was saved without its vocabulary (vocab/)")
    return TextPipeline.load(vdir, legacy_tokenizer=Vocabulary.load(vdir).tokenizer_config)
