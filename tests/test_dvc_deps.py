"""dvc.yaml's code deps are derived facts: each stage's deps must cover the import closure of its
module, so that a change to any code a stage runs reruns it (and nothing else is needed).

The closure starts at ``elmo/stages/<stage>.py`` and follows every ``import`` / ``from … import``
in the file (module level and function-local alike, parsed with :mod:`ast`, never executed) into
``elmo/`` and ``flows/``; importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``,
so those count too. A dep that is a folder covers every file below it.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

from helpers.imports import from_module

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("elmo", "flows")  # the project's own code; everything else is a pinned dependency

# Imports the closure does not follow, each with the reason it cannot run in a stage. Kept small;
# a test checks that each is still there (so the list cannot go stale).
NOT_FOLLOWED = {
    ("elmo/__init__.py", "elmo.embed.elmo"): "PEP 562 lazy attribute `elmo.Elmo` (the public API); no stage "
                                             "reads `elmo.Elmo`, they import elmo.embed themselves",
}


def module_file(name: str) -> Path | None:
    """The file that ``import name`` executes last, if it is the project's (a package's __init__)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every project module name that ``path`` imports anywhere (including function-local imports),
    with the packages above each (importing ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    rel = path.relative_to(REPO).as_posix()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = from_module(node, package)
            found = [mod] + [f"{mod}.{a.name}" for a in node.names]  # `from pkg import submodule`
        else:
            continue
        if (rel, found[0]) not in NOT_FOLLOWED:
            names.update(found)
    out = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if module_file(prefix) is not None:
                out.add(prefix)
    return out


def import_closure(start: Path) -> set[str]:
    """Repository-relative paths of every project file that running ``start`` can import."""
    seen: set[Path] = set()
    todo = [start]
    # the packages above the start module run first too
    todo += [module_file(p) for p in _prefixes(module_name(start))]
    while todo:
        f = todo.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        todo.extend(module_file(m) for m in imported_modules(f))
    return {f.relative_to(REPO).as_posix() for f in seen}


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def code_deps(stage: dict) -> list[str]:
    """The deps of a dvc.yaml stage that are project code (not data, not templated paths)."""
    return [d for d in stage.get("deps", []) if isinstance(d, str) and d.split("/")[0] in PACKAGES]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def uncovered(stage_name: str, stage: dict) -> list[str]:
    """Files the stage imports that none of its deps covers (what a change would not rerun)."""
    deps = code_deps(stage)
    return sorted(f for f in import_closure(REPO / "elmo" / "stages" / f"{stage_name}.py") if not covered(f, deps))


def unused(stage_name: str, stage: dict) -> list[str]:
    """Code deps the stage never imports (a change there would rerun it for nothing)."""
    closure = import_closure(REPO / "elmo" / "stages" / f"{stage_name}.py")
    return [d for d in code_deps(stage) if not any(covered(f, [d]) for f in closure)]


def stage_definitions(stages: dict) -> dict:
    """dvc.yaml's stages, a foreach/matrix stage as its ``do`` body (one definition for all its items)."""
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return stage_definitions(yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def test_every_stage_module_is_a_dvc_stage(dvc_stages: dict) -> None:
    from elmo.cli import TASK_STAGES
    from elmo.stages import STAGES

    assert set(dvc_stages) == set(STAGES)
    for name, stage in dvc_stages.items():
        # a stage per task (foreach over finetune.tasks) passes the task's name
        assert stage["cmd"] == (f"elmo {name} --task ${{key}}" if name in TASK_STAGES else f"elmo {name}")
        assert (REPO / "elmo" / "stages" / f"{name}.py").is_file()


def test_several_tasks_stages_are_foreach_over_the_tasks() -> None:
    from elmo.cli import TASK_STAGES

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert {n for n, s in stages.items() if "foreach" in s} == set(TASK_STAGES)
    assert all(stages[n]["foreach"] == "${finetune.tasks}" for n in TASK_STAGES)


@pytest.mark.parametrize("name", ["crawl", "clean", "tokenize", "vocab", "pretrain", "fetch_task", "finetune",
                                  "register"])
def test_dvc_deps_cover_the_stage_import_closure(dvc_stages: dict, name: str) -> None:
    missing = uncovered(name, dvc_stages[name])
    assert not missing, f"dvc.yaml: stage {name} runs code its deps do not list: {missing}"
    assert not unused(name, dvc_stages[name]), f"dvc.yaml: stage {name} lists code it never imports"
    for d in code_deps(dvc_stages[name]):
        assert (REPO / d).exists(), f"dvc.yaml: stage {name}: dep {d} does not exist"


def test_deps_checker_reports_a_removed_dep(dvc_stages: dict) -> None:
    """The check is not a tautology: drop a real dep from a copy of dvc.yaml and it is reported."""
    for name, dep, expect in [("fetch_task", "elmo/crawl", "elmo/crawl/fetch.py"),
                              ("finetune", "elmo/model", "elmo/model/bilm.py"),
                              ("pretrain", "elmo/train", "elmo/train/module.py")]:
        stage = copy.deepcopy(dvc_stages[name])
        assert dep in stage["deps"]
        stage["deps"].remove(dep)
        assert expect in uncovered(name, stage)
    # a dep on a file the stage does not import is reported as unused
    stage = copy.deepcopy(dvc_stages["crawl"])
    stage["deps"].append("elmo/model")
    assert unused("crawl", stage) == ["elmo/model"]


def test_closure_follows_function_local_and_package_imports() -> None:
    closure = import_closure(REPO / "elmo" / "stages" / "fetch_task.py")
    # fetch_task imports elmo.crawl (and elmo.task.data) inside run(): function-local imports count
    assert {"elmo/crawl/fetch.py", "elmo/crawl/__init__.py", "elmo/task/data.py", "elmo/stages/__init__.py",
            "elmo/__init__.py"} <= closure
    # NOT_FOLLOWED: elmo/__init__.py's lazy attribute does not pull the model into every stage
    crawl = import_closure(REPO / "elmo" / "stages" / "crawl.py")
    assert "elmo/__init__.py" in crawl and not any(f.startswith(("elmo/embed/", "elmo/model/")) for f in crawl)
    # params validation does not import the stages' code (no params -> clean/crawl cycle)
    assert not any(f.startswith("elmo/clean/") for f in crawl)


def test_not_followed_imports_are_still_there() -> None:
    for (path, module), _reason in NOT_FOLLOWED.items():
        rel = REPO / path
        tree = ast.parse(rel.read_text(encoding="utf-8"))
        found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert module in found, f"NOT_FOLLOWED: {path} no longer imports {module}; remove the entry"


def test_pretrain_checkpoint_code_hash_matches_its_deps(dvc_stages: dict) -> None:
    """The checkpoint fingerprint's code hash (elmo.train.checkpoints.code_files) covers every
    training-code file pretrain imports, and every hashed file is a pretrain dep: a code change
    that discards the resume checkpoints also reruns the stage, and no test helper is hashed."""
    from elmo.train.checkpoints import CODE_DIRS, code_files

    hashed = {f.relative_to(REPO).as_posix() for f in code_files()}
    closure = import_closure(REPO / "elmo" / "stages" / "pretrain.py")
    training_code = {f for f in closure if f.split("/")[1] in CODE_DIRS}
    assert training_code and training_code <= hashed
    deps = code_deps(dvc_stages["pretrain"])
    assert all(covered(f, deps) for f in hashed)
    assert not any("synthetic" in f or "flops" in f for f in hashed)  # tests/helpers, benchmarks/


# Modules that are loaded by name rather than imported, each with where the name is.
LOADED_BY_NAME = {
    "elmo/registry/pyfunc_entry.py": "MLflow loads it by path (elmo/registry/pyfunc.py, python_model=)",
    "elmo/registry/embedder.py": "the biLM's serving loader, named in params (register.models.bilm.loader)",
}


def test_no_test_helper_inside_the_package() -> None:
    """Every module of elmo/ and flows/ is run by an entry point (the CLI, a stage, the flows'
    CLI) or loaded by name; test and benchmark helpers live in tests/helpers/ and benchmarks/."""
    from elmo.stages import STAGES

    entry = [REPO / "elmo" / "cli.py", REPO / "flows" / "__main__.py"]
    entry += [REPO / "elmo" / "stages" / f"{s}.py" for s in STAGES]
    entry += [REPO / f for f in LOADED_BY_NAME]
    reached = set().union(*(import_closure(f) for f in entry))
    every = {f.relative_to(REPO).as_posix() for p in PACKAGES for f in (REPO / p).rglob("*.py")}
    assert sorted(every - reached) == [], "modules no entry point runs (test helpers belong in tests/helpers/)"
