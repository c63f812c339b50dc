"""Plain arguments below the stage: the library packages never see the whole ``Params``.

Only elmo/stages/* (and flows/, cli.py) read params.yaml's model and convert it into plain values,
section models or small option dataclasses; a library function that took ``Params`` would make every
unit test build the whole params and tie the library to params.yaml's shape. This test parses the
library packages and fails, naming file:line, on any ``Params`` name (import, annotation, use, also in
a string annotation) and on any ``params.<attr>`` access (``params`` being a name or an attribute).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("elmo/task", "elmo/registry", "elmo/train", "elmo/embed", "elmo/model")


def params_references(source: str, name: str) -> list[str]:
    """``name:line: what`` for each reference to ``Params`` or a ``params.<attr>`` access in ``source``."""
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Name) and node.id == "Params":
            what = "Params"
        elif isinstance(node, ast.alias) and (node.name.split(".")[-1] == "Params" or node.asname == "Params"):
            what = f"import {node.name}"
        elif isinstance(node, ast.Attribute) and node.attr == "Params":
            what = "….Params"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_params(node.value):
            what = f"string annotation {node.value!r}"
        elif isinstance(node, ast.Attribute) and (
                (isinstance(node.value, ast.Name) and node.value.id == "params")
                or (isinstance(node.value, ast.Attribute) and node.value.attr == "params")):
            what = f"params.{node.attr}"
        if what is not None:
            found.append(f"{name}:{getattr(node, 'lineno', '?')}: {what}")
    return found


def _names_params(text: str) -> bool:
    """A string that parses as an expression naming ``Params`` (a quoted annotation)."""
    try:
        expr = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Name) and n.id == "Params" for n in ast.walk(expr))


def library_files() -> list[Path]:
    return sorted(f for d in LIBRARY for f in (ROOT / d).rglob("*.py"))


def test_plain_arguments_no_params_below_the_stage() -> None:
    files = library_files()
    assert len(files) > 40, files  # the packages are there (a wrong root finds nothing)
    found = [ref for f in files for ref in params_references(f.read_text(encoding="utf-8"),
                                                             str(f.relative_to(ROOT)))]
    assert not found, "the whole Params below the stage (convert it in elmo/stages/*):\n" + "\n".join(found)


def test_plain_arguments_check_finds_each_kind() -> None:
    src = '''from elmo.params import Params
import elmo.params as ep


def a(params: Params, root):
    return params.finetune.out_dir


def b(self, x: "Params"):
    return self.params.seed, ep.Params


def fine(train: "TrainParams", p):
    return p.seed, train.lr, "Params are read by the stage"
'''
    found = params_references(src, "x.py")
    lines = sorted({int(r.split(":")[1]) for r in found})
    assert lines == [1, 5, 6, 9, 10], found
    assert any("params.finetune" in r for r in found) and any("params.seed" in r for r in found)
    assert any("string annotation" in r for r in found) and any("….Params" in r for r in found)
