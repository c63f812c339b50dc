"""Params of the register stage and of ``elmo rollback`` (see elmo/stages/register.py, elmo/registry/).

Nothing about the registered models is hard-coded: each entry of ``models`` names the MLflow
registered model, the DVC output directory that is the model, the ``dvc.lock`` stage that writes
it, the metrics file and dotted metric key it is judged on, and the direction (``higher_is_better``).
The same code therefore registers the biLM and the YNAT classifier here, and any other
DVC-produced model a test or a user declares.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from elmo.params.base import Section
from elmo.params.paths import WorkspacePath

_LOADER_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")


class RegisteredModelParams(Section):
    """One model the register stage registers (one MLflow registered model)."""

    # MLflow registered model name, e.g. elmo-bilm; null for finetune's model: elmo-<finetune.task.name>
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
_YNAT = RegisteredModelParams(  # name and model_dir follow finetune.task.name (elmo/params/__init__.py)
    dvc_stage="finetune",
    metrics_file="metrics/finetune.json",
    metric="macro_f1",
    higher_is_better=True,
    loader="elmo.task:Classifier",
    example=["손흥민, 시즌 10호 골… 토트넘 3연승", "코스피 2,500선 회복…외국인 순매수"],
    predictions_file="plots/finetune/dev_predictions.csv",
)

SERVE_REQUIREMENTS = ["torch", "numpy", "safetensors", "pydantic", "PyYAML", "mecab-python3",
                      "python-mecab-ko-dic", "scikit-learn", "scipy"]


class RegisterParams(Section):
    alias: str = "champion"  # the alias that moves only on improvement (and on rollback)
    # key -> model; the keys are what dvc.yaml templates read (${register.models.ynat.model_dir}).
    models: dict[str, RegisteredModelParams] = {"bilm": _BILM, "ynat": _YNAT}
    primary: str = "ynat"  # the model a bare number in `elmo rollback --to N` refers to
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
        if self.primary not in self.models:
            raise ValueError(f"primary: {self.primary!r} is not a key of models ({', '.join(self.models)})")
        return self


def derive_task_model(register: RegisterParams, task_name: str, out_dir: str) -> None:
    """Fill in ``name`` / ``model_dir`` left null on finetune's model (``elmo-<task>``, finetune.out_dir);
    ValueError naming the key for another model without them, or two models under one name."""
    for key, spec in register.models.items():
        missing = [k for k in ("name", "model_dir") if getattr(spec, k) is None]
        if missing and spec.dvc_stage != "finetune":
            raise ValueError(f"register.models.{key}.{missing[0]}: required (only finetune's model derives it)")
        derived = {"name": f"elmo-{task_name}", "model_dir": out_dir}
        if missing:  # a copy: the sections are frozen, and a default entry may be shared
            register.models[key] = spec.model_copy(update={k: derived[k] for k in missing})
    names = [m.name for m in register.models.values()]
    if len(set(names)) != len(names):
        raise ValueError("register.models: two entries register under the same name")
