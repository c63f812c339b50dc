"""Params of the fetch_task and finetune stages (see elmo/stages/fetch_task.py, finetune.py, elmo/task/).

``finetune.task`` says where the labeled data comes from and how to read it: another labeled
Korean dataset in JSON (an array of objects), JSON lines or CSV needs only these keys changed.
``finetune.model`` is the task model that is saved to ``models/ynat``; ``finetune.compare`` lists
the baselines and ablations trained in the same run (a table in ``metrics/`` and the README).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from elmo.params.base import Section
from elmo.params.retry import RetryParams

KLUE_YNAT = "https://raw.githubusercontent.com/KLUE-benchmark/KLUE/main/klue_benchmark/ynat-v1.1/"

# What `finetune.compare` may name: the TF-IDF + logistic-regression baseline and the task-model
# variants (each the `model` section with a few keys changed; see elmo/task/variants.py).
COMPARISONS = ("tfidf_lr", "no_elmo", "elmo_no_gamma", "elmo", "elmo_in_out")


class TaskDataParams(RetryParams):  # + timeout_s, retries, backoff_base_s, backoff_max_s, retry_after_max_s
    name: str = "ynat"
    # http(s) base URL or local directory holding train_file and dev_file (the KLUE layout).
    # Offline mirror: `make pipeline MIRROR=../shared/data` points it at 127.0.0.1.
    source: str = KLUE_YNAT
    train_file: str = "ynat-v1.1_train.json"
    dev_file: str = "ynat-v1.1_dev.json"
    format: Literal["auto", "json", "jsonl", "csv"] = "auto"  # auto: by file suffix
    text_field: str = "title"
    label_field: str = "label"
    id_field: str | None = "guid"  # optional; used to name records in messages
    # A record that is not an object/row with a non-empty string text and a label: stop with an
    # error naming file, line and field ("error"), or count it and go on ("skip").
    invalid_records: Literal["error", "skip"] = "error"
    # An empty (or whitespace-only) text: count and skip it, or stop.
    empty_text: Literal["error", "skip"] = "skip"
    # A dev label that never occurs in train cannot be predicted: stop, or count and skip those records.
    unseen_dev_labels: Literal["error", "skip"] = "error"
    data_dir: str = "data/task/ynat"  # fetch_task writes the two files and manifest.json here


class TaskModelParams(Section):
    use_elmo: bool = True
    elmo_gamma: bool = True  # trainable scale γ of each mix (false: γ fixed at 1)
    elmo_layer_norm: bool = False  # layer-normalise each biLM layer before mixing
    elmo_output_mix: bool = False  # a second mix, concatenated to the task RNN's output
    elmo_dropout: float = Field(0.5, ge=0, lt=1)
    word_dim: int = Field(100, ge=0)  # trainable word embedding (0: none)
    word_min_count: int = Field(2, ge=1)  # task vocabulary: train tokens seen at least this often
    rnn: Literal["lstm", "gru"] = "lstm"
    hidden: int = Field(128, ge=1)  # per direction
    rnn_layers: int = Field(1, ge=1, le=4)
    pooling: Literal["max", "mean", "max_mean"] = "max_mean"
    dropout: float = Field(0.3, ge=0, lt=1)

    @model_validator(mode="after")
    def _has_input(self):
        if not self.use_elmo and self.word_dim == 0:
            raise ValueError("the task model needs an input: use_elmo or word_dim > 0")
        if self.elmo_output_mix and not self.use_elmo:
            raise ValueError("elmo_output_mix needs use_elmo")
        return self


class TrainParams(Section):
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_epochs: int = Field(20, ge=1)
    patience: int = Field(3, ge=1)  # epochs without a better dev macro-F1 before stopping
    # The learning rate is multiplied by this after every epoch without a better dev macro-F1
    # (reduce on plateau; 1 = constant): the epochs before early stopping take smaller steps.
    lr_decay: float = Field(0.5, gt=0, le=1)
    grad_clip: float = Field(5.0, gt=0)
    # Wall-clock budget per trained model: no new epoch starts when the last one would end past it
    # (0 = none). Keeps the whole run (main model + comparisons) within a known time on slow machines.
    max_minutes: float = Field(0.0, ge=0)
    threads: int = Field(0, ge=0)  # torch threads; 0 = every core this process may use


class TfidfParams(Section):
    analyzer: Literal["char", "char_wb", "word"] = "char_wb"
    ngram_min: int = Field(1, ge=1)
    ngram_max: int = Field(3, ge=1)
    min_df: int = Field(2, ge=1)
    max_features: int | None = Field(None, ge=1)
    sublinear_tf: bool = True
    C: float = Field(3.0, gt=0)  # inverse L2 strength of the logistic regression (solver saga)
    max_iter: int = Field(200, ge=1)
    tol: float = Field(1e-3, gt=0)


class FinetuneParams(Section):
    task: TaskDataParams = TaskDataParams()
    bilm_dir: str = "models/bilm"  # what pretrain writes
    out_dir: str = "models/ynat"
    metrics: str = "metrics/finetune.json"
    comparison: str = "metrics/finetune_comparison.json"
    comparison_table: str = "metrics/finetune_comparison.md"
    plots_dir: str = "plots/finetune"
    # frozen biLM layer outputs, computed once per (biLM, tokens) and reused (not a DVC output)
    cache_dir: str = "data/cache/elmo"
    cache_dtype: Literal["float16", "float32"] = "float16"
    embed_batch_tokens: int = Field(4096, ge=16)  # tokens per biLM batch when computing layers
    max_tokens: int = Field(64, ge=1)  # a longer headline keeps its first max_tokens tokens (counted)
    model: TaskModelParams = TaskModelParams()
    train: TrainParams = TrainParams()
    tfidf: TfidfParams = TfidfParams()
    compare: list[Literal["tfidf_lr", "no_elmo", "elmo_no_gamma", "elmo", "elmo_in_out"]] = Field(
        default_factory=lambda: list(COMPARISONS))

    @model_validator(mode="after")
    def _ngrams(self):
        if self.tfidf.ngram_max < self.tfidf.ngram_min:
            raise ValueError("tfidf.ngram_max must be >= tfidf.ngram_min")
        return self
