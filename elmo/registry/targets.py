"""What ``elmo rollback --to`` names: a registered version or a git revision, resolved to a commit.

``3`` is version 3 of ``register.primary``, ``elmo-bilm:2`` version 2 of that model (found by its
registered name or its key in ``register.models``); anything else is a git revision (``main``,
``HEAD~2``, a sha). A bare number that is no registered version but is a git revision counts as
the revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elmo import gitrepo
from elmo.errors import StageError
from elmo.params.register import RegisteredModelParams, RegisterParams
from elmo.registry import store
from elmo.registry.history import LockHistory, commit_of


@dataclass(frozen=True)
class Target:
    commit: str
    label: str
    name: str | None = None  # set when the target is a registered version
    version: int | None = None


def spec_by_name(models: dict[str, RegisteredModelParams], name: str) -> RegisteredModelParams | None:
    """The declared model called ``name`` (its key in ``register.models`` or its registered name)."""
    for key, spec in models.items():
        if name in (key, spec.name):
            return spec
    return None


def resolve_target(root: Path, p: RegisterParams, tracking_uri: str, client, history: LockHistory,
                   to: str) -> Target:
    """``to`` as a commit; ``tracking_uri`` (mlflow.tracking_uri) only names the registry in an error."""
    to = to.strip()
    name, sep, number = to.rpartition(":")
    if not (sep and number.isdigit()):
        name, number = (p.models[p.primary].name, to) if to.isdigit() else ("", "")
    if number:
        spec = spec_by_name(p.models, name)
        if spec is None:
            known = ", ".join(s.name for s in p.models.values())
            raise StageError(f"--to {to}: {name!r} is not a registered model of this project ({known})")
        v = store.get(client, spec.name, int(number)) if client is not None else None
        if v is None:
            commit = gitrepo.resolve(root, to) if not sep else None
            if commit:
                return Target(commit, f"git {to} ({gitrepo.short(commit)})")
            if client is None:
                raise StageError(f"--to {to}: no MLflow registry at {tracking_uri} to look the "
                                 "version up in (mlflow.tracking_uri in params.yaml); a git revision works without one")
            have = ", ".join(str(x.version) for x in store.versions(client, spec.name)) if client else ""
            raise StageError(f"--to {to}: {spec.name} has no version {number} (versions: {have or 'none'})")
        commit = commit_of(history, v)
        if commit is None:
            raise StageError(
                f"--to {to}: no commit's dvc.lock records {spec.name} v{v.version} ({v.tags.get('dvc.model_path')} "
                f"md5 {str(v.model_md5)[:8]}): the pipeline run that made it was never committed "
                "(`elmo repro`, `make pipeline` and the flows record their runs; after a plain `dvc repro`, "
                "`git add dvc.lock params.yaml metrics plots && git commit`), so its files cannot be restored; "
                "nothing was changed")
        return Target(commit, f"{spec.name} v{v.version}", spec.name, v.version)
    commit = gitrepo.resolve(root, to)
    if commit is None:
        raise StageError(f"--to {to}: neither a model version ({p.models[p.primary].name} N, or name:N) "
                         "nor a git revision of this repository")
    return Target(commit, f"git {to} ({gitrepo.short(commit)})")
