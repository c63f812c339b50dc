"""Params of the register stage and of ``elmo rollback`` (see elmo/stages/register.py, elmo/registry/).

Nothing about the registered models is hard-coded: each entry of ``models`` names the MLflow
registered model, the DVC output directory that is the model, the ``dvc.lock`` stage that writes
it, the metrics file and dotted metric key it is judged on, and the direction (``higher_is_better``).
The same code therefore registers the biLM and each task's classifier here (the entry whose stage is
``finetune`` becomes one entry per task of ``finetune.tasks``), and any other DVC-produced model a test
or a user declares.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from elmo.params.base import Section
from elmo.params.finetune import PREDICTIONS_FILE
from elmo.params.paths import WorkspacePath

_LOADER_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")


class RegisteredModelParams(Section):
    """One model the register stage registers (one MLflow registered model)."""

    # MLflow registered model name, e.g. elmo-bilm; null for finetune's model: elmo-<task name>
    name: str | None = None
    model_dir: str | None = None  # the DVC output (a directory) that is the model; null for finetune's: its out_dir
    dvc_stage: str  # the dvc.yaml/dvc.lock stage whose outs include model_dir
    metrics_file: str  # JSON metrics written by that stage
    metric: str  # dotted key in metrics_file that decides who is champion
    higher_is_better: bool
    # "module:attr" with .load(dir) -> object with .predict(list) -> list (one result per input).
    loader: str
    input_column: str = "text"  # the pyfunc's input column (raw headlines, or token lists)
    input_type: str = Field("string", pattern=r"^(string|tokens)$")  # str per row, or list[str] per row
    example: list = Field(min_length=1)  # smoke input: the logged model must load and answer it
    code_paths: list[str] = ["elmo"]  # shipped inside the model (relative to the workspace)
    # served = measured: a CSV (text, actual, predicted) the logged model must reproduce exactly before
    # it is registered (elmo/registry/served.py); null: only the example is checked
    predictions_file: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError("a registered model name: letters, digits, '.', '_', '-'")
        return v

    @field_validator("loader")
    @classmethod
    def _loader(cls, v: str) -> str:
        if not _LOADER_RE.match(v):
            raise ValueError("expected 'package.module:Attribute'")
        return v

    @model_validator(mode="after")
    def _example_matches_input_type(self):
        for i, item in enumerate(self.example):
            ok = isinstance(item, str) if self.input_type == "string" else (
                isinstance(item, list) and all(isinstance(t, str) for t in item))
            if not ok:
                kind = "a string" if self.input_type == "string" else "a list of token strings"
                raise ValueError(f"example[{i}] must be {kind} (input_type={self.input_type})")
        return self


_BILM = RegisteredModelParams(
    name="elmo-bilm",
    model_dir="models/bilm",
    dvc_stage="pretrain",
    metrics_file="metrics/pretrain.json",
    metric="valid.ppl",
    higher_is_better=False,
    loader="elmo.registry.embedder:BiLMEmbedder",
    example=["국민청원 게시판에 의견을 남겼습니다."],
)
_TASK = RegisteredModelParams(  # one entry per task of finetune.tasks (derive_task_models)
    dvc_stage="finetune",
    metrics_file="metrics/finetune/ynat.json",
    metric="macro_f1",
    higher_is_better=True,
    loader="elmo.task:Classifier",
    example=["손흥민, 시즌 10호 골… 토트넘 3연승", "코스피 2,500선 회복…외국인 순매수"],
    predictions_file=f"plots/finetune/ynat/{PREDICTIONS_FILE}",  # per task: <its plots_dir>/dev_predictions.csv
)

SERVE_REQUIREMENTS = ["torch", "numpy", "safetensors", "pydantic", "PyYAML", "mecab-python3",
                      "python-mecab-ko-dic", "scikit-learn", "scipy"]


class RegisterParams(Section):
    alias: str = "champion"  # the alias that moves only on improvement (and on rollback)
    # key -> model; the entry with dvc_stage finetune stands for every task (one entry per task name)
    models: dict[str, RegisteredModelParams] = {"bilm": _BILM, "task": _TASK}
    primary: str = "ynat"  # the model a bare number in `elmo rollback --to N` refers to (a task's: its name)
    report: WorkspacePath = "metrics/register.json"  # what the stage did (versions, champion decisions)
    # pip packages a served model needs; pinned to the installed versions when logged.
    pip_requirements: list[str] = SERVE_REQUIREMENTS
    rollback_state: WorkspacePath = ".elmo/rollback.json"  # what the last rollback wrote (never in git)

    @field_validator("alias")
    @classmethod
    def _alias(cls, v: str) -> str:
        if not _NAME_RE.match(v) or v.isdigit() or v.lower() == "latest":
            raise ValueError("an alias: letters, digits, '.', '_', '-'; not a number, not 'latest'")
        return v

    @model_validator(mode="after")
    def _primary_is_a_model(self):
        if not self.models:
            raise ValueError("models: declare at least one model")
        tasks = any(m.dvc_stage == "finetune" for m in self.models.values())  # a task name: checked once derived
        if self.primary not in self.models and not tasks:
            raise ValueError(f"primary: {self.primary!r} is not a key of models ({', '.join(self.models)})")
        return self


def derive_task_models(register: RegisterParams, tasks: dict[str, tuple[str, str]]) -> None:
    """The entry of finetune's model (``dvc_stage: finetune``) stands for every task of ``finetune.tasks``:
    it becomes one entry per task (keyed by the task's name, stage ``finetune@<name>``, name
    ``elmo-<name>`` and model_dir / metrics_file / predictions_file its outputs; ``tasks``: name ->
    (model_dir, metrics_file, plots_dir)).
    ValueError naming the key for another model without name or model_dir, or two models under one name."""
    templates = [key for key, spec in register.models.items() if spec.dvc_stage == "finetune"]
    for key, spec in list(register.models.items()):
        missing = [k for k in ("name", "model_dir") if getattr(spec, k) is None]
        if spec.dvc_stage != "finetune":
            if missing:
                raise ValueError(f"register.models.{key}.{missing[0]}: required (only finetune's model derives it)")
            continue
        del register.models[key]  # a copy per task: the sections are frozen, and a default entry may be shared
        for name, (model_dir, metrics_file, plots_dir) in tasks.items():
            if name in register.models:
                raise ValueError(f"register.models.{name}: the task {name!r} registers under this key; rename one")
            register.models[name] = spec.model_copy(update={
                "name": spec.name if spec.name and len(tasks) == 1 else f"elmo-{name}",
                "model_dir": spec.model_dir if spec.model_dir and len(tasks) == 1 else model_dir,
                "dvc_stage": f"finetune@{name}", "metrics_file": metrics_file,
                # served = measured: that task's per-record dev predictions (finetune's plots_dir)
                "predictions_file": f"{plots_dir}/{PREDICTIONS_FILE}" if spec.predictions_file else None})
    names = [m.name for m in register.models.values()]
    if len(set(names)) != len(names):
        raise ValueError("register.models: two entries register under the same name")
    if register.primary not in register.models and templates and len(tasks) == 1:
        # one task (e.g. a former single-task file, whose `primary: ynat` named its classifier): that task's
        object.__setattr__(register, "primary", next(iter(tasks)))
    if register.primary not in register.models:
        raise ValueError(f"register.primary: {register.primary!r} is not a model (models: "
                         f"{', '.join(register.models)}; a task's model is keyed by the task's name)")
