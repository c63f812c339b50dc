"""Rollback's refusals: checked before anything changes, so a refusal changes nothing.

It refuses to overwrite work that exists nowhere else — uncommitted edits of the pipeline files
(other than exactly what the previous rollback wrote, so one can roll forward again) and cached
outputs that differ from ``dvc.lock`` — and to start when neither the DVC cache nor the default
remote holds every object the target needs (fetching them into the cache first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elmo import dvcrepo, gitrepo
from elmo.errors import StageError
from elmo.registry.register import say
from elmo.registry.restore import load_state, read, sha
from elmo.registry.targets import Target


def uncommitted(root: Path, head: str, files: set[str], state: dict[str, Any]) -> list[str]:
    """Files whose working copy differs from HEAD, except exactly as the last rollback wrote them."""
    written = state.get("written", {}) if isinstance(state.get("written"), dict) else {}
    dirty = []
    for f in sorted(files):
        current = read(root / f)
        if current == gitrepo.show(root, head, f):
            continue
        if f in written and written[f] == sha(current):
            continue
        dirty.append(f)
    return dirty


def refuse_unsafe(root: Path, repo, head: str, files: set[str], state_path: Path, label: str) -> None:
    """Refuse when rollback would overwrite work that exists nowhere else."""
    dirty = uncommitted(root, head, files, load_state(state_path))
    unsaved = [o.path for o in dvcrepo.workspace_outputs(repo) if o.changed]
    if not (dirty or unsaved):
        return
    parts = []
    if dirty:
        parts.append(f"uncommitted changes in {', '.join(dirty)} (commit them, or `git restore` them)")
    if unsaved:
        verb = "differs" if len(unsaved) == 1 else "differ"
        parts.append(f"{', '.join(unsaved)} {verb} from dvc.lock (keep the change with `dvc commit`, "
                     "or discard it with `dvc checkout`)")
    raise StageError(f"refusing to roll back to {label}: {'; '.join(parts)}; nothing was changed")


def ensure_objects(repo, target: Target) -> None:
    """Every object the target needs is in the cache afterwards (fetched if need be), or refuse."""
    missing = dvcrepo.missing_objects(repo, target.commit)
    remote, fetch_error = dvcrepo.default_remote(repo), None
    if missing and remote:
        say(f"fetching {len(missing)} output(s) of {target.label} from DVC remote {remote!r} …")
        fetch_error = dvcrepo.fetch(repo, target.commit)
        missing = dvcrepo.missing_objects(repo, target.commit)
    if missing:
        where = f"DVC remote {remote!r}" if remote else "a DVC remote (none is configured)"
        detail = f" (fetch: {fetch_error})" if fetch_error else ""
        raise StageError(f"refusing to roll back to {target.label}: the data of {', '.join(missing)} is neither "
                         f"in the DVC cache nor in {where}{detail}; nothing was changed")
