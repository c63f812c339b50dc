"""Which modules may import MLflow, DVC and Prefect (ARCHITECTURE.md, "Boundaries").

The library is plain Python: MLflow only behind elmo/tracking.py and elmo/registry/, DVC only in
elmo/registry/dvcrepo.py and flows/, Prefect only in flows/. Checked on the source (ast), so a
function-local import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ALLOWED = {
    "mlflow": ("elmo/tracking.py", "elmo/registry/"),
    "dvc": ("elmo/registry/dvcrepo.py", "flows/"),
    "dvc_data": ("elmo/registry/dvcrepo.py", "flows/"),
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


def test_mlflow_dvc_and_prefect_are_imported_only_by_their_adapters() -> None:
    found = set()
    for pkg in ("elmo", "flows"):
        for f in sorted((REPO / pkg).rglob("*.py")):
            rel = f.relative_to(REPO).as_posix()
            for top in imports(f) & set(ALLOWED):
                if not rel.startswith(ALLOWED[top]):
                    found.add((rel, top))
    assert found - PENDING == set(), "import these through elmo/tracking.py, elmo/registry/ or flows/"
    assert PENDING - found == set(), "no longer imported there: remove the entry from PENDING"
