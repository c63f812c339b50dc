"""Which modules may import MLflow, DVC and Prefect (ARCHITECTURE.md, "Boundaries").

The library is plain Python: MLflow only behind elmo/tracking.py and elmo/registry/, DVC only in
elmo/dvcrepo.py (the one DVC adapter, flows/ included), Prefect only in flows/, and ``git`` run
only by elmo/gitrepo.py. Checked on the source (ast), so a function-local import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ALLOWED = {
    "mlflow": ("elmo/tracking.py", "elmo/registry/"),
    "dvc": ("elmo/dvcrepo.py",),
    "dvc_data": ("elmo/dvcrepo.py",),
    "prefect": ("flows/",),
    "prefect_dask": ("flows/",),
}
# Modules still importing one of these outside their adapter, to be moved behind it (none today);
# the test fails once one of them no longer does, so an entry is removed with the fix.
PENDING: set[tuple[str, str]] = set()


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def sources() -> list[tuple[str, Path]]:
    """(repository-relative path, file) of every module of elmo/ and flows/."""
    files = [f for pkg in ("elmo", "flows") for f in sorted((REPO / pkg).rglob("*.py"))]
    return [(f.relative_to(REPO).as_posix(), f) for f in files]


def test_mlflow_dvc_and_prefect_are_imported_only_by_their_adapters() -> None:
    found = set()
    for rel, f in sources():
        for top in imports(f) & set(ALLOWED):
            if not rel.startswith(ALLOWED[top]):
                found.add((rel, top))
    assert found - PENDING == set(), "import these through elmo/tracking.py, elmo/dvcrepo.py or flows/"
    assert PENDING - found == set(), "no longer imported there: remove the entry from PENDING"


def test_dvc_is_imported_by_one_module() -> None:
    """One DVC adapter for the whole project: the flows' stage graph and the registry's checkout alike."""
    assert {rel for rel, f in sources() if imports(f) & {"dvc", "dvc_data"}} == {"elmo/dvcrepo.py"}


SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}


def git_calls(path: Path) -> list[int]:
    """Lines where ``path`` starts a ``git`` process through :mod:`subprocess` (or ``os.system``/``os.popen``):
    the command is a list/tuple whose first item is ``"git"``, or a string starting with ``git ``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    from_subprocess = {a.asname or a.name for n in ast.walk(tree)
                       if isinstance(n, ast.ImportFrom) and n.module == "subprocess" for a in n.names}

    def is_process_call(func: ast.expr) -> bool:
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return ((func.value.id == "subprocess" and func.attr in SUBPROCESS_CALLS)
                    or (func.value.id == "os" and func.attr in {"system", "popen"}))
        return isinstance(func, ast.Name) and func.id in from_subprocess

    def is_git(cmd: ast.expr) -> bool:
        if isinstance(cmd, (ast.List, ast.Tuple)) and cmd.elts:
            cmd = cmd.elts[0]
            return isinstance(cmd, ast.Constant) and cmd.value == "git"
        return isinstance(cmd, ast.Constant) and isinstance(cmd.value, str) and cmd.value.split()[:1] == ["git"]

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and is_process_call(node.func):
            cmds = node.args[:1] + [k.value for k in node.keywords if k.arg in ("args", "cmd")]
            if any(is_git(c) for c in cmds):
                lines.append(node.lineno)
    return lines


def test_git_is_run_only_by_the_git_helper() -> None:
    found = {rel for rel, f in sources() if git_calls(f)}
    # == rather than <=: the check sees the one helper's own call, so it is not vacuous
    assert found == {"elmo/gitrepo.py"}, "run git through elmo.gitrepo"
