"""Typed, validated access to ``params.yaml``.

One section per stage; each section is a pydantic model in its own module of this package.
Unknown keys and wrong types are rejected with a message that names the file and the dotted key::

    params.yaml: clean.valid_fraction: Input should be a valid number (got 'x')

Usage::

    from elmo.params import load_params
    p = load_params("params.yaml")
    p.crawl.source
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from elmo.params.base import ParamsError, Section
from elmo.params.clean import CleanParams
from elmo.params.crawl import CrawlParams
from elmo.params.finetune import FinetuneParams
from elmo.params.flows import FlowsParams
from elmo.params.mlflow import MlflowParams
from elmo.params.pretrain import PretrainParams
from elmo.params.register import RegisterParams
from elmo.params.tokenize import TokenizeParams
from elmo.params.vocab import VocabParams

DEFAULT_PARAMS_FILE = "params.yaml"


with warnings.catch_warnings():
    # `register` shadows ABCMeta.register on the class only; instances read the field as usual.
    warnings.filterwarnings("ignore", message='Field name "register"')

    class Params(Section):
        """The whole of params.yaml."""

        seed: int = 1234
        mlflow: MlflowParams = MlflowParams()
        crawl: CrawlParams = CrawlParams()
        clean: CleanParams = CleanParams()
        tokenize: TokenizeParams = TokenizeParams()
        vocab: VocabParams = VocabParams()
        pretrain: PretrainParams = PretrainParams()
        finetune: FinetuneParams = FinetuneParams()
        register: RegisterParams = RegisterParams()
        flows: FlowsParams = FlowsParams()


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not a parameter of this section; check its spelling)"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def parse_params(data: dict[str, Any], path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Validate an already-parsed mapping; errors name ``path`` and the dotted key."""
    path = Path(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(_format_errors(path, err)) from None


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml. Raises :class:`ParamsError` naming the file and key."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: no such params file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(data, path)


def set_params(path: str | Path, assignments: list[str]) -> Params:
    """Apply ``dotted.key=value`` assignments (values parsed as YAML) to a params file.

    The result is validated before the file is rewritten (atomically), so a bad assignment leaves
    the file unchanged. Everything else in the file — comments, order, quoting — stays as it was
    (a ruamel.yaml round trip).
    """
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from elmo.io import atomic_write_text

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    path = Path(path)
    data = rt.load(path.read_text(encoding="utf-8")) or CommentedMap()
    for a in assignments:
        if "=" not in a:
            raise ParamsError(f"{a!r}: expected dotted.key=value")
        key, raw = a.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"{path}: {key}: {part} is not a section")
        value = yaml.safe_load(raw)
        if isinstance(value, list):
            value = CommentedSeq(value)
            value.fa.set_flow_style()  # [2019-04, 2019-05], as a person would write it
        node[parts[-1]] = value
    buf = io.StringIO()
    rt.dump(data, buf)
    params = parse_params(yaml.safe_load(buf.getvalue()), path)
    atomic_write_text(path, buf.getvalue())
    return params


__all__ = ["Params", "ParamsError", "load_params", "parse_params", "set_params", "DEFAULT_PARAMS_FILE"]
