"""``elmo rollback``: list model versions; go back (or forward) to one in a single command.

A target is a registered version (``3`` = version 3 of ``register.primary``; ``elmo-bilm:2``) or
any git revision (``main``, ``HEAD~2``, a sha). A version is traced to the newest commit whose
``dvc.lock`` records exactly its stage's outs and deps (the tags ``dvc.outs``/``dvc.deps``).
Going there means:

1. the pipeline's git-tracked files — ``dvc.yaml``, ``dvc.lock``, the params files ``dvc.lock``
   names, git-tracked outputs such as metrics, and ``*.dvc`` files — are written with their
   content at that commit (HEAD, the index and code files are left alone);
2. ``dvc checkout`` puts the matching data and model files in place, from the cache, after
   fetching what the cache lacks from the default DVC remote;
3. the alias (``champion``) of every declared model points where it pointed when that commit was
   recorded (the register report committed with it), so a round trip ``--to 1`` then ``--to main``
   leaves every alias where it started; a commit without a report: the version that commit made.

Before changing anything it refuses — and changes nothing — when those files have uncommitted
changes (other than exactly what the previous rollback wrote, so one can roll forward again),
when a cached output differs from ``dvc.lock`` (unsaved work), or when neither the cache nor the
remote holds every object the target needs. ``register.rollback_state`` remembers what the last
rollback wrote; it lives in a self-ignoring folder, never in git.

The steps live in modules named for them: :mod:`elmo.registry.targets` (what ``--to`` names),
:mod:`elmo.registry.history` (which commit made a version), :mod:`elmo.registry.safety` (the
refusals), :mod:`elmo.registry.restore` (files, checkout, the state file); the listing is
:mod:`elmo.registry.versions`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from elmo import dvcrepo, gitrepo, tracking
from elmo.errors import StageError
from elmo.params.mlflow import MlflowParams
from elmo.params.register import RegisteredModelParams, RegisterParams
from elmo.registry import store
from elmo.registry.history import LockHistory, champions_at, version_at
from elmo.registry.lockfile import Lock
from elmo.registry.register import norm, say
from elmo.registry.restore import pipeline_files, restore, save_state
from elmo.registry.safety import ensure_objects, refuse_unsafe
from elmo.registry.targets import Target, resolve_target


def rollback(p: RegisterParams, mlflow_params: MlflowParams, root: Path, to: str) -> dict[str, Any]:
    """Restore ``to``'s pipeline files, data and models and point the alias at its versions."""
    root = Path(root).resolve()
    head = _head(root)
    client = _client(mlflow_params, root)
    history = LockHistory(root)
    target = resolve_target(root, p, mlflow_params.tracking_uri, client, history, to)
    target_lock = history.at(target.commit)
    if target_lock is None:
        raise StageError(f"{target.label}: that commit has no readable dvc.lock; nothing to restore")
    files = pipeline_files(root, head, history.at(head)) | pipeline_files(root, target.commit, target_lock)

    with dvcrepo.session(root) as repo:
        refuse_unsafe(root, repo, head, files, root / p.rollback_state, target.label)
        ensure_objects(repo, target)
        moves, warnings = alias_moves(p, mlflow_params.tracking_uri, client, target, target_lock,
                                       champions_at(root, target.commit, p.report))
        say(f"restoring the pipeline files of {gitrepo.short(target.commit)} and checking out the data and "
            f"models of {target.label} …")
        changed, written, changes = restore(root, repo, target.commit, files)

    reason = f"elmo rollback --to {to} ({target.label}, commit {gitrepo.short(target.commit)})"
    champion = move_aliases(p.alias, client, moves, reason)
    for w in warnings:
        say(f"warning: {w}")
    save_state(root, p.rollback_state, {
        "target": to, "label": target.label, "commit": target.commit, "head": head,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "written": written})
    return {"target": target.label, "commit": target.commit, "restored_files": changed,
            "checkout": changes, "champion": champion, "warnings": warnings}


def _head(root: Path) -> str:
    """HEAD's commit; rollback needs a git repository with at least one commit."""
    if not gitrepo.is_repo(root):
        raise StageError(f"{root}: not a git repository; rollback restores files from git commits")
    head = gitrepo.head(root)
    if head is None:
        raise StageError(f"{root}: the repository has no commits yet")
    return head


def _client(mlflow_params: MlflowParams, root: Path):
    try:
        return tracking.registry_client(mlflow_params, root, create=False)
    except FileNotFoundError:
        return None


def alias_moves(p: RegisterParams, tracking_uri: str, client, target: Target, lock: Lock, recorded: dict[str, int]):
    """(model, version) pairs the alias moves to, and a warning per model it cannot move.

    ``recorded``: {model name: version} of the alias as the target commit recorded it."""
    moves: list[tuple[RegisteredModelParams, store.Version]] = []
    warnings: list[str] = []
    for spec in p.models.values():
        if client is None:
            warnings.append(f"{spec.name}: no MLflow registry at {tracking_uri} "
                            f"(mlflow.tracking_uri); `{p.alias}` not moved")
            continue
        v = store.get(client, spec.name, recorded[spec.name]) if spec.name in recorded else None
        v = v or version_at(lock, spec, store.versions(client, spec.name))
        if v is not None:
            moves.append((spec, v))
        else:
            warnings.append(f"{spec.name}: no registered version was made from {norm(spec.model_dir)} as "
                            f"recorded at {gitrepo.short(target.commit)}; `{p.alias}` left where it is")
    return moves, warnings


def move_aliases(alias: str, client, moves: list[tuple[RegisteredModelParams, store.Version]],
                 reason: str) -> dict[str, Any]:
    """Point the alias at each planned version; {model: {"from": previous, "to": version}}."""
    champion: dict[str, Any] = {}
    for spec, v in moves:
        previous = store.move_alias(client, spec.name, alias, v.version, reason)
        champion[spec.name] = {"from": previous, "to": v.version}
        moved = ("stays at" if previous == v.version else "now points at" if previous is None
                 else f"moves from v{previous} to")
        say(f"{spec.name}: `{alias}` {moved} v{v.version}")
    return champion
