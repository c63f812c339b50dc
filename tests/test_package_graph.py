"""The package import graph of elmo/ and flows/ is acyclic (ARCHITECTURE.md, "Imports").

A node is a package or module directly below ``elmo`` or ``flows`` (``elmo.data``, ``elmo.vocab``,
``elmo.tracking``, ``flows.pipeline``, ...), plus the root packages themselves for what is imported
from their ``__init__``. An edge ``a -> b`` is any import in a file of ``a`` of something in ``b``:
module level and function-local alike (a function-local import runs as surely as a top-level one,
only later), parsed with :mod:`ast`, never executed. A cycle means two packages that cannot be
understood, tested or reused apart; break it by moving the code to the package it belongs in.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.imports import find_cycle, from_module

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("elmo", "flows")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def node_of(name: str) -> str | None:
    """The graph node of a project module name (None for a third-party one)."""
    parts = name.split(".")
    if parts[0] not in ROOTS:
        return None
    return ".".join(parts[:2])


def imports_of(path: Path) -> list[tuple[int, str]]:
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package, str(path))


def imports_in(source: str, package: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, project module) for each import in ``source`` (a module of ``package``), anywhere in it;
    ``from pkg import x`` names ``pkg.x`` when that is a module, else ``pkg`` (x is an attribute)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = from_module(node, package)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((node.lineno, sub if is_module(sub) else mod))
    return [(line, name) for line, name in out if node_of(name) is not None]


def package_graph() -> dict[str, dict[str, list[str]]]:
    """``{a: {b: ["file:line imports name", ...]}}`` for every edge a -> b between two nodes."""
    graph: dict[str, dict[str, list[str]]] = {}
    for root in ROOTS:
        for f in sorted((REPO / root).rglob("*.py")):
            src = node_of(module_name(f))
            edges = graph.setdefault(src, {})
            for line, name in imports_of(f):
                dst = node_of(name)
                where = f"{f.relative_to(REPO).as_posix()}:{line} imports {name}"
                if dst != src and where not in edges.setdefault(dst, []):
                    edges[dst].append(where)
    return graph


def describe(cycle: list[str], graph: dict[str, dict[str, list[str]]]) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:]):
        lines.append(f"  {a} -> {b}: " + "; ".join(graph[a][b]))
    return "\n".join(lines)


def test_package_graph_is_acyclic() -> None:
    graph = package_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"package import cycle (move the code where it belongs):\n{describe(cycle, graph)}"


def test_package_graph_sees_function_local_and_relative_imports() -> None:
    """The parser the acyclicity test relies on: an import inside a function (or a method) is an edge,
    ``from pkg import submodule`` names the submodule, a relative import resolves against the package,
    and a third-party import is no edge."""
    src = ("import numpy\n"
           "from elmo.vocab import Vocabulary\n"
           "def f():\n"
           "    from elmo.data import batch\n"
           "class C:\n"
           "    def m(self):\n"
           "        import elmo.tracking\n"
           "        from .arrays import split_files\n"
           "        from .. import io\n")
    assert sorted(imports_in(src, "elmo.data")) == [(2, "elmo.vocab"), (4, "elmo.data.batch"), (7, "elmo.tracking"),
                                            (8, "elmo.data.arrays"), (9, "elmo.io")]
    assert {node_of(n) for _, n in imports_in(src, "elmo.data")} == {"elmo.vocab", "elmo.data", "elmo.tracking",
                                                                     "elmo.io"}


def test_package_graph_finds_and_describes_a_cycle() -> None:
    graph = {"a": {"b": ["a.py:1 imports b"]}, "b": {"c": ["b.py:3 imports c"]}, "c": {"a": ["c.py:9 imports a"]}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert "c -> a: c.py:9 imports a" in describe(find_cycle(graph), graph)
    assert find_cycle({"a": {"b": []}, "b": {}, "c": {"a": []}}) is None
