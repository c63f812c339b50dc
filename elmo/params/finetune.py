"""Params of the fetch_task and finetune stages (see elmo/stages/fetch_task.py, finetune.py, elmo/task/).

``finetune.tasks`` maps task names to where each labeled data set comes from and how to read it
(the keys of :class:`TaskDataParams`: another labeled Korean dataset in JSON, JSON lines, CSV or TSV
needs only these), plus optional per-task overrides of the shared finetune settings (``train``,
``model``, ``compare``, ...: merged key by key over the section's). dvc.yaml makes one
``fetch_task@<name>`` and ``finetune@<name>`` per task (``foreach``). A task's name names its outputs:
``data/task/<name>``, ``models/<name>``, ``metrics/finetune/<name>.json``, ``plots/finetune/<name>``, the
registered model ``elmo-<name>`` and the MLflow run ``finetune-<name>``, so tasks never overwrite each other.

One task is *selected* when the params are validated (``elmo finetune --task NAME``; the first one
by default): ``finetune.task`` is then its data keys with its ``name``, and the other fields are the
shared settings with its overrides merged in, so the stages read one task as they always have.
A params file with the former single ``finetune.task`` is read as a one-task ``tasks`` mapping.
``finetune.model`` is the task model that is saved to ``out_dir``; ``finetune.compare`` lists
the baselines and ablations trained in the same run (a table in ``metrics/`` and the README).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from elmo.dicts import deep_merge
from elmo.params.base import Section
from elmo.params.paths import WorkspacePath, check_file_name
from elmo.params.retry import RetryParams

KLUE_YNAT = "https://raw.githubusercontent.com/KLUE-benchmark/KLUE/main/klue_benchmark/ynat-v1.1/"

# What `finetune.compare` may name: the TF-IDF + logistic-regression baseline and the task-model
# variants (each the `model` section with a few keys changed; see elmo/task/variants.py).
COMPARISONS = ("tfidf_lr", "no_elmo", "random_bilm", "elmo_no_gamma", "elmo", "elmo_in_out", "adapted", "unfrozen",
               "adapted_unfrozen")
BILM_MODES = ("frozen", "adapted", "unfrozen", "adapted_unfrozen")
DEFAULT_COMPARE = ("tfidf_lr", "no_elmo", "random_bilm", "elmo", "adapted", "unfrozen")

TASK_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # goes into paths and registered model names


def task_data_dir(name: str) -> str:
    return f"data/task/{name}"


def task_model_dir(name: str) -> str:
    return f"models/{name}"


def adapted_bilm_dir(name: str) -> str:
    return f"models/bilm_{name}"


def task_metrics_file(name: str) -> str:
    return f"metrics/finetune/{name}.json"


# finetune's per-record dev predictions, in each task's plots_dir: what register's served = measured
# check scores the logged model against (elmo/registry/served.py)
PREDICTIONS_FILE = "dev_predictions.csv"


def task_paths(name: str) -> dict[str, str]:
    """The per-task outputs (what dvc.yaml declares for finetune@<name>), by finetune key."""
    return {"out_dir": task_model_dir(name), "metrics": task_metrics_file(name),
            "comparison": f"metrics/finetune/{name}_comparison.json",
            "comparison_table": f"metrics/finetune/{name}_comparison.md", "plots_dir": f"plots/finetune/{name}"}


def _task_name(data: Any) -> str:
    """finetune.task.name from raw input (a mapping or a validated section), defaulting like the field."""
    task = data.get("task") if isinstance(data, dict) else None
    name = task.get("name") if isinstance(task, dict) else getattr(task, "name", None)
    return name if isinstance(name, str) else TaskDataParams.model_fields["name"].default


class TaskDataParams(RetryParams):  # + timeout_s, retries, backoff_base_s, backoff_max_s, retry_after_max_s
    name: str = "ynat"  # lower-case letters, digits, '_', '.', '-': names the task's paths and model
    # http(s) base URL or local directory holding train_file and dev_file (the KLUE layout).
    # Offline mirror: `make pipeline MIRROR=../shared/data` points it at 127.0.0.1.
    source: str = KLUE_YNAT
    train_file: str = "ynat-v1.1_train.json"
    dev_file: str = "ynat-v1.1_dev.json"
    format: Literal["auto", "json", "jsonl", "csv", "tsv"] = "auto"  # auto: by suffix (.json .jsonl .csv .tsv)
    delimiter: str | None = None  # csv/tsv: the field separator (null: ',' for csv, tab for tsv)
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
    # fetch_task writes the two files and manifest.json here; null: data/task/<name> (what dvc.yaml declares)
    data_dir: WorkspacePath | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_data_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("data_dir") is None:
            name = data.get("name", cls.model_fields["name"].default)
            data = {**data, "data_dir": task_data_dir(name) if isinstance(name, str) else None}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TASK_NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r}: a task name is 1-64 lower-case letters, digits, '_', '.' or '-' "
                             "(it names data/task/<name>, models/<name> and the registered model)")
        return value

    @field_validator("train_file", "dev_file")
    @classmethod
    def _file_name(cls, value: str) -> str:
        return check_file_name(value)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in "\"\r\n"):
            raise ValueError(f"{value!r}: one character (e.g. ',' or '\\t'), not a quote or a line break")
        return value


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
    # Opt-in wall-clock budget per trained model: no new epoch starts when the last one would end past
    # it. null (default): none, training ends by epochs or early stopping. A clock makes the model
    # depend on the machine's speed (ended_by: clock in the metrics and the MLflow run).
    max_minutes: float | None = Field(None, gt=0)
    threads: int = Field(0, ge=0)  # torch threads; 0 = every core this process may use


class AdaptParams(Section):
    """LM fine-tuning of the biLM on the task's text (modes adapted, adapted_unfrozen; elmo/task/adapt.py)."""

    # the adapted biLM, reused while biLM, texts and these keys are unchanged; null: models/bilm_<task.name>
    out_dir: WorkspacePath | None = None
    use_dev_texts: bool = False  # also the dev set's texts (never its labels)
    max_steps: int = Field(400, ge=1)
    max_minutes: float | None = Field(None, gt=0)  # opt-in wall clock (null: ends by max_steps only)
    batch_tokens: int = Field(2048, ge=16)
    lr: float = Field(1e-3, gt=0)  # peak of the slanted triangular schedule
    cut_frac: float = Field(0.1, gt=0, lt=1)
    ratio: float = Field(32.0, ge=1)
    grad_clip: float = Field(5.0, gt=0)
    heldout_sentences: int = Field(500, ge=0)  # task-text perplexity before/after on texts not trained on
    # characters of the task's texts missing from the biLM's character vocabulary (Hanja such as 北 美 中
    # in headlines) seen this often become new character ids, learnt while adapting (0 = keep the vocabulary)
    extend_chars_min_count: int = Field(2, ge=0)


class UnfreezeParams(Section):
    """Finetuning the biLM inside the classifier (modes unfrozen, adapted_unfrozen; elmo/train/schedule.py)."""

    lr: float = Field(2e-3, gt=0)  # the task head's peak lr (slanted triangular schedule)
    bilm_lr_scale: float = Field(1.0, gt=0)  # the top biLM group's lr relative to the head's
    factor: float = Field(2.6, ge=1)  # discriminative: each lower biLM group gets lr / factor
    gradual: bool = True  # one more biLM group (from the top) unfreezes each epoch
    max_epochs: int = Field(4, ge=1)  # epoch 4 is the first with every biLM group unfrozen
    patience: int = Field(4, ge=1)
    max_minutes: float | None = Field(None, gt=0)  # opt-in wall clock per model (replaces train.max_minutes)
    cut_frac: float = Field(0.1, gt=0, lt=1)
    ratio: float = Field(32.0, ge=1)


class BiLMModeParams(Section):
    # frozen: cached layers of the pretrained biLM | adapted: of the biLM adapted on the task text |
    # unfrozen: the pretrained biLM trains inside the classifier | adapted_unfrozen: both
    mode: Literal["frozen", "adapted", "unfrozen", "adapted_unfrozen"] = "adapted"


class EnsembleParams(Section):
    """The main model as ELMo classifier x TF-IDF (elmo/task/ensemble.py); chosen on the held-out slice."""

    with_tfidf: bool = True  # false: the main model is the ELMo classifier alone
    weights: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                                 min_length=1)  # candidate weights of the ELMo half

    @model_validator(mode="after")
    def _in_range(self):
        if any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError("weights must lie in [0, 1]")
        return self


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


def _ynat_keys() -> dict[str, Any]:
    """The one default task's entry: every data key at its default (KLUE YNAT)."""
    return TaskDataParams().model_dump(exclude={"name", "data_dir"})


# What a task entry may hold besides its data keys: overrides of the shared settings. Not `task`/`tasks`,
# and not the output paths, which follow the task's name (dvc.yaml declares them by name).
NOT_PER_TASK = ("task", "tasks", "out_dir", "metrics", "comparison", "comparison_table", "plots_dir")


def select_task(data: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The raw finetune section with one task selected (the first by default): ``task`` = its data keys
    and name, its overrides merged over the shared settings; ``tasks`` kept. A former single
    ``task`` becomes ``tasks: {<its name>: <its other keys>}``. ValueError naming the key."""
    data = dict(data)
    if "task" in data:
        if "tasks" in data:
            raise ValueError("task: give the tasks in finetune.tasks only (finetune.task is the former "
                             "single-task form: move its keys to finetune.tasks.<name>)")
        legacy = data.pop("task")
        if not isinstance(legacy, dict):
            raise ValueError("task: expected a mapping (better: move it to finetune.tasks.<name>)")
        legacy = dict(legacy)
        data["tasks"] = {legacy.pop("name", TaskDataParams.model_fields["name"].default): legacy}
    tasks = data.setdefault("tasks", {"ynat": _ynat_keys()})
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError("tasks: a mapping of task names to their data keys (at least one task)")
    name = next(iter(tasks)) if name is None else name
    if name not in tasks:
        raise ValueError(f"tasks: no task {name!r} (tasks: {', '.join(map(str, tasks))})")
    entry = tasks[name] if tasks[name] is not None else {}
    if not isinstance(entry, dict):
        raise ValueError(f"tasks.{name}: expected a mapping of its data keys (source, train_file, ...)")
    own = {k: v for k, v in entry.items() if k in TaskDataParams.model_fields and k != "name"}
    overrides = {k: v for k, v in entry.items() if k not in own}
    for key in overrides:
        if key == "name":
            raise ValueError(f"tasks.{name}.name: the task's key is its name; leave name out")
        if key in NOT_PER_TASK or key not in FinetuneParams.model_fields:
            why = "follows the task's name" if key in NOT_PER_TASK else "not a task data key nor a finetune setting"
            raise ValueError(f"tasks.{name}.{key}: unknown key here ({why})")
    return {**deep_merge(data, overrides), "task": {**own, "name": name}}


class FinetuneParams(Section):
    # task name -> its data keys (TaskDataParams but name) and overrides of the settings below
    tasks: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"ynat": _ynat_keys()})
    task: TaskDataParams = TaskDataParams()  # the selected task (select_task); not written in params.yaml
    bilm_dir: str = "models/bilm"  # what pretrain writes
    # the selected task's outputs; null (the default): models/<name>, metrics/finetune/<name>.json,
    # metrics/finetune/<name>_comparison.json|.md, plots/finetune/<name> (what dvc.yaml declares)
    out_dir: WorkspacePath | None = None  # the classifier
    metrics: WorkspacePath | None = None
    comparison: WorkspacePath | None = None  # the baselines/ablations, same run
    comparison_table: WorkspacePath | None = None  # the same as a Markdown table
    plots_dir: WorkspacePath | None = None
    # frozen biLM layer outputs, computed once per (biLM, tokens) and reused (not a DVC output)
    cache_dir: WorkspacePath = "data/cache/elmo"
    cache_dtype: Literal["float16", "float32"] = "float16"
    embed_batch_tokens: int = Field(4096, ge=16)  # tokens per biLM batch when computing layers
    max_tokens: int = Field(64, ge=1)  # a longer headline keeps its first max_tokens tokens (counted)
    # Model selection: epochs (and anything else chosen) on this held-out slice of the train split,
    # a stable hash of each record's id (its text when the task has no id field); dev is reported once.
    heldout_fraction: float = Field(0.1, gt=0, lt=0.5)
    heldout_salt: str = "elmo-ko-heldout-v1"
    bilm: BiLMModeParams = BiLMModeParams()
    adapt: AdaptParams = AdaptParams()
    unfreeze: UnfreezeParams = UnfreezeParams()
    model: TaskModelParams = TaskModelParams()
    train: TrainParams = TrainParams()
    ensemble: EnsembleParams = EnsembleParams()
    tfidf: TfidfParams = TfidfParams()
    compare: list[Literal["tfidf_lr", "no_elmo", "random_bilm", "elmo_no_gamma", "elmo", "elmo_in_out", "adapted",
                          "unfrozen", "adapted_unfrozen"]] = Field(default_factory=lambda: list(DEFAULT_COMPARE))

    @model_validator(mode="before")
    @classmethod
    def _default_out_dir(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            data = select_task(data, (info.context or {}).get("task"))
            derived = task_paths(_task_name(data))
            data = {**data, **{k: v for k, v in derived.items() if data.get(k) is None}}
        adapt = data.get("adapt") if isinstance(data, dict) else None
        if isinstance(data, dict) and (adapt is None or isinstance(adapt, dict) and adapt.get("out_dir") is None):
            data = {**data, "adapt": {**(adapt or {}), "out_dir": adapted_bilm_dir(_task_name(data))}}
        return data

    @model_validator(mode="after")
    def _ngrams(self):
        if self.tfidf.ngram_max < self.tfidf.ngram_min:
            raise ValueError("tfidf.ngram_max must be >= tfidf.ngram_min")
        return self
