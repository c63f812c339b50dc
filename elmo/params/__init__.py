"""Typed, validated access to ``params.yaml``.

One section per stage; each section is a pydantic model in its own module of this package.
Unknown keys, wrong types (``true`` for a number, ``.inf``), duplicate keys, an empty or unreadable
file, and output paths outside the workspace (elmo/params/paths.py) are rejected with a message that
names the file and the dotted key::

    params.yaml: clean.valid_fraction: Input should be a valid number (got 'x')

Usage::

    from elmo.params import load_params
    p = load_params("params.yaml")
    p.crawl.source
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from elmo.errors import ParamsError
from elmo.io import atomic_write_text
from elmo.params.base import Section
from elmo.params.clean import CleanParams
from elmo.params.crawl import CrawlParams
from elmo.params.finetune import FinetuneParams, task_metrics_file, task_model_dir, task_paths
from elmo.params.flows import FlowsParams
from elmo.params.guard import OutputCollision, check_params
from elmo.params.mlflow import MlflowParams
from elmo.params.paths import OPT_IN, escaping_paths
from elmo.params.pretrain import PretrainParams
from elmo.params.register import RegisterParams, derive_task_models
from elmo.params.tokenize import TokenizeParams
from elmo.params.vocab import VocabParams

DEFAULT_PARAMS_FILE = "params.yaml"
# Where the data comes from for this process only, never written to params.yaml: space-separated
# `section.source=URL-or-dir` (e.g. `make pipeline MIRROR=...` points crawl and the task at a
# temporary 127.0.0.1 server). Only `source` keys: a source says where bytes come from, which the
# stages verify (crawl's sizes and sha256, the task's records); what they are stays in dvc.lock.
SOURCE_OVERRIDES_ENV = "ELMO_SOURCE_OVERRIDES"


with warnings.catch_warnings():
    # `register` shadows ABCMeta.register on the class only; instances read the field as usual.
    warnings.filterwarnings("ignore", message='Field name "register"')

    class Params(Section):
        """The whole of params.yaml."""

        seed: int = Field(1234, ge=0, le=2**32 - 1)  # numpy, torch and the splits take 0 .. 2**32 - 1
        # Outputs (crawl.out_dir, finetune.out_dir, ...) are relative paths inside the workspace; true
        # lets them be absolute or climb out with '..' (e.g. data on another disk). Sources may be anywhere.
        allow_paths_outside_workspace: bool = False
        mlflow: MlflowParams = MlflowParams()
        crawl: CrawlParams = CrawlParams()
        clean: CleanParams = CleanParams()
        tokenize: TokenizeParams = TokenizeParams()
        vocab: VocabParams = VocabParams()
        pretrain: PretrainParams = PretrainParams()
        finetune: FinetuneParams = FinetuneParams()
        register: RegisterParams = RegisterParams()
        flows: FlowsParams = FlowsParams()

        @model_validator(mode="after")
        def _task_names_its_model(self) -> "Params":
            f = self.finetune
            outputs = {name: (task_model_dir(name), task_metrics_file(name), task_paths(name)["plots_dir"])
                       for name in f.tasks}
            outputs[f.task.name] = (f.out_dir, f.metrics, f.plots_dir)  # the selected task's, as validated
            derive_task_models(self.register, outputs)
            return self


def _format_errors(path: Path, err: ValidationError, task: str | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if task is not None and loc[:2] == ["finetune", "task"]:  # the selected task's keys live in tasks.<name>
            loc[1:2] = ["tasks", task]
        key = ".".join(loc) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not a parameter of this section; check its spelling)"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def task_names(data: dict[str, Any]) -> list[str]:
    """The task names of a raw params mapping (``finetune.tasks``, or the former single ``finetune.task``)."""
    f = data.get("finetune") if isinstance(data, dict) else None
    f = f if isinstance(f, dict) else {}
    tasks = f.get("tasks")
    if isinstance(tasks, dict):
        return [str(k) for k in tasks]
    legacy = f.get("task")
    name = legacy.get("name", "ynat") if isinstance(legacy, dict) else "ynat"
    return [str(name)]


def parse_params(data: dict[str, Any], path: str | Path = DEFAULT_PARAMS_FILE, task: str | None = None) -> Params:
    """Validate an already-parsed mapping with ``task`` selected (``finetune.tasks``; None: the first);
    every other task is validated too. Errors name ``path`` and the dotted key."""
    path = Path(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    names = task_names(data)
    if task is not None and task not in names:
        raise ParamsError(f"{path}: finetune.tasks: no task {task!r} (tasks: {', '.join(names)})")
    selected = task if task is not None else names[0] if names else None
    validated = {}
    for name in [selected, *(n for n in names if n != selected)]:
        try:
            validated[name] = Params.model_validate(data, context={"task": name})
        except ValidationError as err:
            raise ParamsError(_format_errors(path, err, name)) from None
    params = validated[selected]
    for each in validated.values():  # each task's outputs, as that task's stages would see them
        escapes = [] if each.allow_paths_outside_workspace else escaping_paths(each)
        if escapes:
            raise ParamsError("\n".join(
                f"{path}: {key}: {value!r} {why}: outputs stay inside the workspace (a relative path "
                f"without '..' above the root); set {OPT_IN}: true to allow it"
                for key, value, why in escapes))
        collision = check_params(each)  # an output on an input, a project file or another output
        if collision:
            raise OutputCollision(f"{path}: {collision}")
    return params


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last silently)."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {first})", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_params_text(path: Path) -> str:
    """The text of a params file; :class:`ParamsError` if it is missing, a directory or not UTF-8."""
    if not path.exists():
        raise ParamsError(f"{path}: no such params file")
    if not path.is_file():
        raise ParamsError(f"{path}: not a file (a params file is YAML text)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot be read ({err.strerror})") from None


def load_yaml(text: str, path: Path) -> Any:
    """YAML with duplicate keys refused; :class:`ParamsError` naming the file, line and column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ParamsError(f"{path}:{where} not valid YAML: {problem}".replace("\n", " ")) from None
    except (ValueError, TypeError, RecursionError) as err:  # e.g. a timestamp out of range
        raise ParamsError(f"{path}: not valid YAML: {err}") from None


def apply_source_overrides(data: dict[str, Any], spec: str) -> list[str]:
    """Set the ``section.source=value`` pairs of ``spec`` in ``data``; the keys set, in order."""
    where = f"${SOURCE_OVERRIDES_ENV}"
    done = []
    for item in spec.split():
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or not value or len(parts) < 2 or parts[-1] != "source":
            raise ParamsError(f"{where}: {item!r}: expected section.source=URL-or-directory (only the sources of "
                              "the data may be overridden here; edit params.yaml for anything else)")
        node: Any = data
        for part in parts[:-1]:  # a section params.yaml leaves to its defaults is created (then validated)
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ParamsError(f"{where}: {key}: {'.'.join(parts[:-1])} is not a section of params.yaml")
        node["source"] = value
        done.append(key)
    return done


def load_params(path: str | Path = DEFAULT_PARAMS_FILE, task: str | None = None) -> Params:
    """Read and validate params.yaml with ``task`` selected (None: the first of ``finetune.tasks``),
    with ``$ELMO_SOURCE_OVERRIDES`` applied in memory.

    Raises :class:`ParamsError` naming the file and key."""
    path = Path(path)
    data = load_yaml(read_params_text(path), path)
    if data is None:
        raise ParamsError(f"{path}: empty (no sections): every stage would run on silent defaults; write "
                          "its sections (the project's params.yaml lists them all)")
    if isinstance(data, dict) and os.environ.get(SOURCE_OVERRIDES_ENV, "").strip():
        apply_source_overrides(data, os.environ[SOURCE_OVERRIDES_ENV])
    return parse_params(data, path, task)


def set_params(path: str | Path, assignments: list[str], check: Callable[[Params], None] | None = None) -> Params:
    """Apply ``dotted.key=value`` assignments (values parsed as YAML) to a params file.

    The result is validated (and given to ``check``, e.g. the output guard on the filesystem) before
    the file is rewritten (atomically), so a bad assignment leaves the file unchanged. Everything else
    in the file — comments, order, quoting — stays as it was (a ruamel.yaml round trip).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    path = Path(path)
    text = read_params_text(path)
    load_yaml(text, path)  # the same checks (and messages) as load_params: duplicate keys, syntax
    data = rt.load(text) or CommentedMap()
    for a in assignments:
        if "=" not in a:
            raise ParamsError(f"{a!r}: expected dotted.key=value")
        key, raw = a.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ParamsError(f"{path}: {key}: {part} is not a section")
        if not isinstance(node, dict):
            raise ParamsError(f"{path}: the top level is not a mapping of sections")
        value = load_yaml(raw, Path(f"{key}=..."))
        if isinstance(value, list):
            value = CommentedSeq(value)
            value.fa.set_flow_style()  # [2019-04, 2019-05], as a person would write it
        node[parts[-1]] = value
    buf = io.StringIO()
    rt.dump(data, buf)
    params = parse_params(yaml.safe_load(buf.getvalue()), path)
    if check is not None:
        check(params)
    # a symlinked params file stays a link: the new text goes to the file it points at
    atomic_write_text(path.resolve() if path.is_symlink() else path, buf.getvalue())
    return params


__all__ = ["Params", "ParamsError", "load_params", "parse_params", "set_params", "DEFAULT_PARAMS_FILE"]
